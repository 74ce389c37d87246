r"""Calibration metrics of a classifier, as pure functions on tensors.

``probs`` is ``(N, C)`` (rows are distributions), dense ``(N, ..., C)`` with ``layout="probs"``,
Monte-Carlo samples ``(S, N, ..., C)`` with ``layout="samples"`` (averaged over ``S`` first:
average probabilities, never logits) or a prediction result; ``target`` holds integer labels
``(N, ...)`` and ``ignore_index`` drops the points of one label. Every function reads its input
through :func:`bayesdrop.calibration.as_points` and works on any device; the calibration errors
only keep per-bin sums, so their memory is O(``num_bins``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from bayesdrop._validation import check_choice, fail
from bayesdrop.calibration._binning import (
    Binning,
    BinStatistics,
    accumulator_dtype,
    bin_statistics,
    check_num_bins,
    classwise_bin_sums,
    equal_width_edges,
)
from bayesdrop.calibration._fused import fused_top_label_sums
from bayesdrop.calibration._inputs import (
    Layout,
    as_points,
    at_least_float32,
    check_probs_values,
    probs_sum_atol,
    top_label,
    true_class_probability,
)

__all__ = [
    "ClassificationMetrics",
    "Norm",
    "accuracy",
    "brier_score",
    "calibration_error_from_statistics",
    "classification_metrics",
    "classwise_calibration_error",
    "expected_calibration_error",
    "negative_log_likelihood",
]

Norm = Literal["l1", "l2", "max"]
_NORMS = ("l1", "l2", "max")


def brier_per_row(probs: Tensor, target: Tensor) -> Tensor:
    """``sum_c (p_c - 1[c = y])^2`` per row, accurate to the dtype's relative precision.

    The shortcut ``sum_c p_c^2 - 2 p_y + 1`` cancels: for a confident right prediction it loses
    everything below float32's 1e-7 (a Brier score of 1.1e-8 came out as 0). The difference
    is formed exactly instead (``1 - p_y`` is exact for ``p_y >= 1/2``) on a copy of ``probs``.
    """
    residual = probs.clone()
    residual.scatter_add_(-1, target[:, None], -torch.ones_like(residual[:, :1]))
    # a norm kernel is several times faster than square().sum(-1) over a short last dim
    return torch.linalg.vector_norm(residual, dim=-1).square()


@dataclass(frozen=True)
class _TopLabelSums:
    stats: BinStatistics | None  # equal-width bins (None if not asked for)
    brier_sum: Tensor
    nll_sum: Tensor
    num_data: int


def _top_label_sums(
    probs: Any,
    target: Any,
    num_bins: int,
    bins: bool,
    layout: Layout | None = None,
    ignore_index: int | None = None,
    allow_empty: bool = False,
) -> _TopLabelSums:
    """Validate ``probs`` and ``target`` and reduce them to equal-width bin statistics and the sums
    of the per-point Brier scores and NLLs: one fused pass over CPU data (numba), else PyTorch."""
    points = as_points(
        probs,
        target,
        layout=layout,
        ignore_index=ignore_index,
        check_values=False,
        allow_empty=allow_empty,
    )
    probs, target = points.probs, points.labels
    num_bins = check_num_bins(num_bins)
    fused = fused_top_label_sums(probs, target, num_bins)
    atol = probs_sum_atol(probs.dtype)
    if fused is not None and not fused.out_of_range and fused.max_sum_error <= atol:
        edges = equal_width_edges(num_bins, dtype=at_least_float32(probs).dtype)
        acc = fused.counts.dtype
        return _TopLabelSums(
            BinStatistics(edges, fused.counts, fused.confidence_sum, fused.hits),
            torch.tensor(fused.brier_sum, dtype=acc),
            torch.tensor(fused.nll_sum, dtype=acc),
            probs.shape[0],
        )
    # raises on the input the kernel flagged; half precision is summed in float32 or wider
    probs = at_least_float32(check_probs_values(probs))
    acc = accumulator_dtype(probs.device)
    p_true = true_class_probability(probs, target)
    stats: BinStatistics | None = None
    if bins:
        stats = bin_statistics(*top_label(probs, target), num_bins=num_bins)
    brier = brier_per_row(probs, target).to(acc).sum()
    nll = -p_true.clamp_min(torch.finfo(probs.dtype).tiny).log().to(acc).sum()
    return _TopLabelSums(stats, brier, nll, probs.shape[0])


def calibration_error_from_statistics(stats: BinStatistics, norm: Norm = "l1") -> Tensor:
    r"""Calibration error of binned statistics.

    .. math::
        \mathrm{ECE} = \sum_b \frac{n_b}{N} |\mathrm{acc}_b - \mathrm{conf}_b|, \quad
        \mathrm{l2} = \Big(\sum_b \frac{n_b}{N} (\mathrm{acc}_b - \mathrm{conf}_b)^2\Big)^{1/2},
        \quad \mathrm{MCE} = \max_{b: n_b > 0} |\mathrm{acc}_b - \mathrm{conf}_b|.

    Statistics without any point have no calibration error: they raise instead of giving NaN.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import bin_statistics, calibration_error_from_statistics
    >>> stats = bin_statistics(torch.tensor([0.6, 0.9]), torch.tensor([1, 1]), num_bins=2)
    >>> calibration_error_from_statistics(stats).item()  # (0.4 + 0.1) / 2
    0.25
    """
    check_choice("norm", norm, _NORMS)
    if not stats.counts.sum().item() > 0:
        fail("stats", "statistics of at least one point", "0 points", "Bin some data first.")
    gap = (stats.mean_accuracy() - stats.mean_confidence()).abs()
    weight = stats.counts / stats.counts.sum()
    if norm == "l1":
        return (weight * gap).sum()
    if norm == "l2":
        return (weight * gap.square()).sum().sqrt()
    return gap[stats.counts > 0].max()


def expected_calibration_error(
    probs: Tensor,
    target: Tensor,
    *,
    num_bins: int = 15,
    binning: Binning = "equal_width",
    norm: Norm = "l1",
    layout: Layout | None = None,
    ignore_index: int | None = None,
) -> Tensor:
    r"""Top-label expected calibration error (Guo et al., 2017).

    .. math::
        \mathrm{ECE} = \sum_{b=1}^{B} \frac{n_b}{N}\,
        \Big|\frac{1}{n_b}\sum_{i \in b} \mathbb 1[\hat y_i = y_i]
        - \frac{1}{n_b}\sum_{i \in b} \max_c p_{ic}\Big|

    Parameters
    ----------
    probs : Tensor, ndarray or prediction result
        Probabilities ``(N, C)`` (or any input of :func:`~bayesdrop.calibration.as_points`).
    target : Tensor, shape ``(N, ...)``
        Integer labels.
    num_bins : int, default 15
        Number of bins (torchmetrics' default; netcal's is 10).
    binning : {"equal_width", "equal_mass"}
        Equal-width bins on ``[0, 1]`` (the last closed on the right), or edges at quantiles of
        the confidences (adaptive ECE).
    norm : {"l1", "l2", "max"}
        ``"l1"`` is the ECE, ``"l2"`` the root-mean-square error, ``"max"`` the MCE.
    layout : {"probs", "samples"}, optional
        What an array with more than two dimensions holds (see
        :func:`~bayesdrop.calibration.as_points`): dense probabilities ``(N, ..., C)`` or MC
        samples ``(S, N, ..., C)``.
    ignore_index : int, optional
        Points with this label are dropped.

    Returns
    -------
    Tensor
        0-d tensor in ``[0, 1]``, float64 (float32 on MPS).

    References
    ----------
    Guo, Pleiss, Sun, Weinberger, "On Calibration of Modern Neural Networks", ICML 2017.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import expected_calibration_error
    >>> probs = torch.tensor([[0.95, 0.05], [0.85, 0.15], [0.35, 0.65]])
    >>> target = torch.tensor([0, 1, 1])  # right, wrong, right; one point per bin of width 0.1
    >>> round(expected_calibration_error(probs, target, num_bins=10).item(), 4)
    0.4167

    That is :math:`(|1 - 0.95| + |0 - 0.85| + |1 - 0.65|) / 3 = 1.25 / 3`. A confidence on a
    bin edge falls on either side after rounding: ``0.9`` in float32 is ``0.89999998``, in the
    bin ``[0.8, 0.9)``.
    """
    check_choice("norm", norm, _NORMS)
    check_choice("binning", binning, ("equal_width", "equal_mass"))
    if binning == "equal_width":
        stats = _top_label_sums(probs, target, num_bins, True, layout, ignore_index).stats
        assert stats is not None
    else:
        points = as_points(probs, target, layout=layout, ignore_index=ignore_index)
        assert points.target is not None
        stats = bin_statistics(
            *top_label(points.probs, points.target), num_bins=num_bins, binning=binning
        )
    return calibration_error_from_statistics(stats, norm)


def classwise_calibration_error(
    probs: Tensor,
    target: Tensor,
    *,
    num_bins: int = 15,
    layout: Layout | None = None,
    ignore_index: int | None = None,
) -> Tensor:
    r"""Classwise ECE (Kull et al., 2019): the mean over classes of each class's ECE.

    .. math::
        \mathrm{cwECE} = \frac1C \sum_{c=1}^{C} \sum_{b} \frac{n_{cb}}{N}
        \Big|\frac{1}{n_{cb}}\sum_{i \in b} \mathbb 1[y_i = c]
        - \frac{1}{n_{cb}}\sum_{i\in b} p_{ic}\Big|

    where class ``c``'s bins hold every point by its probability ``p_ic`` (equal width). It
    needs ``O(C x num_bins)`` memory beyond the input (rows are binned in chunks), not an
    ``N x C`` one-hot array.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import classwise_calibration_error
    >>> probs = torch.tensor([[0.95, 0.05], [0.85, 0.15], [0.35, 0.65]])
    >>> round(classwise_calibration_error(probs, torch.tensor([0, 1, 1]), num_bins=10).item(), 4)
    0.4167
    """
    points = as_points(probs, target, layout=layout, ignore_index=ignore_index)
    num_bins = check_num_bins(num_bins)
    _, confidence_sum, hits = classwise_bin_sums(points.probs, points.labels, num_bins)
    # n_cb / N * |hits_cb / n_cb - conf_cb / n_cb| = |hits_cb - conf_cb| / N
    return (hits - confidence_sum).abs().sum(1).mean() / points.probs.shape[0]


def brier_score(
    probs: Tensor,
    target: Tensor,
    *,
    layout: Layout | None = None,
    ignore_index: int | None = None,
) -> Tensor:
    r"""Multiclass Brier score, in :math:`[0, 2]`.

    .. math:: \mathrm{BS} = \frac1N\sum_i \sum_c (p_{ic} - \mathbb 1[y_i = c])^2

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import brier_score
    >>> round(brier_score(torch.tensor([[0.5, 0.5], [1.0, 0.0]]), torch.tensor([0, 0])).item(), 6)
    0.25
    """
    sums = _top_label_sums(probs, target, 1, False, layout, ignore_index)
    return sums.brier_sum / sums.num_data


def negative_log_likelihood(
    probs: Tensor,
    target: Tensor,
    *,
    layout: Layout | None = None,
    ignore_index: int | None = None,
) -> Tensor:
    r"""Mean negative log-likelihood :math:`-\frac1N\sum_i \log p_{i y_i}` in nats.

    A zero probability of the true class is clamped at the smallest normal number of the dtype,
    so it contributes a large finite value (87.3 in float32, 708.4 in float64), not inf.
    float16 and bfloat16 probabilities are computed in float32 (a true-class probability of
    1e-6 in float16 costs 13.80 nats, not float16's clamp of 9.70).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import negative_log_likelihood
    >>> round(negative_log_likelihood(torch.tensor([[0.5, 0.5]]), torch.tensor([1])).item(), 6)
    0.693147
    """
    sums = _top_label_sums(probs, target, 1, False, layout, ignore_index)
    return sums.nll_sum / sums.num_data


def accuracy(
    probs: Tensor,
    target: Tensor,
    *,
    layout: Layout | None = None,
    ignore_index: int | None = None,
) -> Tensor:
    """Fraction of points whose most probable class is the target.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import accuracy
    >>> accuracy(torch.tensor([[0.9, 0.1], [0.4, 0.6]]), torch.tensor([0, 0])).item()
    0.5
    """
    stats = _top_label_sums(probs, target, 1, True, layout, ignore_index).stats
    assert stats is not None
    return stats.accuracy_sum.sum() / stats.num_data


@dataclass(frozen=True)
class ClassificationMetrics:
    """Accuracy and calibration of a classifier (all floats; ECE/MCE with ``num_bins`` bins).

    Attributes
    ----------
    accuracy : float
        Fraction of points whose most probable class is the label.
    ece, mce : float
        Top-label expected and maximum calibration error over equal-width bins.
    brier : float
        Multiclass Brier score, in ``[0, 2]``.
    nll : float
        Mean negative log-likelihood of the labels, in nats.
    num_bins : int
        Number of equal-width bins of ``ece`` and ``mce``.
    num_data : int
        Number of points.
    """

    accuracy: float
    ece: float
    mce: float
    brier: float
    nll: float
    num_bins: int
    num_data: int


def classification_metrics(
    probs: Tensor,
    target: Tensor,
    *,
    num_bins: int = 15,
    layout: Layout | None = None,
    ignore_index: int | None = None,
) -> ClassificationMetrics:
    """ECE, MCE, Brier score, NLL and accuracy in one pass over validated inputs.

    Equal to calling each metric on its own, but validates and reduces the data once. On a CPU,
    with numba installed (``pip install bayesdrop[fast]``), large inputs take a compiled path that
    reads every row once; ``BAYESDROP_FUSED=never`` turns it off, ``always`` forces it (see
    :ref:`calibration-speed`).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import classification_metrics
    >>> m = classification_metrics(torch.tensor([[0.9, 0.1], [0.4, 0.6]]), torch.tensor([0, 0]))
    >>> m.accuracy, round(m.brier, 2)
    (0.5, 0.37)
    """
    sums = _top_label_sums(probs, target, num_bins, True, layout, ignore_index)
    stats = sums.stats
    assert stats is not None
    return ClassificationMetrics(
        accuracy=(stats.accuracy_sum.sum() / stats.counts.sum()).item(),
        ece=calibration_error_from_statistics(stats, "l1").item(),
        mce=calibration_error_from_statistics(stats, "max").item(),
        brier=sums.brier_sum.item() / sums.num_data,
        nll=sums.nll_sum.item() / sums.num_data,
        num_bins=stats.edges.numel() - 1,
        num_data=sums.num_data,
    )
