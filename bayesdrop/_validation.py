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
