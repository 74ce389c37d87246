"""Exceptions raised by bayesdrop.

Every error bayesdrop raises for bad input derives from :class:`BayesdropError` and also from the
standard :class:`ValueError` or :class:`TypeError`, so callers can catch either.
"""

from __future__ import annotations

__all__ = ["BayesdropError", "BayesdropTypeError", "BayesdropValueError"]


class BayesdropError(Exception):
    """Base class of every exception raised by bayesdrop."""


class BayesdropValueError(BayesdropError, ValueError):
    """An argument has the right type but a value bayesdrop cannot use."""


class BayesdropTypeError(BayesdropError, TypeError):
    """An argument has a type bayesdrop cannot use."""
