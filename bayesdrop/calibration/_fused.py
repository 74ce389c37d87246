r"""One-pass CPU kernel for the top-label sufficient statistics (private; uses numba if installed).

The classification metrics need, per row of ``probs``: the checks (entries in ``[0, 1]``, the row
sum), the maximum and its first index, the true-class probability and the sum of squares. PyTorch
computes each of these as its own pass over the ``(N, C)`` array, and its reductions over a short
last dimension are slow on a CPU: about 1 s for ``N = 10^7, C = 10`` on one core. This kernel reads
every row once and also bins it, so all of ECE / MCE / Brier / NLL / accuracy cost one pass (about
0.1 s there). It is compiled with numba (``pip install bayesdrop[fast]``); without numba, on other
devices, or for small inputs, the metrics use PyTorch and give the same numbers.

``BAYESDROP_FUSED`` selects the path: ``auto`` (default: the kernel for CPU inputs of at least
:data:`FUSED_MIN_ELEMENTS` entries when numba imports), ``always`` (the kernel whenever it applies,
any size) or ``never`` (PyTorch only).

The kernel keeps the semantics of the PyTorch path exactly: first maximal index on ties, the bin of
``x`` is the ``b`` with ``b / B <= x < (b + 1) / B`` for the exact value of ``x`` (see
:func:`~bayesdrop.calibration._binning.equal_width_bin`: ``floor(B x)`` in float64, lowered by one
when the product was rounded up onto an integer), the last bin closed, sums in float64. float16 and
bfloat16 inputs are converted to float32 first (numba has no half type). It never raises: it
reports whether any entry is outside ``[0, 1]`` (NaN included) and the largest ``|row sum - 1|``,
and the caller then runs the PyTorch checks, which raise with the usual messages.

Rows shorter than :data:`LONG_ROW` are reduced in one scalar pass. Longer rows (many classes) are
reduced in blocks of :data:`ROW_BLOCK` entries by a loop that LLVM vectorises: it reads the entries
as integers (for non-negative floats the order of the bit patterns is that of the values; a
negative entry, ``-0.0`` included, has a negative pattern, and one above 1, inf or NaN a pattern
above that of 1.0), takes their largest and smallest pattern and sums the entries and their squares
in float64 over vector lanes; the first index of the maximum is then found inside the first block
holding it, still in the L1 cache. Only the order of the float64 additions of the row sum and of
the sum of squares (the Brier score) differs from the scalar pass, by rounding (about ``C`` units
of ``2^-53`` per row); the maxima, their indices, the bins, ECE, MCE, accuracy and NLL are the
same bit for bit. A ``-0.0`` entry in a long row sends the input to the PyTorch path, which
accepts it.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bayesdrop._validation import check_choice

__all__ = ["FUSED_MIN_ELEMENTS", "FusedSums", "fused_mode", "fused_top_label_sums"]

#: Below this many entries of ``probs`` PyTorch's kernels are as fast and no compilation is paid.
FUSED_MIN_ELEMENTS = 1 << 20

#: Entries of a row reduced per vectorised block: the maximum is located to a block in the pass,
#: then to its first index inside that block (which is still in the L1 cache).
ROW_BLOCK = 256

#: Rows of at least this many entries take the blocked path; shorter ones one scalar pass.
LONG_ROW = 64


def fused_mode() -> str:
    """``BAYESDROP_FUSED``: ``"auto"`` (default), ``"always"`` or ``"never"``."""
    mode = os.environ.get("BAYESDROP_FUSED", "auto").strip().lower()
    check_choice("BAYESDROP_FUSED", mode, ("auto", "always", "never"))
    return mode


@functools.cache
def _kernel() -> Any:
    """The compiled kernel, or None when numba is not installed."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=True, nogil=True, inline="always")
    def _product_error(a, b, product):
        # Dekker's two-product: a * b - product rounded once, with the exact sign
        c = a * 134217729.0
        a_hi = c - (c - a)
        a_lo = a - a_hi
        cb = b * 134217729.0
        b_hi = cb - (cb - b)
        b_lo = b - b_hi
        return ((a_hi * b_hi - product) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo

    # The row reductions work on the bit patterns of the entries as integers: for non-negative
    # floats their order is that of the values, a negative entry (or -0.0, or a negative NaN) has
    # a negative pattern and an entry above 1 (or inf, or NaN) one above the pattern of 1.0; and
    # integer maxima vectorise where float ones (NaN-aware) do not. Indices are unsigned, so
    # numba emits no wraparound for negative indices, which would also stop the vectoriser.

    # not inlined at numba's level (that defeats LLVM's vectoriser; LLVM inlines it itself);
    # "reassoc" lets the float64 sums be spread over vector lanes, "contract" fuses the square
    # and its sum (x * x is exact in float64 for a float32 x, so that changes nothing there)
    @numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
    def _block(probs, bits, i, start, stop):
        # one vectorised pass over probs[i, start:stop]: the largest and smallest pattern, the
        # sum and the sum of squares in float64
        hi = bits[i, start]
        lo = hi
        total = 0.0
        squares = 0.0
        for j in range(start, stop):
            pattern = bits[i, j]
            hi = max(hi, pattern)
            lo = min(lo, pattern)
            x = np.float64(probs[i, j])
            total += x
            squares += x * x
        return hi, lo, total, squares

    @numba.njit(cache=True, nogil=True)
    def _first(bits, i, value, start, stop):
        # the first j in [start, stop) with bits[i, j] == value (stop where there is none), as
        # a minimum over the block, which vectorises, not as a search that stops early
        first = stop
        for j in range(start, stop):
            first = min(first, j if bits[i, j] == value else stop)
        return first

    @numba.njit(cache=True, nogil=True)
    def _long_row(probs, bits, i, block, one):
        # (first index of the maximum, entries in [0, 1], sum, sum of squares) of row i, block
        # by block: the pass finds the first block holding the maximum, then the index is found
        # inside that block (in the L1 cache by then)
        c = np.uint64(probs.shape[1])
        hi = bits[i, 0]
        lo = hi
        where = np.uint64(0)
        total = 0.0
        squares = 0.0
        for start in range(np.uint64(0), c, block):
            stop = min(start + block, c)
            b_hi, b_lo, b_total, b_squares = _block(probs, bits, i, start, stop)
            if b_hi > hi:  # strict: the first block holding the maximum
                hi = b_hi
                where = start
            lo = min(lo, b_lo)
            total += b_total
            squares += b_squares
        stop = min(where + block, c)
        first = _first(bits, i, hi, where, stop)
        return np.int64(where if first == stop else first), lo >= 0 and hi <= one, total, squares

    @numba.njit(cache=True, nogil=True)
    def _short_row(probs, i):
        # the same as _long_row in one scalar pass, on the values (faster for a few classes)
        best = probs[i, 0]
        best_index = 0
        row_lo = best
        total = np.float64(best)
        squares = np.float64(best) * np.float64(best)
        for j in range(1, probs.shape[1]):
            x = probs[i, j]
            greater = x > best  # strict: the first maximal index wins, as argmax
            best_index = j if greater else best_index  # selects, not branches
            best = x if greater else best
            row_lo = min(row_lo, x)
            total += x
            squares += np.float64(x) * np.float64(x)
        return best_index, row_lo >= 0.0 and best <= 1.0, total, squares

    @numba.njit(cache=True, nogil=True)
    def top_label_sums(
        probs, bits, one, target, num_bins, long_from, block, tiny, counts, hits, confidence_sum
    ):
        n, c = probs.shape
        in_range = True  # every entry in [0, 1] (NaN is not)
        max_sum_error = 0.0  # largest |row sum - 1|, NaN once any entry is NaN
        brier = 0.0
        nll = 0.0
        for i in range(n):
            if c >= long_from:
                best_index, row_in_range, row_sum, row_squares = _long_row(
                    probs, bits, np.uint64(i), np.uint64(block), one
                )
            else:
                best_index, row_in_range, row_sum, row_squares = _short_row(probs, i)
            in_range = in_range and row_in_range
            error = abs(row_sum - 1.0)
            if error > max_sum_error or error != error:
                max_sum_error = error
            best = probs[i, best_index]
            y = target[i]
            p_true = probs[i, y]
            x = np.float64(best)
            v = x * num_bins
            # guard the index: NaN or inf entries (reported, then rejected by the caller) must
            # not write outside the bins
            b = num_bins - 1
            if v >= 0.0 and v < num_bins:
                b = int(v)
                if b == v and b > 0 and _product_error(x, num_bins, v) < 0.0:
                    b -= 1  # B x was rounded up onto the edge: x is below it
            elif not v >= 0.0:
                b = 0
            counts[b] += 1
            confidence_sum[b] += best
            hits[b] += best_index == y
            brier += row_squares - 2.0 * p_true + 1.0
            nll -= np.log(max(np.float64(p_true), tiny))
        return in_range, max_sum_error, brier, nll

    return top_label_sums


@dataclass(frozen=True)
class FusedSums:
    """What the kernel returns: per-bin sums and the totals of the per-point losses."""

    counts: Tensor
    hits: Tensor
    confidence_sum: Tensor
    brier_sum: float
    nll_sum: float
    out_of_range: bool
    max_sum_error: float


def fused_top_label_sums(probs: Tensor, target: Tensor, num_bins: int) -> FusedSums | None:
    """Run the kernel on ``probs (N, C)`` and valid labels ``target (N,)``, or return None where
    it does not apply (the caller then uses PyTorch).

    ``target`` must already be checked to lie in ``[0, C)``: the compiled loop does not check
    bounds.
    """
    mode = fused_mode()
    if mode == "never" or probs.device.type != "cpu" or target.device.type != "cpu":
        return None
    if not probs.is_floating_point() or probs.ndim != 2:
        return None
    if mode == "auto" and probs.numel() < FUSED_MIN_ELEMENTS:
        return None
    kernel = _kernel()
    if kernel is None:
        return None
    if probs.dtype in (torch.float16, torch.bfloat16):
        probs = probs.float()  # a copy: the loop reads float32, sums in float64
    p = probs.detach().contiguous().numpy()
    y = target.detach().contiguous().numpy()
    counts = np.zeros(num_bins, dtype=np.int64)
    hits = np.zeros(num_bins, dtype=np.int64)
    confidence_sum = np.zeros(num_bins)
    tiny = float(np.finfo(p.dtype).tiny)
    bits = p.view(np.int32 if p.dtype == np.float32 else np.int64)
    one = int(np.array(1.0, dtype=p.dtype).view(bits.dtype))
    in_range, max_sum_error, brier, nll = kernel(
        p, bits, one, y, num_bins, LONG_ROW, ROW_BLOCK, tiny, counts, hits, confidence_sum
    )
    return FusedSums(
        torch.from_numpy(counts).double(),
        torch.from_numpy(hits).double(),
        torch.from_numpy(confidence_sum),
        float(brier),
        float(nll),
        # NaN and inf reach the row sums, so a finite max_sum_error means finite entries
        not (in_range and math.isfinite(max_sum_error)),
        float(max_sum_error),
    )
