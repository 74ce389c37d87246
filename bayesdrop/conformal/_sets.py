r"""Prediction sets of the scores that rank the classes (APS, RAPS), in row chunks.

The all-class scores (:func:`~bayesdrop.conformal._scores.point_scores`) sort every point's
probabilities with a stable sort, keep the int64 order and scatter the scores back: for
:math:`N` points and :math:`C` classes that is :math:`O(NC \log C)` time and about twenty times
the memory of the boolean sets. The sets need less, for three reasons:

* **A set is a prefix of the ranking.** In rank order the score is
  :math:`\mathrm{fl}(S_r - \mathrm{fl}((1 - u) v_r)) + \mathrm{fl}(\lambda (r - k)^+)` with
  :math:`v_1 \ge v_2 \ge \dots \ge 0` the sorted probabilities and :math:`S_r` their running sum
  (rounded, nondecreasing): every term is monotone in :math:`r` and rounding is monotone, so
  the score is nondecreasing along the ranking even in floating point, and
  :math:`\{r : s_r \le \hat q\}` is :math:`\{1, \dots, m\}` with :math:`m` one count per row.
* **The scores at the ranks need the sorted values only, not the order.** Tied values are
  interchangeable in :math:`S_r`; the running sum is PyTorch's own ``cumsum`` of the same
  sequence (so every score is bit for bit the all-class one). On the CPU the values are sorted
  by NumPy's value-only sort (SIMD quicksort on x86 since NumPy 2.0), several times faster
  than ``torch.sort``, which also produces and moves the indices.
* **The first m classes of the stable order follow from the m-th value** :math:`v_m`: every
  class with :math:`p > v_m`, and the lowest-index classes with :math:`p = v_m` up to
  :math:`m` in all (counted only on rows where the tie straddles the edge).

With Mondrian quantiles :math:`\hat q_y` a set is no prefix, but it lies within the prefix of
:math:`\max_y \hat q_y`: those :math:`K` classes (at most) are found as above, put in stable
order by a sort of :math:`K` entries, and compared with their own class's quantile.

Memory: rows are processed ``rows_per_chunk`` at a time (see :func:`rows_per_chunk`), so the
working memory beyond the ``(N, C)`` boolean output is bounded by the byte budget (a few
``(rows, C)`` float buffers).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["DEFAULT_CHUNK_BYTES", "ranked_scores", "rows_per_chunk", "sets_of", "sorted_values"]

DEFAULT_CHUNK_BYTES = 64 * 2**20


def rows_per_chunk(
    num_classes: int, itemsize: int, chunk_bytes: int, mondrian: bool = False
) -> int:
    """Rows whose working memory fits ``chunk_bytes`` (at least one row): per entry of a
    ``(rows, C)`` chunk, three floats of ``itemsize`` bytes alive at once in :func:`sets_of`
    (the sorted values, their running sum, the draw term) and one byte; with Mondrian
    quantiles four floats, three int64 indices and two bytes (the stable order of the
    prefix)."""
    per_entry = 4 * itemsize + 3 * 8 + 2 if mondrian else 3 * itemsize + 1
    return max(1, chunk_bytes // (num_classes * per_entry))


def ranked_scores(ordered: Tensor, u: Tensor | None, lam: float, k_reg: int) -> Tensor:
    """APS/RAPS scores at the ranks of probabilities sorted in decreasing order ``(R, C)``:
    the running sum less ``(1 - u) p`` (randomised), plus ``lam (rank - k_reg)^+``."""
    scores = ordered.cumsum(-1)
    if u is not None:  # cumsum - (1 - u) p: everything ranked above, plus u p
        scores.sub_((1 - u)[:, None] * ordered)
    if lam > 0:
        rank = torch.arange(1, ordered.shape[-1] + 1, device=ordered.device, dtype=ordered.dtype)
        scores.add_(lam * (rank - k_reg).clamp_min(0))
    return scores


def sorted_values(probs: Tensor) -> Tensor:
    """The rows of ``probs (R, C)`` sorted in decreasing order (values only)."""
    if probs.device.type != "cpu":
        return probs.sort(dim=-1, descending=True).values
    values = np.negative(probs.detach().numpy(), order="C")  # ascending sort of -p
    values.sort(axis=-1)
    np.negative(values, out=values)
    return torch.from_numpy(values)


def _first(probs: Tensor, ordered: Tensor, m: Tensor, out: Tensor) -> Tensor:
    """``out (R, C)``: the first ``m[r]`` classes of row ``r`` in the stable decreasing order
    (ties by class index), from the sorted values ``ordered`` alone."""
    c = probs.shape[-1]
    edge = ordered.gather(-1, (m - 1).clamp_min(0)[:, None])  # v_m
    torch.ge(probs, edge, out=out)
    empty = m == 0
    if bool(empty.any()):
        out[empty] = False
    after = ordered.gather(-1, m.clamp_max(c - 1)[:, None])
    straddle = (m > 0) & (m < c) & (after[:, 0] == edge[:, 0])  # v_{m+1} = v_m: cut the tie
    if bool(straddle.any()):
        rows = straddle.nonzero()[:, 0]
        p, v = probs[rows], edge[rows]
        # classes above v_m: the sorted values before the first v_m
        above = torch.searchsorted(-ordered[rows], -v)[:, 0]
        tied = p == v
        out[rows] = (p > v) | (tied & (tied.cumsum(-1) <= (m[rows] - above)[:, None]))
    return out


def _count_at_most(scores: Tensor, q: Tensor) -> Tensor:
    bound = q.reshape(1, 1).expand(scores.shape[0], 1).contiguous()
    return torch.searchsorted(scores, bound, right=True)[:, 0]


def sets_of(
    probs: Tensor,
    quantile: Tensor,
    u: Tensor | None,
    lam: float,
    k_reg: int,
    out: Tensor,
) -> Tensor:
    """``out (R, C)`` boolean: the APS/RAPS sets ``{y : s(x, y) <= q}`` of the rows of
    ``probs``, ``quantile`` of shape ``()`` or ``(C,)`` (Mondrian). Equal to comparing
    :func:`~bayesdrop.conformal._scores.point_scores` with the quantile, without its sort."""
    ordered = sorted_values(probs)
    scores = ranked_scores(ordered, u, lam, k_reg)
    q = quantile.to(scores)
    # the scores are nondecreasing along each row, so ``s <= q`` is a prefix: count it by
    # bisection, the number of scores at most q
    if q.ndim == 0:
        return _first(probs, ordered, _count_at_most(scores, q), out)
    size = _count_at_most(scores, q.max())  # the set lies within this prefix
    k = int(size.max()) if size.numel() else 0
    out.zero_()
    if k == 0:
        return out
    first = _first(probs, ordered, torch.full_like(size, k), torch.empty_like(out))
    index = first.nonzero()[:, 1].reshape(-1, k)  # k per row, in class order
    rank = probs.gather(-1, index).sort(dim=-1, descending=True, stable=True).indices
    index = index.gather(-1, rank)  # the first k classes in stable order
    return out.scatter_(-1, index, scores[:, :k] <= q[index])
