r"""Per-bin sufficient statistics of top-label confidences.

A calibration metric only needs, for every bin :math:`b`, the number of points :math:`n_b`, the
sum of their confidences and the sum of their correctness indicators. These three vectors of length
``num_bins`` are all a streaming metric keeps, and they add up across batches and processes.

Bins are half-open :math:`[e_b, e_{b+1})` except the last, which is closed on the right, so a
confidence of exactly 1.0 falls in the last bin (Guo et al., 2017; netcal does the same,
torchmetrics puts it in a separate, hidden bin). Equal-width bins use the exact edges
:math:`b/B`: the bin of :math:`x` is :math:`\min(\lfloor B x \rfloor, B - 1)`, computed in float64
(exact for float32 confidences, as netcal's float64 edges; torchmetrics compares with float32
edges, which can differ for a confidence within one float32 step of an edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from bayesdrop._validation import check_choice, check_positive_int, fail

__all__ = ["BinStatistics", "Binning", "bin_statistics", "equal_mass_edges", "equal_width_edges"]

Binning = Literal["equal_width", "equal_mass"]


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64


@dataclass(frozen=True)
class BinStatistics:
    """Sufficient statistics of a binned set of top-label predictions.

    Attributes
    ----------
    edges : Tensor, shape ``(num_bins + 1,)``
        Bin edges, from 0 to 1.
    counts : Tensor, shape ``(num_bins,)``
        Number of points per bin.
    confidence_sum, accuracy_sum : Tensor, shape ``(num_bins,)``
        Sum of the confidences and of the correctness indicators per bin.
    """

    edges: Tensor
    counts: Tensor
    confidence_sum: Tensor
    accuracy_sum: Tensor

    @property
    def num_data(self) -> int:
        return int(self.counts.sum().item())

    def mean_confidence(self) -> Tensor:
        """Mean confidence per bin (0 for an empty bin)."""
        return self.confidence_sum / self.counts.clamp_min(1)

    def mean_accuracy(self) -> Tensor:
        """Accuracy per bin (0 for an empty bin)."""
        return self.accuracy_sum / self.counts.clamp_min(1)

    def merge(self, other: BinStatistics) -> BinStatistics:
        """The statistics of the union of two data sets binned with the same edges."""
        if not torch.equal(self.edges.cpu(), other.edges.cpu()):
            fail("other", "binned with the same edges", "different edges", "Use equal-width bins.")
        return BinStatistics(
            self.edges,
            self.counts + other.counts,
            self.confidence_sum + other.confidence_sum,
            self.accuracy_sum + other.accuracy_sum,
        )


def equal_width_edges(num_bins: int, *, dtype=torch.float64, device=None) -> Tensor:
    """The ``num_bins + 1`` equal-width edges ``b / num_bins``, ``b`` from 0 to ``num_bins``.

    Examples
    --------
    >>> equal_width_edges(4)
    tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000], dtype=torch.float64)
    """
    num_bins = check_positive_int("num_bins", num_bins)
    return torch.arange(num_bins + 1, dtype=torch.float64, device=device).div(num_bins).to(dtype)


def equal_mass_edges(confidence: Tensor, num_bins: int) -> Tensor:
    """Edges at the ``b / num_bins`` quantiles of ``confidence`` (linear interpolation).

    The outer edges are set to 0 and 1, as netcal does, so every confidence lies inside.

    Examples
    --------
    >>> equal_mass_edges(torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0]), 2)
    tensor([0.0000, 0.6000, 1.0000])
    """
    num_bins = check_positive_int("num_bins", num_bins)
    levels = equal_width_edges(num_bins, dtype=torch.float64, device=confidence.device)
    values = confidence.reshape(-1).sort().values.to(levels.dtype)
    pos = levels * (values.numel() - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    a, b, t = values[lo], values[hi], pos - lo
    # NumPy's linear interpolation, evaluated from the nearer end.
    edges = torch.where(t < 0.5, a + (b - a) * t, b - (b - a) * (1 - t))
    edges[0], edges[-1] = 0.0, 1.0
    return edges.to(confidence.dtype)


def bin_statistics(
    confidence: Tensor, correct: Tensor, *, num_bins: int = 15, binning: Binning = "equal_width"
) -> BinStatistics:
    """Bin top-label ``confidence (N,)`` and ``correct (N,)`` indicators.

    ``correct`` is boolean (or integer, nonzero = correct), or floating for fractional hits.

    Examples
    --------
    >>> stats = bin_statistics(torch.tensor([0.3, 0.9, 1.0]), torch.tensor([0, 1, 1]), num_bins=2)
    >>> stats.counts
    tensor([1., 2.], dtype=torch.float64)
    """
    num_bins = check_positive_int("num_bins", num_bins)
    check_choice("binning", binning, ("equal_width", "equal_mass"))
    acc = accumulator_dtype(confidence.device)
    conf64 = confidence.to(acc)
    if binning == "equal_width":
        edges = equal_width_edges(num_bins, dtype=confidence.dtype, device=confidence.device)
        index = conf64.mul(num_bins).long().clamp_(0, num_bins - 1)
    else:
        edges = equal_mass_edges(confidence, num_bins)
        # right=True counts the interior edges <= x: bins [e_b, e_{b+1}), the last one closed.
        index = torch.bucketize(confidence.contiguous(), edges[1:-1], right=True)
    conf_sum = torch.bincount(index, weights=conf64, minlength=num_bins)
    if not correct.is_floating_point():
        # one integer histogram over (bin, correct) pairs gives both counts and hits
        index.add_(correct.to(torch.bool), alpha=num_bins)
        pairs = torch.bincount(index, minlength=2 * num_bins).to(acc)
        hits, counts = pairs[num_bins:], pairs[:num_bins] + pairs[num_bins:]
    else:
        counts = torch.bincount(index, minlength=num_bins).to(acc)
        hits = torch.bincount(index, weights=correct.to(acc), minlength=num_bins)
    return BinStatistics(edges, counts, conf_sum, hits)
