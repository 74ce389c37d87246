"""Exceptions raised by bayesdrop.

Every error bayesdrop raises for bad input derives from :class:`BayesdropError` and also from the
standard :class:`ValueError` or :class:`TypeError`, so callers can catch either.
"""

from __future__ import annotations

__all__ = [
    "BayesdropError",
    "BayesdropTypeError",
    "BayesdropValueError",
    "BayesdropWarning",
    "ConcreteCollapseWarning",
]


class BayesdropError(Exception):
    """Base class of every exception raised by bayesdrop."""


class BayesdropValueError(BayesdropError, ValueError):
    """An argument has the right type but a value bayesdrop cannot use."""


class BayesdropTypeError(BayesdropError, TypeError):
    """An argument has a type bayesdrop cannot use."""


class BayesdropWarning(UserWarning):
    """Base class of the warnings bayesdrop emits about a model or its results."""


class ConcreteCollapseWarning(BayesdropWarning):
    """Learned Concrete Dropout rates fell towards zero: the model is close to a point estimate
    and its epistemic uncertainty near zero (see :class:`bayesdrop.nn.ConcreteRateMonitor`)."""
