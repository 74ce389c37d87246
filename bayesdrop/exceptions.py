"""Exceptions raised by bayesdrop.

Every error bayesdrop raises for bad input derives from :class:`BayesdropError` and also from the
standard :class:`ValueError` or :class:`TypeError`, so callers can catch either. A feature whose
optional dependency is not installed raises :class:`MissingDependencyError`, an
:class:`ImportError` that names the extra to install.
"""

from __future__ import annotations

__all__ = [
    "BayesdropError",
    "BayesdropTypeError",
    "BayesdropValueError",
    "BayesdropWarning",
    "ConcreteCollapseWarning",
    "EngineFallbackWarning",
    "FunctionalDropoutWarning",
    "MissingDependencyError",
    "UnshardedDataWarning",
]


class BayesdropError(Exception):
    """Base class of every exception raised by bayesdrop."""


class BayesdropValueError(BayesdropError, ValueError):
    """An argument has the right type but a value bayesdrop cannot use."""


class BayesdropTypeError(BayesdropError, TypeError):
    """An argument has a type bayesdrop cannot use."""


class MissingDependencyError(BayesdropError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the
    extra that installs it (``pip install "bayesdrop[plot]"``, for example)."""


class BayesdropWarning(UserWarning):
    """Base class of the warnings bayesdrop emits about a model or its results."""


class ConcreteCollapseWarning(BayesdropWarning):
    """Learned Concrete Dropout rates fell towards zero: the model is close to a point estimate
    and its epistemic uncertainty near zero (see :class:`bayesdrop.nn.ConcreteRateMonitor`)."""


class EngineFallbackWarning(BayesdropWarning):
    """The engine asked for (``engine="cached"``) cannot run this model; the prediction falls
    back to another engine, named with the reason."""


class FunctionalDropoutWarning(BayesdropWarning):
    """A module calls functional dropout (``F.dropout``) in ``forward``, which a module-level
    tool (:func:`bayesdrop.convert`, :class:`bayesdrop.schedules.DropoutScheduler`) cannot
    change."""


class UnshardedDataWarning(BayesdropWarning):
    """A distributed prediction's data has no ``DistributedSampler``: every rank predicts
    every batch."""
