"""JSON text of the reports (private): strict JSON, never a bare ``NaN`` or ``Infinity``."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["strict_dumps"]


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def strict_dumps(data: Any, **kwargs: Any) -> str:
    """``json.dumps(data)`` with every NaN or infinite float written as ``null``.

    Python's ``json`` writes them as ``NaN`` and ``Infinity``, which no JSON parser outside
    Python accepts. ``allow_nan`` cannot be passed: the output is always strict JSON.

    Examples
    --------
    >>> from bayesdrop.calibration._json import strict_dumps
    >>> strict_dumps({"ence": float("nan"), "counts": [1, 2], "x": [float("inf"), 0.5]})
    '{"ence": null, "counts": [1, 2], "x": [null, 0.5]}'
    """
    kwargs.pop("allow_nan", None)
    return json.dumps(_finite_or_none(data), allow_nan=False, **kwargs)
