"""What the conformal classifiers receive, turned into points: one private function.

A prediction object or a tensor of probabilities with the class dimension last ``(..., C)``;
every leading dimension indexes points (``(N, C)``, dense ``(N, H, W, C)`` or ``(N, T, C)``).
A raw tensor is never read as Monte-Carlo samples: samples come only with a
:class:`~bayesdrop.ClassificationPrediction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bayesdrop._validation import as_tensor, check_int, fail
from bayesdrop.calibration._inputs import as_float_tensor, at_least_float32, check_probs_values

__all__ = ["Points", "as_points"]


@dataclass(frozen=True)
class Points:
    """Flattened points: ``probs (P, C)``; ``shape`` the leading shape they came in."""

    probs: Tensor
    shape: tuple[int, ...]
    mutual_information: Tensor | None = None
    samples: Tensor | None = None  # (S, P, C)
    target: Tensor | None = None  # (P,), ignored points removed only via ``keep``
    keep: Tensor | None = None  # (P,) bool: False for points whose target is ignore_index


def as_points(
    x: Any, target: Any = None, *, ignore_index: int | None = None, name: str = "x"
) -> Points:
    """Validate ``x`` (a ``ClassificationPrediction`` or probabilities ``(..., C)``) and an
    optional integer ``target`` shaped like its leading dimensions."""
    from bayesdrop.predict._results import ClassificationPrediction, RegressionPrediction

    mi = samples = None
    if isinstance(x, RegressionPrediction):
        fail(
            name,
            "a ClassificationPrediction or probabilities of shape (..., C)",
            "a RegressionPrediction",
            "For regression use SplitConformalRegressor.",
            type_error=True,
        )
    if isinstance(x, ClassificationPrediction):
        probs, mi, samples = x.probs, x.mutual_information, x.samples
        name = f"{name}.probs"
    else:
        probs = x
    probs = as_float_tensor(name, probs, check_values=False)
    if probs.ndim < 2 or probs.shape[-1] < 2:
        fail(
            name,
            "probabilities with the class dimension last, shape (..., C) with C >= 2",
            f"shape {tuple(probs.shape)}",
            "A single point is probs[None]; logits must go through softmax(-1) first.",
        )
    shape = tuple(probs.shape[:-1])
    flat = at_least_float32(check_probs_values(probs.reshape(-1, probs.shape[-1]), name))
    if mi is not None:
        mi = mi.reshape(-1).to(flat)
    if samples is not None:
        samples = samples.reshape(samples.shape[0], -1, samples.shape[-1]).to(flat)
    labels, keep = _target(target, shape, flat.shape[1], ignore_index, flat.device)
    return Points(flat, shape, mi, samples, labels, keep)


def _target(
    target: Any, shape: tuple[int, ...], num_classes: int, ignore_index: Any, device: Any
) -> tuple[Tensor | None, Tensor | None]:
    if ignore_index is not None:
        ignore_index = check_int("ignore_index", ignore_index)
    if target is None:
        return None, None
    target = as_tensor("target", target)
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        fail("target", "integer class labels", f"dtype {target.dtype}", type_error=True)
    if tuple(target.shape) != shape:
        fail(
            "target",
            f"of shape {shape} (the leading dimensions of the probabilities)",
            f"shape {tuple(target.shape)}",
        )
    target = target.reshape(-1).long().to(device)
    keep = None if ignore_index is None else target != ignore_index
    valid = target if keep is None else target[keep]
    if valid.numel():
        lo, hi = (int(v) for v in torch.aminmax(valid))
        if lo < 0 or hi >= num_classes:
            extra = "" if ignore_index is None else f" (ignore_index={ignore_index} excepted)"
            fail(
                "target",
                f"labels in [0, {num_classes - 1}]{extra}",
                f"labels in [{lo}, {hi}]",
                "Pass ignore_index=... for padding labels such as -100.",
            )
    return target, keep
