r"""Per-bin sufficient statistics of top-label confidences.

A calibration metric only needs, for every bin :math:`b`, the number of points :math:`n_b`, the
sum of their confidences and the sum of their correctness indicators. These three vectors of length
``num_bins`` are all a streaming metric keeps, and they add up across batches and processes.

Bins are half-open :math:`[e_b, e_{b+1})` except the last, which is closed on the right, so a
confidence of exactly 1.0 falls in the last bin (Guo et al., 2017; netcal does the same,
torchmetrics puts it in a separate, hidden bin).

Equal-width bins use the exact edges :math:`b/B`: the bin of a confidence :math:`x` is the
:math:`b` with :math:`b/B \le x < (b+1)/B` for the exact value of the floating-point number
:math:`x` (the last bin closed), on every path. So the double ``0.3``, which is slightly less than
:math:`3/10`, is in bin :math:`[0.2, 0.3)`. A plain ``floor(B * x)`` in float64 rounds
:math:`B x` first and would put it in :math:`[0.3, 0.4)`; ``equal_width_bin`` corrects that
with the exact rounding error of the product (Dekker's two-product). For float32 and half inputs
the product is exact in float64 and nothing changes. netcal compares with the edges of
``numpy.linspace(0, 1, B + 1)``, which give the same bins whenever those edges round up (all
edges for ``B = 10``); torchmetrics compares with float32 edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from bayesdrop._validation import as_tensor, check_choice, check_finite, check_positive_int, fail
from bayesdrop.calibration._inputs import as_float_tensor

__all__ = [
    "MAX_BINS",
    "BinStatistics",
    "Binning",
    "bin_statistics",
    "check_num_bins",
    "classwise_bin_sums",
    "equal_mass_edges",
    "equal_width_bin",
    "equal_width_edges",
]

Binning = Literal["equal_width", "equal_mass"]


#: The most bins any calibration function takes: more bins than this are an allocation error
#: (``torch.bincount`` of ``10**12`` bins), never a meaningful histogram.
MAX_BINS = 1 << 20


def check_num_bins(num_bins: object, name: str = "num_bins") -> int:
    """A number of bins in ``1..MAX_BINS``."""
    num_bins = check_positive_int(name, num_bins)
    if num_bins > MAX_BINS:
        fail(name, f"at most {MAX_BINS} bins", num_bins, "Use fewer bins than points.")
    return num_bins


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


def equal_width_bin(x: Tensor, num_bins: int) -> Tensor:
    r"""The equal-width bin of every entry of ``x`` in ``[0, 1]``, exactly.

    Returns the integer :math:`b` with :math:`b/B \le x < (b+1)/B` for the exact value of ``x``,
    clamped to ``[0, B - 1]`` (so 1.0 is in the last bin). :math:`p = \mathrm{fl}(Bx)` can only
    be rounded up onto an integer; Dekker's exact product error tells when it was.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration._binning import equal_width_bin
    >>> x = torch.tensor([0.3, 0.30000000000000004, 1.0], dtype=torch.float64)
    >>> equal_width_bin(x, 10)  # the double 0.3 is below 3/10
    tensor([2, 3, 9])
    """
    num_bins = check_num_bins(num_bins)
    acc = accumulator_dtype(x.device)
    wide = x.to(acc)
    product = wide * num_bins
    index = product.floor()
    # float32 (or half) times B < 2^29 is exact in float64: no rounding to undo
    if not (acc == torch.float64 and x.dtype != torch.float64 and num_bins < 2**29):
        on_integer = index == product
        if bool(on_integer.any()):
            error = _product_error(wide[on_integer], float(num_bins), product[on_integer])
            index[on_integer] -= (error < 0).to(index.dtype)
    return index.long().clamp_(0, num_bins - 1)


def _product_error(a: Tensor, b: float, product: Tensor) -> Tensor:
    """``a * b - product`` rounded once (its sign is exact), for ``product = fl(a * b)``."""
    split = 134217729.0 if a.dtype == torch.float64 else 4097.0  # 2^27 + 1 or 2^12 + 1
    c = a * split
    a_hi = c - (c - a)
    a_lo = a - a_hi
    cb = b * split
    b_hi = cb - (cb - b)
    b_lo = b - b_hi
    return ((a_hi * b_hi - product) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def equal_width_edges(num_bins: int, *, dtype=torch.float64, device=None) -> Tensor:
    """The ``num_bins + 1`` equal-width edges ``b / num_bins``, ``b`` from 0 to ``num_bins``.

    Examples
    --------
    >>> from bayesdrop.calibration import equal_width_edges
    >>> equal_width_edges(4)
    tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000], dtype=torch.float64)
    """
    num_bins = check_num_bins(num_bins)
    return torch.arange(num_bins + 1, dtype=torch.float64, device=device).div(num_bins).to(dtype)


def equal_mass_edges(confidence: Tensor, num_bins: int) -> Tensor:
    """Edges at the ``b / num_bins`` quantiles of ``confidence`` (linear interpolation).

    The outer edges are set to 0 and 1, as netcal does, so every confidence lies inside.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import equal_mass_edges
    >>> equal_mass_edges(torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0]), 2)
    tensor([0.0000, 0.6000, 1.0000])
    """
    num_bins = check_num_bins(num_bins)
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

    ``confidence`` must be finite and in ``[0, 1]``; ``correct`` is boolean (or integer,
    nonzero = correct), or floating in ``[0, 1]`` for fractional hits. Equal-width bins follow
    ``equal_width_bin``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import bin_statistics
    >>> stats = bin_statistics(torch.tensor([0.3, 0.9, 1.0]), torch.tensor([0, 1, 1]), num_bins=2)
    >>> stats.counts
    tensor([1., 2.], dtype=torch.float64)
    """
    num_bins = check_num_bins(num_bins)
    check_choice("binning", binning, ("equal_width", "equal_mass"))
    confidence, correct = _check_binning_input(confidence, correct)
    acc = accumulator_dtype(confidence.device)
    conf64 = confidence.to(acc)
    if binning == "equal_width":
        edges = equal_width_edges(num_bins, dtype=confidence.dtype, device=confidence.device)
        index = equal_width_bin(confidence, num_bins)
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


