"""Small argument checks shared by the package (private).

Every message follows one template:
``Expected `<arg>` to be <constraint>, but got <value>. <fix>``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any, NoReturn

import torch

from bayesdrop.exceptions import BayesdropTypeError, BayesdropValueError


def _fmt(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def fail(
    name: str, constraint: str, got: Any, fix: str = "", *, type_error: bool = False
) -> NoReturn:
    """Raise the package's error for argument ``name``."""
    msg = f"Expected `{name}` to be {constraint}, but got {got}."
    if fix:
        msg += " " + fix
    raise (BayesdropTypeError if type_error else BayesdropValueError)(msg)


def check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        else:
            fail(name, "a real number", _fmt(value), type_error=True)
    value = float(value)
    if not math.isfinite(value):
        fail(name, "a finite number", value)
    return value


def check_probability(name: str, value: Any, *, allow_one: bool = False) -> float:
    """A drop probability in ``[0, 1)`` (or ``[0, 1]`` when ``allow_one``)."""
    value = check_real(name, value)
    hi = "1]" if allow_one else "1)"
    if value < 0.0 or value > 1.0 or (value == 1.0 and not allow_one):
        fail(name, f"a probability in [0, {hi}", value)
    return value


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    value = check_real(name, value)
    if value < 0.0 or (value == 0.0 and not allow_zero):
        fail(name, "non-negative" if allow_zero else "positive", value)
    return value


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        fail(name, "an integer", _fmt(value), type_error=True)
    value = int(value)
    if value < 0 or (value == 0 and not allow_zero):
        fail(name, "a non-negative integer" if allow_zero else "a positive integer", value)
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        fail(name, f"one of {allowed}", _fmt(value))
    return value


def check_tensor(name: str, value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        fail(name, "a torch.Tensor", type(value).__name__, type_error=True)
    return value


def check_module(name: str, value: Any) -> torch.nn.Module:
    if not isinstance(value, torch.nn.Module):
        fail(name, "a torch.nn.Module", type(value).__name__, type_error=True)
    return value


def check_finite(name: str, value: torch.Tensor) -> torch.Tensor:
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        fail(name, "finite (no NaN or inf)", f"{bad} non-finite value(s)")
    return value


def check_count(name: str, value: Any) -> int:
    """A positive whole number: an ``int``, or a float with an integral value (``1000.0``, as
    ``0.8 * len(data)`` can give); ``0.5``, ``True``, NaN and inf are errors."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        fail(name, "a positive integer", _fmt(value), type_error=True)
    number = float(value)
    if not isinstance(value, Integral) and (
        not math.isfinite(number) or number != math.floor(number)
    ):
        fail(name, "a positive integer", value, "Round it, e.g. int(len(dataset) * 0.8).")
    count = int(value) if isinstance(value, Integral) else int(number)
    if count <= 0:
        fail(name, "a positive integer", value)
    return count


_UNSIGNED = {
    torch.uint16: torch.int32,
    torch.uint32: torch.int64,
    torch.uint64: torch.int64,
}


def as_tensor(name: str, value: Any) -> torch.Tensor:
    """A tensor from a tensor or NumPy array, in a dtype torch computes with.

    Big-endian arrays are copied to the native byte order; ``uint16``, ``uint32`` and ``uint64``
    (which torch stores but few kernels accept) become the signed type that holds them, and a
    ``uint64`` value above ``2**63 - 1`` is an error. Other types are a ``TypeError``.
    """
    import numpy as np

    if isinstance(value, np.ndarray):
        if not value.dtype.isnative:
            value = value.astype(value.dtype.newbyteorder("="))
        if value.dtype.kind in "OUSV":
            fail(name, "a numeric array", f"dtype {value.dtype}", type_error=True)
        if value.dtype == np.uint64 and value.size and int(value.max()) > 2**63 - 1:
            fail(name, "values that fit in int64", f"a maximum of {int(value.max())}")
        if value.dtype.kind == "u" and value.dtype.itemsize > 1:
            value = value.astype(np.int64)
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        fail(name, "a torch.Tensor or numpy.ndarray", type(value).__name__, type_error=True)
    if value.dtype in _UNSIGNED:
        if value.dtype == torch.uint64 and value.numel():
            # torch has no max kernel for uint64; the top bit set means above 2**63 - 1
            as_signed = value.view(torch.int64)
            if bool((as_signed < 0).any()):
                fail(name, "values that fit in int64", "a value above 2**63 - 1")
            return as_signed.clone()
        value = value.to(_UNSIGNED[value.dtype])
    return value


def check_indices(name: str, value: Any, size: int) -> torch.Tensor:
    """Integer positions in ``[0, size)`` as a flat ``int64`` tensor: floats (even ``2.0``) and
    booleans are a ``TypeError`` (no truncation), negative positions an error (no wrap-around)."""
    if not isinstance(value, torch.Tensor):
        import numpy as np

        if not isinstance(value, np.ndarray):
            items = value if isinstance(value, (list, tuple)) else ()
            if any(isinstance(v, (bool, np.bool_)) for v in items):  # [1, False] is not [1, 0]
                fail(name, "integer indices", "a boolean in the list", type_error=True)
            try:
                value = np.asarray(value)
            except (TypeError, ValueError):
                fail(name, "integer indices", type(value).__name__, type_error=True)
            if value.size == 0:
                value = value.astype(np.int64)
        value = as_tensor(name, value)
    else:
        value = as_tensor(name, value)
    if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
        fail(
            name,
            "integer indices",
            f"dtype {value.dtype}",
            "Pass whole positions, e.g. torch.tensor([0, 3]); a float is not rounded.",
            type_error=True,
        )
    value = value.reshape(-1).long()
    if value.numel():
        lo, hi = (int(v) for v in torch.aminmax(value))
        if lo < 0 or hi >= size:
            fix = "A negative index is not counted from the end." if lo < 0 else ""
            fail(name, f"integers in [0, {size})", f"values in [{lo}, {hi}]", fix)
    return value


def check_int(name: str, value: Any) -> int:
    """Any integer (negative included, as an ``ignore_index``); booleans and floats are a
    ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        fail(name, "an integer", _fmt(value), type_error=True)
    return int(value)
