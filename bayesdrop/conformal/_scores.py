r"""Non-conformity scores of classification sets, for every class at once.

With MC-mean probabilities :math:`\bar p(x)` sorted in decreasing order, :math:`o_x(y)` the
1-based rank of class :math:`y`, and :math:`u \sim U(0, 1)` one draw per point:

.. math::

    s_\text{lac}(x, y) &= 1 - \bar p_y(x) \\
    s_\text{aps}(x, y) &= \sum_{j:\, o_x(j) < o_x(y)} \bar p_j(x) + u\, \bar p_y(x)
        \quad (u = 1 \text{ without randomisation}) \\
    s_\text{raps}(x, y) &= s_\text{aps}(x, y) + \lambda\, (o_x(y) - k_\text{reg})^+ \\
    s_\text{mi}(x, y) &= \frac{1 - \bar p_y(x)}{1 + \beta\, I(x)} \\
    s_\text{spread}(x, y) &= \frac{1 - \bar p_y(x)}{1 + \beta\, \sigma_y(x)}

:math:`I(x)` is the mutual information (nats) and :math:`\sigma_y(x)` the standard deviation of
the sampled probabilities :math:`p_{s,y}(x)` over the MC samples (population, divisor
:math:`S`): the epistemic parts of a :class:`~bayesdrop.ClassificationPrediction`. Dividing by
:math:`1 + \beta\,\cdot` lowers the score of points (``"mi"``) or classes (``"spread"``) the
dropout samples disagree on, so their sets grow; :math:`\beta = 0` is LAC. (Bethell et al.'s
MC-CP conformalises the MC-mean probabilities with APS/RAPS, which ``"aps"``/``"raps"`` on a
prediction object do; the two normalised scores are this package's choice.) A set is
:math:`\{y : s(x, y) \le \hat q\}`.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from bayesdrop._validation import check_choice, check_positive, check_positive_int, fail
from bayesdrop.conformal._inputs import Points, as_points
from bayesdrop.conformal._sets import DEFAULT_CHUNK_BYTES, ranked_scores, rows_per_chunk

__all__ = [
    "SCORES",
    "ScoreName",
    "conformity_scores",
    "lac_threshold",
    "point_scores",
    "true_class_scores",
]

ScoreName = Literal["lac", "aps", "raps", "mi", "spread"]
SCORES: tuple[str, ...] = ("lac", "aps", "raps", "mi", "spread")


def _aps(probs: Tensor, u: Tensor | None, lam: float, k_reg: int) -> Tensor:
    ordered, index = probs.sort(dim=-1, descending=True, stable=True)
    scores = ranked_scores(ordered, u, lam, k_reg)
    return torch.empty_like(scores).scatter_(-1, index, scores)


def uniform_draws(points: Points, u: Any, generator: torch.Generator | None) -> Tensor:
    """APS/RAPS's uniforms ``(P,)``: ``u`` checked (shaped like the points), else drawn."""
    n = points.probs.shape[0]
    if u is None:
        gen_device = generator.device if generator is not None else points.probs.device
        draw = torch.rand(n, generator=generator, device=gen_device, dtype=points.probs.dtype)
        return draw.to(points.probs.device)
    if not isinstance(u, Tensor) or u.shape != points.shape:
        got = f"shape {tuple(u.shape)}" if isinstance(u, Tensor) else type(u).__name__
        fail("u", f"a tensor of shape {points.shape} (one uniform per point)", got)
    u = u.reshape(-1).to(points.probs)
    if bool(((u < 0) | (u > 1) | u.isnan()).any()):
        fail("u", "uniform draws in [0, 1]", "values outside")
    return u


def _mutual_information(points: Points) -> Tensor:
    if points.mutual_information is None:
        fail(
            "x",
            'a ClassificationPrediction for score="mi" (it needs the mutual information)',
            "a tensor of probabilities",
            "Pass the result of bayesdrop.mc_predict(...).",
            type_error=True,
        )
    return points.mutual_information.clamp_min(0)  # float rounding can give -1e-8


def _samples(points: Points) -> Tensor:
    if points.samples is None:
        fail(
            "x",
            'a ClassificationPrediction with samples for score="spread"',
            "no samples",
            "Predict with bayesdrop.mc_predict(..., return_samples=True).",
            type_error=True,
        )
    return points.samples