def _check_binning_input(confidence: Tensor, correct: Tensor) -> tuple[Tensor, Tensor]:
    confidence = as_float_tensor("confidence", confidence)
    if confidence.ndim != 1:
        fail("confidence", "a 1-D tensor", f"shape {tuple(confidence.shape)}")
    lo, hi = (v.item() for v in torch.aminmax(confidence))
    if lo < 0.0 or hi > 1.0:
        fail("confidence", "in [0, 1]", f"values in [{lo:.4g}, {hi:.4g}]")
    correct = as_tensor("correct", correct)
    if correct.shape != confidence.shape:
        want = f"of shape {tuple(confidence.shape)} like `confidence`"
        fail("correct", want, f"shape {tuple(correct.shape)}")
    if correct.is_floating_point():
        c_lo, c_hi = (v.item() for v in torch.aminmax(check_finite("correct", correct)))
        if c_lo < 0.0 or c_hi > 1.0:
            fail("correct", "boolean or fractions in [0, 1]", f"values in [{c_lo:.4g}, {c_hi:.4g}]")
    return confidence, correct.to(confidence.device)


#: Entries of ``probs`` binned at once by :func:`classwise_bin_sums` (bounds its scratch memory).
CLASSWISE_CHUNK_ELEMENTS = 1 << 18


def classwise_bin_sums(probs: Tensor, target: Tensor, num_bins: int) -> tuple[Tensor, ...]:
    """Per-class equal-width bin sums of validated ``probs (N, C)`` and ``target (N,)``.

    Returns ``counts``, ``confidence_sum`` and ``hits`` of shape ``(C, num_bins)``: class ``c``'s
    bins hold every point by ``probs[:, c]``, a hit being ``target == c``. Rows are processed in
    chunks of about :data:`CLASSWISE_CHUNK_ELEMENTS` entries, so the extra memory is
    ``O(C * num_bins)`` plus a fixed scratch, never an ``N x C`` one-hot array.
    """
    num_classes = probs.shape[1]
    acc = accumulator_dtype(probs.device)
    size = num_classes * num_bins
    counts = torch.zeros(size, dtype=torch.long, device=probs.device)
    hits = torch.zeros(size, dtype=torch.long, device=probs.device)
    confidence_sum = torch.zeros(size, dtype=acc, device=probs.device)
    offsets = torch.arange(num_classes, device=probs.device) * num_bins
    rows = max(1, CLASSWISE_CHUNK_ELEMENTS // num_classes)
    for start in range(0, probs.shape[0], rows):
        chunk = probs[start : start + rows]
        index = equal_width_bin(chunk.reshape(-1), num_bins).view(chunk.shape).add_(offsets)
        counts += torch.bincount(index.reshape(-1), minlength=size)
        weights = chunk.reshape(-1).to(acc)
        confidence_sum += torch.bincount(index.reshape(-1), weights=weights, minlength=size)
        y = target[start : start + rows]
        hits += torch.bincount(index.gather(1, y[:, None]).reshape(-1), minlength=size)
    shape = (num_classes, num_bins)
    return counts.to(acc).view(shape), confidence_sum.view(shape), hits.to(acc).view(shape)
