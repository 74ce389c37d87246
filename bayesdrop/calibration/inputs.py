"""Validation of the inputs of the calibration metrics.

Every public metric of :mod:`bayesdrop.calibration` passes its data through these checks, so a
bad input fails loudly with a message naming the argument instead of producing a silent number.
Probabilities are never guessed: logits passed as ``probs`` are an error, not a hidden softmax.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from bayesdrop._validation import as_tensor, check_finite, fail

__all__ = [
    "PROBS_SUM_ATOL",
    "as_float_tensor",
    "at_least_float32",
    "check_classification",
    "check_probs",
    "check_probs_shape",
    "check_probs_values",
    "check_scores",
    "check_target",
    "probs_sum_atol",
    "top_label",
    "true_class_probability",
]

#: Absolute tolerance on ``|sum_c probs[n, c] - 1|`` for every row of float32 or float64 input
#: (half precision gets a wider one, see :func:`probs_sum_atol`).
PROBS_SUM_ATOL = 1e-3

_HALF = (torch.float16, torch.bfloat16)


def probs_sum_atol(dtype: torch.dtype) -> float:
    """The row-sum tolerance for probabilities of ``dtype``: ``max(PROBS_SUM_ATOL, 2 eps)``.

    Rounding every entry of an exact distribution to ``dtype`` moves its sum by at most
    ``eps / 2``; twice ``eps`` leaves room for a softmax or an MC mean computed in that dtype.
    That is 1e-3 for float32 and float64, 1.95e-3 for float16 and 1.56e-2 for bfloat16.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration.inputs import probs_sum_atol
    >>> probs_sum_atol(torch.float32), probs_sum_atol(torch.bfloat16)
    (0.001, 0.015625)
    """
    return max(PROBS_SUM_ATOL, 2 * torch.finfo(dtype).eps)


def at_least_float32(values: Tensor) -> Tensor:
    """``values`` in float32 when they are float16 or bfloat16 (every sum is then accumulated
    in float32 or float64), else unchanged."""
    return values.float() if values.dtype in _HALF else values


def as_float_tensor(
    name: str, value: Any, *, check_values: bool = True, allow_empty: bool = False
) -> Tensor:
    """A floating tensor from a tensor or NumPy array, non-empty unless ``allow_empty``, finite
    if ``check_values``."""
    value = as_tensor(name, value)
    if not value.is_floating_point():
        fail(name, "a floating-point tensor", f"dtype {value.dtype}", type_error=True)
    if value.numel() == 0 and not allow_empty:
        fail(name, "non-empty", f"shape {tuple(value.shape)}")
    return check_finite(name, value) if check_values else value


def check_probs_shape(probs: Any, name: str = "probs") -> Tensor:
    """A floating ``(N, C)`` tensor, ``C >= 2``, from ``(N, C)`` or MC samples ``(S, N, C)``
    (averaged over ``S``); the values are not checked (see :func:`check_probs_values`)."""
    probs = as_float_tensor(name, probs, check_values=False)
    if probs.ndim not in (2, 3):
        fail(name, "of shape (N, C) or (S, N, C)", f"shape {tuple(probs.shape)}")
    if probs.ndim == 3:
        probs = probs.mean(0)  # NaN and inf survive the mean and are caught by the value checks
    if probs.shape[-1] < 2:
        fail(name, "a distribution over at least 2 classes", f"shape {tuple(probs.shape)}")
    return probs


def check_probs(probs: Any, name: str = "probs") -> Tensor:
    """Probabilities ``(N, C)``, or MC samples ``(S, N, C)`` averaged over ``S``.

    Every entry must lie in ``[0, 1]`` and every row sum to one within
    :func:`probs_sum_atol` of the dtype. Half-precision input comes back as float32.
    """
    return at_least_float32(check_probs_values(check_probs_shape(probs, name), name))


def check_probs_values(probs: Tensor, name: str = "probs") -> Tensor:
    """Raise unless every entry of ``probs (N, C)`` is in ``[0, 1]`` and every row sums to 1."""
    # one pass: NaN propagates through min / max, so finite data is checked on the way
    lo, hi = (v.item() for v in torch.aminmax(probs))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        check_finite(name, probs)
    if lo < 0.0 or hi > 1.0:
        fail(
            name,
            "probabilities (entries in [0, 1], rows summing to 1)",
            f"values in [{lo:.4g}, {hi:.4g}]",
            "If these are logits, pass logits.softmax(-1).",
        )
    wide = at_least_float32(probs)  # a half-precision sum would round to the dtype's resolution
    row_sums = wide @ torch.ones(probs.shape[-1], dtype=wide.dtype, device=probs.device)
    err = max(abs(v.item() - 1.0) for v in torch.aminmax(row_sums))
    atol = probs_sum_atol(probs.dtype)
    if err > atol:
        fail(
            name,
            f"probabilities whose rows sum to 1 (within {atol:g} for {probs.dtype})",
            f"a row sum off by {err:.4g}",
            "Normalise the rows, e.g. probs / probs.sum(-1, keepdim=True).",
        )
    return probs


def check_target(
    target: Any, num_data: int, num_classes: int | None, name: str = "target"
) -> Tensor:
    """Integer class labels ``(N,)`` in ``[0, num_classes)``."""
    target = as_tensor(name, target)  # uint16/32/64 and big-endian arrays as int64
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        fail(name, "integer class labels", f"dtype {target.dtype}", type_error=True)
    if target.shape != (num_data,):
        fail(
            name, f"of shape ({num_data},) to match the predictions", f"shape {tuple(target.shape)}"
        )
    if num_classes is not None and num_data > 0:
        lo, hi = (v.item() for v in torch.aminmax(target))
        if lo < 0 or hi >= num_classes:
            fail(name, f"labels in [0, {num_classes - 1}]", f"labels in [{lo}, {hi}]")
    return target.long()


def check_scores(scores: Any, name: str, num_data: int | None = None) -> Tensor:
    """A finite 1-D score per data point (half precision comes back as float32)."""
    scores = as_float_tensor(name, scores)
    if scores.ndim != 1 or (num_data is not None and scores.shape[0] != num_data):
        want = "a 1-D tensor" if num_data is None else f"of shape ({num_data},)"
        fail(name, want, f"shape {tuple(scores.shape)}")
    return at_least_float32(scores)


def check_classification(probs: Any, target: Any) -> tuple[Tensor, Tensor]:
    """Validated ``probs (N, C)`` (MC samples averaged) and ``target (N,)`` on the same device."""
    probs = check_probs(probs)
    return probs, check_target(target, probs.shape[0], probs.shape[1]).to(probs.device)


def top_label(probs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Top-label confidence ``max_c p_c`` and the boolean ``argmax_c p_c == target``.

    A row with a tie for the maximum predicts its first maximal class (as ``argmax``).
    """
    confidence, predicted = probs.max(-1)
    return confidence, predicted == target


def true_class_probability(probs: Tensor, target: Tensor) -> Tensor:
    """``probs[n, target[n]]`` for every ``n``."""
    return probs.gather(-1, target[:, None]).squeeze(-1)
