"""The options of a Monte-Carlo prediction, declared once.

:func:`bayesdrop.mc_predict` and :class:`bayesdrop.MCPredictor` spell these options in their
signatures (for type checkers and help texts) with exactly these names, defaults and types; a
test checks that they agree with :class:`PredictOptions`, and both pass their arguments on with
:func:`options_from`, so a new option is declared here, once, and added to the two signatures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from bayesdrop._validation import check_choice, check_positive, check_positive_int, fail
from bayesdrop._vocabulary import Task, check_task
from bayesdrop.nn._selection import check_pattern
from bayesdrop.predict._io import check_output_spec

__all__ = ["ENGINES", "PredictOptions", "options_from"]

ENGINES = ("auto", "loop", "batched", "cached", "hooked")


@dataclass(frozen=True)
class PredictOptions:
    r"""The options of :func:`bayesdrop.mc_predict` and :class:`bayesdrop.MCPredictor`.

    Each is documented on :func:`bayesdrop.mc_predict`. :meth:`settings` validates them all
    and names the first bad one.

    Attributes
    ----------
    num_samples : int or "auto", default 50
        The number of MC samples, or ``"auto"`` (until the standard errors fall below
        ``tolerance``, at most ``max_samples``).
    task : {"classification", "regression", "heteroscedastic"}, default "classification"
        What the model returns: logits, a mean, or ``(mean, log_variance)``.
    tau : float or None, default None
        The model precision, for ``task="regression"`` only.
    engine : {"auto", "loop", "batched", "cached", "hooked"}, default "auto"
        How the samples are drawn.
    chunk_size : int or None, default None
        Samples per replicated pass.
    max_memory : int or None, default None
        A memory budget in bytes for one pass.
    return_samples : bool, default False
        Keep the ``(S, N, ...)`` samples.
    tolerance : float, default 0.01
        The standard-error target of ``num_samples="auto"``.
    max_samples : int, default 1000
        The most samples ``num_samples="auto"`` draws.
    autocast : bool or torch.dtype, default False
        Run the model under ``torch.autocast``.
    output : str, int, callable or None, default None
        Which part of the model's output holds the logits or the mean.
    class_dim : int or None, default None
        The class dimension of dense classification outputs.
    batch_dim : {0, 1}, default 0
        The batch dimension of the inputs (1: sequence-first).
    verify : bool, default False
        Compare the sampling with training-mode noise before predicting.
    noise : str or None, default None
        Sample only the noise modules whose qualified name this regular expression finds.

    Examples
    --------
    >>> from bayesdrop.predict import PredictOptions
    >>> PredictOptions(num_samples=20).settings().num_samples
    20
    >>> PredictOptions(task="gaussian").settings()
    Traceback (most recent call last):
    ...
    bayesdrop.exceptions.BayesdropValueError: Expected `task` to be one of 'classification', ...
    """

    num_samples: int | Literal["auto"] = 50
    task: Task = "classification"
    tau: float | None = None
    engine: Literal["auto", "loop", "batched", "cached", "hooked"] = "auto"
    chunk_size: int | None = None
    max_memory: int | None = None
    return_samples: bool = False
    tolerance: float = 1e-2
    max_samples: int = 1000
    autocast: bool | torch.dtype = False
    output: str | int | Callable[[Any], Any] | None = None
    class_dim: int | None = None
    batch_dim: Literal[0, 1] = 0
    verify: bool = False
    noise: str | None = None

    def settings(self) -> Any:
        """The validated settings of one prediction (``num_samples=None``
        stands for ``"auto"``)."""
        from bayesdrop.predict._runner import Settings

        task, tau, autocast = check_task(self.task), self.tau, self.autocast
        check_choice("engine", self.engine, ENGINES)
        auto = self.num_samples == "auto"
        count = None if auto else check_positive_int("num_samples", self.num_samples)
        if task == "regression":
            if tau is None:
                fail("tau", "the model precision for task='regression'", None, "Pass tau=...")
            tau = check_positive("tau", tau)
        elif tau is not None:
            fail("tau", "None unless task='regression'", tau)
        if autocast is not False and autocast is not True and not isinstance(autocast, torch.dtype):
            fail("autocast", "a bool or a torch.dtype", repr(autocast), type_error=True)
        class_dim = self.class_dim
        if class_dim is not None:
            if isinstance(class_dim, bool) or not isinstance(class_dim, int):
                fail("class_dim", "an integer or None", repr(class_dim), type_error=True)
            if task != "classification":
                fail("class_dim", "None unless task='classification'", class_dim)
        batch_dim = self.batch_dim
        if isinstance(batch_dim, bool) or batch_dim not in (0, 1):
            fail("batch_dim", "0 (batch-first) or 1 (sequence-first)", repr(batch_dim))
        if not isinstance(self.verify, bool):
            fail("verify", "True or False", repr(self.verify), type_error=True)
        check_pattern(self.noise)
        chunk, memory = self.chunk_size, self.max_memory
        return Settings(
            task=task,
            num_samples=count,
            tau=tau,
            engine=self.engine,
            chunk_size=None if chunk is None else check_positive_int("chunk_size", chunk),
            max_memory=None if memory is None else check_positive_int("max_memory", memory),
            return_samples=bool(self.return_samples),
            tolerance=check_positive("tolerance", self.tolerance),
            max_samples=check_positive_int("max_samples", self.max_samples),
            autocast=autocast
            if isinstance(autocast, torch.dtype)
            else (None if not autocast else True),
            output=check_output_spec(self.output),
            class_dim=class_dim,
            batch_dim=batch_dim,
            verify=self.verify,
            noise=self.noise,
        )


#: The names of the options, in declaration order.
OPTION_NAMES = tuple(f.name for f in dataclasses.fields(PredictOptions))


def options_from(arguments: Mapping[str, Any]) -> PredictOptions:
    """The options among a front door's arguments (``locals()`` at its top)."""
    return PredictOptions(**{name: arguments[name] for name in OPTION_NAMES})
