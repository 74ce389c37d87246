"""One vocabulary for what a model predicts, with one mapping between its two spellings.

Training code names the *likelihood* of the data (:class:`bayesdrop.ELBO`,
:class:`bayesdrop.pyro.DropoutModel`, :func:`bayesdrop.functional.regularizer_constants`,
:func:`bayesdrop.nn.set_concrete_regularizers`); prediction code names the *task*
(:func:`bayesdrop.mc_predict`, :class:`bayesdrop.MCPredictor`). Both take the same three
values, matched one to one:

=====================  ======================  =============================================
task                   likelihood              the model returns
=====================  ======================  =============================================
``"classification"``   ``"categorical"``       logits
``"regression"``       ``"gaussian"``          a mean (the noise precision ``tau`` is given)
``"heteroscedastic"``  ``"heteroscedastic"``   ``(mean, log_variance)``
=====================  ======================  =============================================

A value of the other spelling is refused with the matching one named.
"""

from __future__ import annotations

from typing import Literal

from bayesdrop._validation import fail

__all__ = [
    "LIKELIHOODS",
    "LIKELIHOOD_OF_TASK",
    "TASKS",
    "TASK_OF_LIKELIHOOD",
    "Likelihood",
    "Task",
    "check_likelihood",
    "check_task",
]

Task = Literal["classification", "regression", "heteroscedastic"]
Likelihood = Literal["categorical", "gaussian", "heteroscedastic"]
TASKS: tuple[str, ...] = ("classification", "regression", "heteroscedastic")
LIKELIHOODS: tuple[str, ...] = ("categorical", "gaussian", "heteroscedastic")
LIKELIHOOD_OF_TASK = dict(zip(TASKS, LIKELIHOODS, strict=True))
TASK_OF_LIKELIHOOD = dict(zip(LIKELIHOODS, TASKS, strict=True))


def _one_of(values: tuple[str, ...]) -> str:
    return "one of " + ", ".join(repr(v) for v in values)


def check_likelihood(value: object, name: str = "likelihood") -> str:
    """``value`` if it is a likelihood; a task name gets the matching likelihood named."""
    if isinstance(value, str) and value in LIKELIHOODS:
        return value
    fix = ""
    if isinstance(value, str) and value in LIKELIHOOD_OF_TASK:
        fix = f"task={value!r} is likelihood={LIKELIHOOD_OF_TASK[value]!r}."
    fail(name, _one_of(LIKELIHOODS), repr(value), fix)


def check_task(value: object, name: str = "task") -> str:
    """``value`` if it is a task; a likelihood name gets the matching task named."""
    if isinstance(value, str) and value in TASKS:
        return value
    fix = ""
    if isinstance(value, str) and value in TASK_OF_LIKELIHOOD:
        fix = f"likelihood={value!r} is task={TASK_OF_LIKELIHOOD[value]!r}."
    fail(name, _one_of(TASKS), repr(value), fix)
