r"""How good the sets and intervals are: coverage (marginal, per class, per set size), size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bayesdrop._validation import as_tensor, check_int, fail
from bayesdrop.calibration._inputs import as_float_tensor

__all__ = [
    "CoverageByGroup",
    "SetQuality",
    "class_conditional_coverage",
    "coverage",
    "interval_coverage",
    "mean_interval_width",
    "mean_set_size",
    "set_quality",
    "size_stratified_coverage",
]


@dataclass(frozen=True)
class CoverageByGroup:
    """Coverage within groups of test points.

    Attributes
    ----------
    coverage : Tensor (G,)
        Fraction of the group's points whose label is in their set; NaN for a group with no
        points (``count == 0``): there is nothing to measure, which ``count`` says.
    count : Tensor (G,)
        Number of points in each group.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import class_conditional_coverage
    >>> sets = torch.tensor([[True, False, False], [True, True, False], [False, True, False]])
    >>> by_class = class_conditional_coverage(sets, torch.tensor([0, 0, 1]))
    >>> by_class.coverage.tolist()[:2], by_class.count.tolist()  # class 2: no point, NaN
    ([1.0, 1.0], [2, 1, 0])
    """

    coverage: Tensor
    count: Tensor


@dataclass(frozen=True)
class SetQuality:
    """The quality functions of a set predictor on one test split (see :func:`set_quality`).

    Attributes
    ----------
    coverage : float
        Marginal coverage (:func:`coverage`).
    mean_set_size : float
        Mean number of labels per set (:func:`mean_set_size`).
    class_conditional : CoverageByGroup
        Coverage per true class (:func:`class_conditional_coverage`).
    size_stratified : CoverageByGroup
        Coverage per set size (:func:`size_stratified_coverage`).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import set_quality
    >>> q = set_quality(torch.tensor([[True, False], [True, True]]), torch.tensor([1, 1]))
    >>> q.coverage, q.class_conditional.count.tolist(), q.size_stratified.coverage.tolist()[1:]
    (0.5, [0, 2], [0.0, 1.0])
    """

    coverage: float
    mean_set_size: float
    class_conditional: CoverageByGroup
    size_stratified: CoverageByGroup


def _sets_and_target(sets: Any, target: Any, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    sets = as_tensor("sets", sets)
    if sets.dtype != torch.bool or sets.ndim < 2:
        fail(
            "sets",
            "a boolean tensor of shape (..., C)",
            f"shape {tuple(sets.shape)} and dtype {sets.dtype}",
            "Pass SplitConformalClassifier.predict_sets(...).",
            type_error=sets.dtype != torch.bool,
        )
    target = as_tensor("target", target)
    if target.is_floating_point() or target.dtype == torch.bool:
        fail("target", "integer class labels", f"dtype {target.dtype}", type_error=True)
    if tuple(target.shape) != tuple(sets.shape[:-1]):
        fail("target", f"of shape {tuple(sets.shape[:-1])}", f"shape {tuple(target.shape)}")
    sets, target = sets.reshape(-1, sets.shape[-1]), target.reshape(-1).long().to(sets.device)
    if ignore_index is not None:
        keep = target != check_int("ignore_index", ignore_index)
        sets, target = sets[keep], target[keep]
    if target.numel() == 0:
        fail("target", "at least one labelled point", "none")
    lo, hi = (int(v) for v in torch.aminmax(target))
    if lo < 0 or hi >= sets.shape[-1]:
        fail("target", f"labels in [0, {sets.shape[-1] - 1}]", f"labels in [{lo}, {hi}]")
    return sets, target


def _covered(sets: Tensor, target: Tensor) -> Tensor:
    return sets.gather(-1, target[:, None])[:, 0]


def coverage(sets: Any, target: Any, *, ignore_index: int | None = None) -> float:
    r"""Marginal coverage :math:`\frac1N \sum_i \mathbb 1[y_i \in C(x_i)]`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import coverage
    >>> sets = torch.tensor([[True, False], [True, True], [False, True]])
    >>> coverage(sets, torch.tensor([0, 1, 0]))
    0.6666666666666666
    """
    sets, target = _sets_and_target(sets, target, ignore_index)
    return _covered(sets, target).double().mean().item()


def mean_set_size(sets: Any) -> float:
    r"""Mean number of classes per set (``sets (..., C)`` boolean),
    :math:`\frac1N \sum_i |C(x_i)|`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import mean_set_size
    >>> mean_set_size(torch.tensor([[True, False], [True, True]]))
    1.5
    """
    sets = as_tensor("sets", sets)
    if sets.dtype != torch.bool or sets.ndim < 2 or sets.numel() == 0:
        fail(
            "sets",
            "a non-empty boolean tensor of shape (..., C)",
            f"shape {tuple(sets.shape)} and dtype {sets.dtype}",
        )
    return sets.sum(-1).double().mean().item()


def _by_group(covered: Tensor, group: Tensor, num_groups: int) -> CoverageByGroup:
    count = torch.bincount(group, minlength=num_groups)
    hits = torch.bincount(group, weights=covered.double(), minlength=num_groups)
    cov = torch.where(count > 0, hits / count.clamp_min(1), torch.full_like(hits, float("nan")))
    return CoverageByGroup(cov, count)


def class_conditional_coverage(
    sets: Any, target: Any, *, ignore_index: int | None = None
) -> CoverageByGroup:
    r"""Coverage per true class, :math:`P(y \in C(x) \mid y = c)` for every class :math:`c`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import class_conditional_coverage
    >>> sets = torch.tensor([[True, False], [True, True], [False, True]])
    >>> class_conditional_coverage(sets, torch.tensor([0, 1, 0]))
    CoverageByGroup(coverage=tensor([0.5000, 1.0000], dtype=torch.float64), count=tensor([2, 1]))
    """
    sets, target = _sets_and_target(sets, target, ignore_index)
    return _by_group(_covered(sets, target), target, sets.shape[-1])


def size_stratified_coverage(
    sets: Any, target: Any, *, ignore_index: int | None = None
) -> CoverageByGroup:
    r"""Coverage per set size, :math:`P(y \in C(x) \mid |C(x)| = k)` for :math:`k = 0, \dots,
    C` (group :math:`k` is entry :math:`k`). Adaptive sets cover evenly across sizes; sets
    that are too small where the model is unsure show a dip at small :math:`k`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import size_stratified_coverage
    >>> sets = torch.tensor([[True, False], [True, True], [False, True]])
    >>> by_size = size_stratified_coverage(sets, torch.tensor([0, 1, 0]))
    >>> by_size.count.tolist(), by_size.coverage[1:].tolist()  # no empty set: coverage[0] NaN
    ([0, 2, 1], [0.5, 1.0])
    """
    sets, target = _sets_and_target(sets, target, ignore_index)
    return _by_group(_covered(sets, target), sets.sum(-1), sets.shape[-1] + 1)


def set_quality(sets: Any, target: Any, *, ignore_index: int | None = None) -> SetQuality:
    """Coverage, mean size, class-conditional and size-stratified coverage in one bundle.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import set_quality
    >>> q = set_quality(torch.tensor([[True, False], [True, True]]), torch.tensor([0, 0]))
    >>> q.coverage, q.mean_set_size, q.size_stratified.count.tolist()
    (1.0, 1.5, [0, 1, 1])
    """
    flat, labels = _sets_and_target(sets, target, ignore_index)
    return SetQuality(
        coverage=coverage(flat, labels),
        mean_set_size=mean_set_size(flat),
        class_conditional=class_conditional_coverage(flat, labels),
        size_stratified=size_stratified_coverage(flat, labels),
    )


def _intervals(lower: Any, upper: Any) -> tuple[Tensor, Tensor]:
    lower, upper = as_float_tensor("lower", lower), as_float_tensor("upper", upper)
    if lower.shape != upper.shape:
        fail("upper", f"shaped like lower {tuple(lower.shape)}", f"shape {tuple(upper.shape)}")
    if bool((upper < lower).any()):
        fail("upper", "at least lower everywhere", "an interval with upper < lower")
    return lower, upper


def interval_coverage(lower: Any, upper: Any, target: Any) -> float:
    r"""Fraction of targets inside their interval, :math:`\frac1N\sum_i \mathbb 1[l_i \le y_i
    \le u_i]`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import interval_coverage
    >>> interval_coverage(torch.zeros(4), torch.ones(4), torch.tensor([0.5, 1.0, 2.0, -1.0]))
    0.5
    """
    lower, upper = _intervals(lower, upper)
    target = as_float_tensor("target", target)
    if target.shape != lower.shape:
        fail(
            "target",
            f"shaped like the intervals {tuple(lower.shape)}",
            f"shape {tuple(target.shape)}",
        )
    target = target.to(lower)
    return ((lower <= target) & (target <= upper)).double().mean().item()


def mean_interval_width(lower: Any, upper: Any) -> float:
    r"""Mean of ``upper - lower``, :math:`\frac1N \sum_i (u_i - l_i)`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import mean_interval_width
    >>> mean_interval_width(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 4.0]))
    2.0
    """
    lower, upper = _intervals(lower, upper)
    return (upper - lower).double().mean().item()