def point_scores(
    points: Points,
    score: str,
    *,
    lam: float = 0.01,
    k_reg: int = 5,
    beta: float = 1.0,
    randomized: bool = True,
    u: Any = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """All-class scores ``(P, C)`` of validated points (see :func:`conformity_scores`)."""
    probs = points.probs
    if score == "lac":
        return 1 - probs
    if score in ("aps", "raps"):
        draw = uniform_draws(points, u, generator) if randomized else None
        if score == "aps":
            return _aps(probs, draw, 0.0, 0)
        return _aps(probs, draw, check_positive("lam", lam, allow_zero=True), k_reg)
    beta = check_positive("beta", beta, allow_zero=True)
    if score == "mi":
        return (1 - probs) / (1 + beta * _mutual_information(points))[:, None]
    return (1 - probs) / (1 + beta * _samples(points).std(0, correction=0))


def true_class_scores(
    points: Points,
    score: str,
    *,
    lam: float = 0.01,
    k_reg: int = 5,
    beta: float = 1.0,
    randomized: bool = True,
    u: Any = None,
    generator: torch.Generator | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Tensor:
    r"""Scores of the true classes ``(P',)`` of points with a target, ignored points dropped.

    The same numbers as :func:`point_scores` gathered at the labels (up to float rounding of
    the sums), in :math:`O(PC)` without a sort: the probability ranked above the label under a
    stable descending sort is :math:`\sum_j \bar p_j [\bar p_j > \bar p_y \lor (\bar p_j =
    \bar p_y \land j < y)]`, and the rank :math:`o_x(y)` is one more than their count. The
    sums are taken a chunk of rows at a time (``chunk_bytes`` of working memory).
    """
    labels, keep, probs = points.target, points.keep, points.probs
    assert labels is not None  # the callers check
    draw = None
    if randomized and score in ("aps", "raps"):
        draw = uniform_draws(points, u, generator)
    if keep is not None:
        labels, probs = labels[keep], probs[keep]
        draw = None if draw is None else draw[keep]
    p_y = probs.gather(-1, labels[:, None])[:, 0]
    if score == "lac":
        return 1 - p_y
    if score in ("aps", "raps"):
        lam = check_positive("lam", lam, allow_zero=True) if score == "raps" else 0.0
        mass, count = _mass_above(probs, p_y, labels, lam > 0, chunk_bytes)
        out = mass + (p_y if draw is None else draw * p_y)
        if count is not None:
            rank = count.to(probs.dtype) + 1
            out = out + lam * (rank - k_reg).clamp_min(0)
        return out
    beta = check_positive("beta", beta, allow_zero=True)
    if score == "mi":
        mi = _mutual_information(points)
        return (1 - p_y) / (1 + beta * (mi if keep is None else mi[keep]))
    samples = _samples(points)
    samples = samples if keep is None else samples[:, keep]
    spread = samples.gather(-1, labels[None, :, None].expand(samples.shape[0], -1, 1))
    return (1 - p_y) / (1 + beta * spread[..., 0].std(0, correction=0))


def _mass_above(
    probs: Tensor, p_y: Tensor, labels: Tensor, counts: bool, chunk_bytes: int
) -> tuple[Tensor, Tensor | None]:
    """Per row: the probability ranked above the label (and how many classes), in chunks."""
    n, c = probs.shape
    cols = torch.arange(c, device=probs.device)
    mass = torch.empty_like(p_y)
    count = torch.empty(n, dtype=torch.int64, device=probs.device) if counts else None
    rows = rows_per_chunk(c, probs.element_size(), chunk_bytes)
    for start in range(0, n, rows):
        part = slice(start, start + rows)
        chunk, p, y = probs[part], p_y[part, None], labels[part, None]
        above = (chunk > p) | ((chunk == p) & (cols < y))
        mass[part] = torch.where(above, chunk, 0).sum(-1)
        if count is not None:
            count[part] = above.sum(-1)
    return mass, count


_BITS = {torch.float32: torch.int32, torch.float64: torch.int64}


def lac_threshold(quantile: Tensor, dtype: torch.dtype) -> Tensor:
    """The smallest probability ``t`` of ``dtype`` with ``1 - t <= quantile`` in that dtype's
    arithmetic, so ``probs >= t`` is exactly the LAC set ``1 - probs <= quantile`` in one pass
    without a score tensor. ``1 - p`` rounds monotonically, so the rule is an upper set of
    probabilities; its edge is found by bisection on the bit patterns of ``[0, 1]`` (30 or 62
    steps on ``quantile``'s shape, e.g. one per class with Mondrian)."""
    q = quantile.to(dtype)
    ints = _BITS[dtype]
    one = torch.ones((), dtype=dtype, device=q.device)
    lo = torch.zeros(q.shape, dtype=ints, device=q.device)
    hi = one.view(ints).expand(q.shape).clone()
    while bool((lo < hi).any()):
        mid = lo + (hi - lo) // 2
        inside = (1 - mid.view(dtype)) <= q
        hi = torch.where(inside & (lo < hi), mid, hi)
        lo = torch.where(~inside & (lo < hi), mid + 1, lo)
    return lo.view(dtype)


def check_score_options(score: Any, k_reg: Any) -> int:
    check_choice("score", score, SCORES)
    return check_positive_int("k_reg", k_reg, allow_zero=True)


def conformity_scores(
    x: Any,
    target: Any = None,
    *,
    score: ScoreName = "lac",
    lam: float = 0.01,
    k_reg: int = 5,
    beta: float = 1.0,
    randomized: bool = True,
    u: Any = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Non-conformity scores of every class, ``(..., C)``, or of the true class, ``(...)``.

    With the MC-mean probabilities :math:`\bar p(x)`, :math:`o_x(y)` the 1-based rank of class
    :math:`y` in decreasing order and :math:`u \sim U(0, 1)` one draw per point:

    .. math::

        s_\text{lac} = 1 - \bar p_y, \quad
        s_\text{aps} = \sum_{j:\, o_x(j) < o_x(y)} \bar p_j + u\, \bar p_y, \quad
        s_\text{raps} = s_\text{aps} + \lambda (o_x(y) - k_\text{reg})^+, \quad
        s_\text{mi} = \frac{1 - \bar p_y}{1 + \beta I(x)}, \quad
        s_\text{spread} = \frac{1 - \bar p_y}{1 + \beta \sigma_y(x)}

    (:math:`I` the mutual information, :math:`\sigma_y` the standard deviation of the sampled
    probabilities of class :math:`y`; see the :class:`SplitConformalClassifier` docstring).

    Parameters
    ----------
    x : ClassificationPrediction or Tensor (..., C)
        MC dropout prediction, or probabilities with the class dimension last (never read as
        MC samples).
    target : Tensor (...), optional
        Integer labels: the scores of the true classes are returned instead.
    score : {"lac", "aps", "raps", "mi", "spread"}, default "lac"
    lam, k_reg : float, int
        RAPS's :math:`\lambda \ge 0` and :math:`k_\text{reg} \ge 0` (Angelopoulos et al., 2021).
    beta : float
        Weight :math:`\beta \ge 0` of the epistemic term of ``"mi"`` and ``"spread"``.
    randomized : bool, default True
        APS/RAPS with a uniform :math:`u` per point (False: :math:`u = 1`).
    u : Tensor (...), optional
        The uniforms themselves (for reproducing a peer's draws); else drawn from
        ``generator``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import conformity_scores
    >>> probs = torch.tensor([[0.5, 0.3, 0.2]])
    >>> conformity_scores(probs, score="aps", randomized=False)
    tensor([[0.5000, 0.8000, 1.0000]])
    >>> conformity_scores(probs, torch.tensor([1]), score="raps", lam=0.1, k_reg=1,
    ...                   randomized=False)
    tensor([0.9000])
    """
    k_reg = check_score_options(score, k_reg)
    points = as_points(x, target)
    options: dict[str, Any] = {"lam": lam, "k_reg": k_reg, "beta": beta, "randomized": randomized}
    if points.target is not None:
        out = true_class_scores(points, score, u=u, generator=generator, **options)
        return out.reshape(points.shape)
    every = point_scores(points, score, u=u, generator=generator, **options)
    return every.reshape(*points.shape, every.shape[-1])
