"""Setting every dropout rate of a model from a per-step schedule, like an LR scheduler."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from bayesdrop._validation import check_choice, check_module, fail
from bayesdrop.exceptions import FunctionalDropoutWarning
from bayesdrop.nn._base import StochasticModule
from bayesdrop.nn._drop_path import DropPath
from bayesdrop.nn._sampling import find_functional_dropout, is_noise_module

__all__ = ["DropoutScheduler"]

Target = Literal["dropout", "drop_path"]
DepthRule = Literal["linear", "uniform"]
_TRANSFORMER_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def _settable_p(module: nn.Module) -> bool:
    """Whether ``module.p`` is a plain rate we may overwrite (not a learned one)."""
    prop = getattr(type(module), "p", None)
    if isinstance(prop, property):
        return prop.fset is not None
    return isinstance(module.__dict__.get("p"), float)


def _dropout_targets(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    found: list[tuple[str, nn.Module, str]] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            found.append((name, module, "dropout"))
        elif isinstance(module, _DropoutNd):
            found.append((name, module, "p"))
        elif (
            isinstance(module, StochasticModule)
            and not isinstance(module, DropPath)
            and _settable_p(module)
        ):
            found.append((name, module, "p"))
    return found


def _drop_path_targets(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    found: list[tuple[str, nn.Module, str]] = []
    for name, module in model.named_modules():
        if isinstance(module, DropPath):
            found.append((name, module, "p"))
        elif isinstance(getattr(module, "drop_prob", None), float):
            found.append((name, module, "drop_prob"))  # timm's DropPath
    return found


def _as_schedule(schedule: Any) -> np.ndarray:
    if isinstance(schedule, torch.Tensor):
        schedule = schedule.detach().cpu().double().numpy()
    elif isinstance(schedule, (str, bytes)) or not isinstance(schedule, (np.ndarray, Sequence)):
        fail("schedule", "a 1-D array of rates", type(schedule).__name__, type_error=True)
    values = np.asarray(schedule, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        fail(
            "schedule",
            "a non-empty 1-D array of rates",
            f"shape {values.shape}",
            "Build one with bayesdrop.schedules.drop_schedule(...).",
        )
    if not np.isfinite(values).all() or values.min() < 0.0 or values.max() >= 1.0:
        fail("schedule", "rates in [0, 1)", f"values in [{values.min()}, {values.max()}]")
    return values.copy()


class DropoutScheduler:
    r"""Set the rate of every dropout in a model from a per-step schedule.

    Call :meth:`step` after every ``optimizer.step()``. At construction the model gets
    ``schedule[0]``; after :math:`k` calls it has ``schedule[k]`` (the reference training loop
    indexes its schedule with the global iteration before each forward pass). Past the end the
    last value is kept.

    ``target="dropout"`` sets every dropout rate to the scheduled value :math:`v`:
    torch's ``_DropoutNd`` modules (``nn.Dropout``, ``Dropout1d/2d/3d``, ``AlphaDropout``, ...)
    through ``.p``; the attention dropout that :class:`torch.nn.MultiheadAttention` keeps as a
    float ``.dropout`` (also inside ``nn.TransformerEncoderLayer`` / ``DecoderLayer``); and
    bayesdrop layers with a settable ``p`` (:class:`bayesdrop.MCDropout`,
    :class:`bayesdrop.nn.SpatialMCDropout`). Layers that *learn* their rate
    (:class:`bayesdrop.ConcreteDropout`) are left alone and listed in ``skipped``, as are
    other stochastic modules without a settable ``p``; a
    :class:`~bayesdrop.FunctionalDropoutWarning` names modules whose ``forward`` calls
    functional dropout, which no scheduler can reach.
    :class:`~bayesdrop.nn.DropPath` belongs to ``target="drop_path"``, as in the reference
    code, which schedules the two separately.

    ``target="drop_path"`` sets stochastic-depth rates with the linear depth rule of the
    reference code: the :math:`D` drop-path modules, in ``model.modules()`` order, get

    .. math::

        p_i = \mathrm{linspace}(0, v, D)_i = v \, \frac{i}{D - 1}, \quad i = 0, \dots, D - 1,

    so the first block is never dropped and the last gets :math:`v` (with :math:`D = 1` the
    single block gets 0, as ``torch.linspace(0, v, 1) == [0]`` in the reference).
    ``depth_rule="uniform"`` gives every block :math:`v`. It reaches
    :class:`bayesdrop.nn.DropPath` (``.p``) and timm-style modules with a float ``drop_prob``.

    Parameters
    ----------
    model : nn.Module
        The model whose rates are set (in place).
    schedule : array-like of float, shape (T,)
        Rates in ``[0, 1)``, usually from :func:`drop_schedule`.
    target : {"dropout", "drop_path"}, default "dropout"
    depth_rule : {"linear", "uniform"}, default "linear"
        Only for ``target="drop_path"``.

    Attributes
    ----------
    targets : list of str
        Names of the modules whose rate is set.
    skipped : list of str
        Names of stochastic modules this scheduler does not change.

    Examples
    --------
    >>> from torch import nn
    >>> from bayesdrop.schedules import DropoutScheduler, drop_schedule
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.0), nn.MultiheadAttention(4, 1))
    >>> sched = DropoutScheduler(model, drop_schedule(0.2, epochs=2, iters_per_epoch=1,
    ...                                               cutoff_epoch=1, mode="early"))
    >>> model[1].p, model[2].dropout
    (0.2, 0.2)
    >>> sched.step()
    >>> model[1].p, model[2].dropout, sched.last_rate
    (0.0, 0.0, 0.0)
    """

    def __init__(
        self,
        model: nn.Module,
        schedule: Any,
        *,
        target: Target = "dropout",
        depth_rule: DepthRule = "linear",
    ) -> None:
        self.model = check_module("model", model)
        self.target = check_choice("target", target, ("dropout", "drop_path"))
        self.depth_rule = check_choice("depth_rule", depth_rule, ("linear", "uniform"))
        self._schedule = _as_schedule(schedule)
        finder = _dropout_targets if target == "dropout" else _drop_path_targets
        self._targets = finder(model)
        if not self._targets:
            kinds = (
                "a dropout module (nn.Dropout, MCDropout, nn.MultiheadAttention, ...)"
                if target == "dropout"
                else "a bayesdrop.nn.DropPath (or a module with a float `drop_prob`)"
            )
            fail("model", f"a model containing {kinds}", "none", "There is nothing to schedule.")
        reached = {id(m) for _, m, _ in self._targets}
        self.targets = [name for name, _, _ in self._targets]
        self.skipped = [
            name
            for name, m in model.named_modules()
            if id(m) not in reached
            and not isinstance(m, _TRANSFORMER_LAYERS)  # reached through their children
            and (is_noise_module(m) or isinstance(m, StochasticModule))
        ]
        functional = find_functional_dropout(model)
        if target == "dropout" and functional:
            warnings.warn(
                f"Modules {functional} call functional dropout (F.dropout) in forward; "
                "DropoutScheduler cannot change those rates. Use nn.Dropout modules instead.",
                FunctionalDropoutWarning,
                stacklevel=2,
            )
        self._step = 0
        self._apply(self.last_rate)

    @property
    def schedule(self) -> np.ndarray:
        """A copy of the schedule (one rate per optimiser step)."""
        return self._schedule.copy()

    @property
    def step_count(self) -> int:
        """How many times :meth:`step` has been called."""
        return self._step

    @property
    def last_rate(self) -> float:
        """The scheduled value now applied: ``schedule[min(step_count, T - 1)]``."""
        return float(self._schedule[min(self._step, len(self._schedule) - 1)])

    def step(self) -> None:
        """Advance one optimiser step and set the next rate."""
        self._step += 1
        self._apply(self.last_rate)

    def module_rates(self) -> dict[str, float]:
        """The current rate of every scheduled module, by name."""
        return {name: float(getattr(m, attr)) for name, m, attr in self._targets}

    def _apply(self, value: float) -> None:
        count = len(self._targets)
        if self.target == "drop_path" and self.depth_rule == "linear":
            rates = np.linspace(0.0, value, count).tolist()
        else:
            rates = [value] * count
        for (_, module, attr), rate in zip(self._targets, rates, strict=True):
            setattr(module, attr, float(rate))

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state: the step count, the schedule and the options."""
        return {
            "step": self._step,
            "schedule": torch.from_numpy(self._schedule.copy()),
            "target": self.target,
            "depth_rule": self.depth_rule,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` and set the rates it implies."""
        keys = {"step", "schedule", "target", "depth_rule"}
        if not isinstance(state_dict, dict) or set(state_dict) != keys:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            fail("state_dict", f"a dict with keys {sorted(keys)}", got)
        for key in ("target", "depth_rule"):
            if state_dict[key] != getattr(self, key):
                fail(
                    f"state_dict[{key!r}]",
                    f"{getattr(self, key)!r} (this scheduler's)",
                    repr(state_dict[key]),
                    "Build the scheduler with the same options as the saved one.",
                )
        schedule = _as_schedule(state_dict["schedule"])
        step = state_dict["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            fail("state_dict['step']", "a non-negative integer", repr(step))
        self._schedule, self._step = schedule, step
        self._apply(self.last_rate)
