r"""Split conformal classification sets on MC dropout predictions."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from bayesdrop._validation import check_positive, check_positive_int, fail
from bayesdrop.conformal._inputs import Points, as_points
from bayesdrop.conformal._quantile import (
    check_alpha,
    conformal_quantile,
    gather_scores,
    min_calibration_size,
)
from bayesdrop.conformal._scores import (
    ScoreName,
    check_score_options,
    lac_threshold,
    point_scores,
    true_class_scores,
    uniform_draws,
)
from bayesdrop.conformal._sets import DEFAULT_CHUNK_BYTES, rows_per_chunk, sets_of

__all__ = ["SplitConformalClassifier", "conformal_sets"]


class SplitConformalClassifier:
    r"""Split conformal prediction sets with a coverage guarantee, on MC-mean probabilities.

    ``fit`` scores the calibration points' true classes, :math:`s_i = s(x_i, y_i)`, and keeps
    the conformal quantile

    .. math::

        \hat q = s_{(k)}, \quad k = \lceil (n + 1)(1 - \alpha) \rceil
        \qquad\Longrightarrow\qquad
        P\big(y_{n+1} \in C(x_{n+1})\big) \ge 1 - \alpha,
        \quad C(x) = \{y : s(x, y) \le \hat q\}

    for exchangeable calibration and test points (the :math:`k`-th smallest score is the
    empirical quantile at level :math:`k/n`, "higher" interpolation; see
    :func:`conformal_quantile`). With ``mondrian=True`` (class-conditional, Vovk 2012) there is
    one quantile per class from the calibration points of that class,
    :math:`C(x) = \{y : s(x, y) \le \hat q_y\}`, and the guarantee holds for every class:
    :math:`P(y \in C(x) \mid y = c) \ge 1 - \alpha`.

    Scores (:func:`conformity_scores`): ``"lac"`` (threshold, :math:`1 - \bar p_y`), ``"aps"``
    (Romano et al. 2020), ``"raps"`` (Angelopoulos et al. 2021, :math:`\lambda` = ``lam``,
    :math:`k_\text{reg}` = ``k_reg``), and two that use the epistemic part of a
    :class:`~bayesdrop.ClassificationPrediction`: ``"mi"``,
    :math:`(1 - \bar p_y) / (1 + \beta I(x))` with the mutual information :math:`I`, and
    ``"spread"``, :math:`(1 - \bar p_y) / (1 + \beta \sigma_y(x))` with the per-class standard
    deviation of the sampled probabilities (needs ``return_samples=True``).

    Parameters
    ----------
    score : {"lac", "aps", "raps", "mi", "spread"}, default "lac"
    alpha : float, default 0.1
        Miscoverage level: the sets cover with probability at least ``1 - alpha``.
    mondrian : bool, default False
        One quantile per class (class-conditional coverage).
    lam : float, default 0.01
        RAPS's penalty :math:`\lambda \ge 0` per rank beyond ``k_reg``.
    k_reg : int, default 5
        RAPS's number of classes :math:`k_\text{reg}` that go unpenalised.
    beta : float, default 1.0
        Weight of the epistemic term of ``"mi"`` and ``"spread"`` (0: LAC).
    randomized : bool, default True
        APS/RAPS with a uniform draw per point (exact coverage, sets may be empty); False uses
        the whole probability of the class (:math:`u = 1`, conservative, no randomness).
    generator : torch.Generator, optional
        The random stream of the draws (a fixed seed makes sets reproducible).
    ignore_index : int, optional
        A label (e.g. ``-100``) whose points are left out of calibration; at prediction, such
        points (when ``target`` is given to :meth:`predict_sets`) get an all-False set.
    chunk_bytes : int, default 67108864
        (64 MiB) Working memory of :meth:`predict_sets` beyond its boolean ``(N, C)`` output:
        the test points are scored in chunks of ``max(1, chunk_bytes // (C (3 b + 1)))`` rows (``b``
        bytes per float; ``C (4 b + 26)`` for APS/RAPS with ``mondrian``), so the extra memory
        is O(chunk x C) whatever ``N``. The sets do not depend on it. APS/RAPS sets need no
        index sort: a set is a prefix of the ranking, found from the sorted probabilities'
        values alone (see ``bayesdrop.conformal._sets``).

    Attributes
    ----------
    quantile_ : Tensor () or Tensor (C,)
        :math:`\hat q` (per class with ``mondrian``).
    calibration_scores_ : Tensor (n,)
        The calibration scores (to re-read the quantile at another ``alpha``; grouped by class
        with ``mondrian``).
    num_classes_ : int

    References
    ----------
    Romano, Sesia & Candès, "Classification with valid and adaptive coverage", NeurIPS 2020.
    Angelopoulos, Bates, Malik & Jordan, "Uncertainty sets for image classifiers using conformal
    prediction", ICLR 2021. Vovk, "Conditional validity of inductive conformal predictors",
    ACML 2012. Bethell, Gerasimou & Calinescu, "Robust uncertainty quantification using
    conformalised Monte Carlo prediction", AAAI 2024 (arXiv 2023).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import SplitConformalClassifier, coverage
    >>> g = torch.Generator().manual_seed(0)
    >>> probs = torch.distributions.Dirichlet(torch.full((5,), 0.5)).sample((4000,))
    >>> target = torch.multinomial(probs, 1, generator=g)[:, 0]  # calibrated by construction
    >>> cp = SplitConformalClassifier(score="aps", alpha=0.1, generator=g)
    >>> sets = cp.fit(probs[:2000], target[:2000]).predict_sets(probs[2000:])
    >>> sets.shape, sets.dtype
    (torch.Size([2000, 5]), torch.bool)
    >>> round(coverage(sets, target[2000:]), 1)
    0.9
    """

    def __init__(
        self,
        score: ScoreName = "lac",
        *,
        alpha: float = 0.1,
        mondrian: bool = False,
        lam: float = 0.01,
        k_reg: int = 5,
        beta: float = 1.0,
        randomized: bool = True,
        generator: torch.Generator | None = None,
        ignore_index: int | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        self.k_reg = check_score_options(score, k_reg)
        self.score: ScoreName = score
        self.alpha = check_alpha(alpha)
        self.mondrian = bool(mondrian)
        self.lam, self.beta = lam, beta
        self.randomized = bool(randomized)
        self.generator = generator
        self.ignore_index = ignore_index
        self.chunk_bytes = check_positive_int("chunk_bytes", chunk_bytes)
        self.quantile_: Tensor | None = None
        self.calibration_scores_: Tensor | None = None
        self.calibration_labels_: Tensor | None = None
        self.num_classes_: int | None = None

    def _options(self) -> dict[str, Any]:
        return {
            "lam": self.lam,
            "k_reg": self.k_reg,
            "beta": self.beta,
            "randomized": self.randomized,
            "generator": self.generator,
        }

    def _scores(self, points: Points, u: Any) -> Tensor:
        return point_scores(points, self.score, u=u, **self._options())

    @torch.no_grad()
    def _chunked_sets(self, points: Points, q: Tensor, u: Any) -> Tensor:
        """``s(x, y) <= q`` (``q (C,)`` per class with mondrian), ``chunk_bytes`` at a time."""
        probs = points.probs
        n, c = probs.shape
        sets = torch.empty(n, c, dtype=torch.bool, device=probs.device)
        ranked = self.score in ("aps", "raps")
        draw = uniform_draws(points, u, self.generator) if ranked and self.randomized else None
        lam = check_positive("lam", self.lam, allow_zero=True) if self.score == "raps" else 0.0
        mondrian = ranked and q.ndim == 1
        rows = rows_per_chunk(c, probs.element_size(), self.chunk_bytes, mondrian)
        for start in range(0, n, rows):
            part = slice(start, start + rows)
            if ranked:
                chunk_draw = None if draw is None else draw[part]
                sets_of(probs[part], q, chunk_draw, lam, self.k_reg, sets[part])
            else:
                every = self._scores(_rows(points, part), u)
                torch.le(every, q.to(every), out=sets[part])
        return sets

    def fit(
        self, x: Any, target: Any, *, u: Any = None, sharded: bool = False, group: Any = None
    ) -> SplitConformalClassifier:
        """Calibrate on ``x`` (a prediction or probabilities ``(..., C)``) and ``target (...)``.

        ``u`` gives APS/RAPS's uniforms (shaped like ``target``) instead of drawing them. With
        ``sharded=True`` inside ``torch.distributed`` every rank passes its own shard of the
        calibration split: only the scores (and, with ``mondrian``, the labels) are gathered,
        and every rank gets the quantile of the whole split. Returns ``self``.
        """
        if target is None:
            fail("target", "integer class labels of the calibration points", "None")
        points = as_points(x, target, ignore_index=self.ignore_index)
        options = self._options()
        scores = true_class_scores(points, self.score, u=u, chunk_bytes=self.chunk_bytes, **options)
        labels = points.target
        assert labels is not None  # given, checked by as_points
        if points.keep is not None:
            labels = labels[points.keep]
        if sharded:
            scores, labels = gather_scores(scores, group), gather_scores(labels, group)
        self.num_classes_ = points.probs.shape[-1]
        self._set_calibration(scores, labels)
        return self

    def _set_calibration(self, scores: Tensor, labels: Tensor) -> None:
        if self.mondrian:
            # grouped by class, sorted within each class
            order = torch.argsort(scores)
            order = order[torch.argsort(labels[order], stable=True)]
            self.calibration_scores_, self.calibration_labels_ = scores[order], labels[order]
        else:  # unsorted: each quantile is one O(n) selection
            self.calibration_scores_ = scores
        self.quantile_ = self._quantile(self.alpha)

    def _quantile(self, alpha: float) -> Tensor:
        scores = self.calibration_scores_
        assert scores is not None
        if not self.mondrian:
            return conformal_quantile(scores, alpha)
        labels = self.calibration_labels_
        assert labels is not None and self.num_classes_ is not None
        out = torch.empty(self.num_classes_, dtype=scores.dtype, device=scores.device)
        counts = torch.bincount(labels, minlength=self.num_classes_).tolist()
        need = min_calibration_size(alpha)
        short = [(c, count) for c, count in enumerate(counts) if count < need]
        if short:
            listing = ", ".join(f"class {c}: n = {count}" for c, count in short[:5])
            fail(
                "the calibration split",
                f"at least ceil(1 / alpha) - 1 = {need} points of every class for alpha = "
                f"{alpha:g} with mondrian=True",
                listing,
                "Use mondrian=False, a larger alpha or more calibration data.",
            )
        start = 0
        for c, count in enumerate(counts):
            out[c] = conformal_quantile(scores[start : start + count], alpha)
            start += count
        return out

    def predict_sets(
        self, x: Any, *, alpha: float | None = None, target: Any = None, u: Any = None
    ) -> Tensor:
        """Boolean prediction sets ``(..., C)`` for ``x``.

        ``alpha`` re-reads the quantile at another level from the kept calibration scores;
        ``target`` (optional) only marks points with the ``ignore_index`` label, whose sets are
        all False; ``u`` gives the test points' uniforms.
        """
        if self.quantile_ is None:
            fail("self", "fitted", "an unfitted SplitConformalClassifier", "Call fit first.")
        q = self.quantile_ if alpha is None else self._quantile(check_alpha(alpha))
        points = as_points(x, target, ignore_index=self.ignore_index)
        if points.probs.shape[-1] != self.num_classes_:
            fail(
                "x",
                f"probabilities over the {self.num_classes_} classes of the calibration",
                f"{points.probs.shape[-1]} classes",
            )
        if self.score == "lac" and points.probs.dtype in (torch.float32, torch.float64):
            # the same sets as 1 - probs <= q, in one pass (see lac_threshold)
            sets = points.probs >= lac_threshold(q, points.probs.dtype)
        else:
            sets = self._chunked_sets(points, q, u)
        if points.keep is not None:
            sets &= points.keep[:, None]
        return sets.reshape(*points.shape, sets.shape[-1])


def _rows(points: Points, part: slice) -> Points:
    mi, samples = points.mutual_information, points.samples
    return dataclasses.replace(
        points,
        probs=points.probs[part],
        mutual_information=None if mi is None else mi[part],
        samples=None if samples is None else samples[:, part],
        target=None,
        keep=None,
    )


def conformal_sets(
    cal_x: Any,
    cal_target: Any,
    x: Any,
    *,
    score: ScoreName = "lac",
    alpha: float = 0.1,
    **options: Any,
) -> Tensor:
    """Functional form: ``SplitConformalClassifier(score, alpha=alpha, **options)``, fitted
    on ``(cal_x, cal_target)``, sets of ``x``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import conformal_sets
    >>> cal = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]] * 5)
    >>> y = torch.tensor([0, 0, 1, 1] * 5)
    >>> conformal_sets(cal, y, torch.tensor([[0.95, 0.05], [0.5, 0.5]]), alpha=0.2)
    tensor([[ True, False],
            [ True,  True]])
    """
    cp = SplitConformalClassifier(score, alpha=alpha, **options)
    return cp.fit(cal_x, cal_target).predict_sets(x)
