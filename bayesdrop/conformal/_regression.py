r"""Split conformal regression intervals on MC dropout predictions."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor

from bayesdrop._validation import check_choice, fail
from bayesdrop.calibration._inputs import as_float_tensor
from bayesdrop.conformal._quantile import check_alpha, conformal_quantile, gather_scores

__all__ = ["SplitConformalRegressor", "conformal_intervals"]

RegressionScore = Literal["normalized", "residual"]


def _mean_std(pred: Any, name: str, need_std: bool) -> tuple[Tensor, Tensor | None]:
    from bayesdrop.predict._results import ClassificationPrediction, RegressionPrediction

    if not isinstance(pred, RegressionPrediction):
        what = (
            "a ClassificationPrediction (for sets use SplitConformalClassifier)"
            if isinstance(pred, ClassificationPrediction)
            else type(pred).__name__
        )
        fail(
            name,
            "a RegressionPrediction (bayesdrop.mc_predict(..., task=...))",
            what,
            type_error=True,
        )
    mean = as_float_tensor(f"{name}.mean", pred.mean)
    if not need_std:
        return mean, None
    var = as_float_tensor(f"{name}.total_variance", pred.total_variance)
    lo = var.min().item()
    if lo <= 0:
        fail(
            f"{name}.total_variance",
            "positive (the normalised score divides by the standard deviation)",
            f"a minimum of {lo:.4g}",
            'Use score="residual" for a model without predictive variance.',
        )
    return mean, var.sqrt()


class SplitConformalRegressor:
    r"""Split conformal intervals around the MC predictive mean.

    Scores of the calibration points, with :math:`\mu` the MC mean and :math:`\sigma` the MC
    predictive standard deviation (epistemic plus aleatoric, ``sqrt(total_variance)``):

    .. math::

        s_\text{normalized} = \frac{|y - \mu(x)|}{\sigma(x)}, \qquad
        s_\text{residual} = |y - \mu(x)|,

    and the interval at level :math:`1 - \alpha` is
    :math:`[\mu(x) - \hat q\, \sigma(x),\ \mu(x) + \hat q\, \sigma(x)]` (normalised; the residual
    score's width :math:`2 \hat q` is the same everywhere), with :math:`\hat q` the
    :math:`\lceil (n + 1)(1 - \alpha) \rceil`-th smallest score (:func:`conformal_quantile`), so
    :math:`P(y \in [\cdot]) \ge 1 - \alpha` for exchangeable data. Every element of a
    multi-output mean is a point.

    Parameters
    ----------
    score : {"normalized", "residual"}, default "normalized"
    alpha : float, default 0.1

    Attributes
    ----------
    quantile_ : Tensor ()
    calibration_scores_ : Tensor (n,)
        Kept to re-read the quantile at any ``alpha``.

    References
    ----------
    Lei, G'Sell, Rinaldo, Tibshirani & Wasserman, JASA 2018 (normalised residuals, Sec. 5.2);
    Papadopoulos et al., "Inductive confidence machines for regression", ECML 2002.

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> from bayesdrop.conformal import SplitConformalRegressor, interval_coverage
    >>> _ = torch.manual_seed(0)
    >>> std = torch.rand(6000) + 0.5
    >>> y = std * torch.randn(6000)
    >>> pred = bayesdrop.RegressionPrediction(
    ...     mean=torch.zeros(6000), epistemic_variance=0.5 * std**2,
    ...     aleatoric_variance=0.5 * std**2, total_variance=std**2, num_samples=10)
    >>> cp = SplitConformalRegressor(alpha=0.1).fit(pred, y)
    >>> abs(cp.quantile_.item() - 1.645) < 0.05  # the Gaussian's 95% point
    True
    >>> lower, upper = cp.predict_intervals(pred, alpha=0.2)
    >>> round(interval_coverage(lower, upper, y), 2)
    0.8
    """

    def __init__(self, score: RegressionScore = "normalized", *, alpha: float = 0.1) -> None:
        self.score: RegressionScore = score
        check_choice("score", score, ("normalized", "residual"))
        self.alpha = check_alpha(alpha)
        self.quantile_: Tensor | None = None
        self.calibration_scores_: Tensor | None = None

    def _parts(self, pred: Any) -> tuple[Tensor, Tensor | None]:
        return _mean_std(pred, "pred", self.score == "normalized")

    def fit(
        self, pred: Any, target: Any, *, sharded: bool = False, group: Any = None
    ) -> SplitConformalRegressor:
        """Calibrate on ``pred`` (a :class:`~bayesdrop.RegressionPrediction`) and ``target``
        shaped like its mean; ``sharded=True``: every rank passes its shard (see
        :meth:`SplitConformalClassifier.fit`). Returns ``self``."""
        mean, std = self._parts(pred)
        target = as_float_tensor("target", target)
        if target.shape != mean.shape:
            fail(
                "target",
                f"shaped like the mean {tuple(mean.shape)}",
                f"shape {tuple(target.shape)}",
            )
        scores = (target.to(mean) - mean).abs()
        if std is not None:
            scores = scores / std
        scores = scores.reshape(-1)
        if sharded:
            scores = gather_scores(scores, group)
        self.calibration_scores_ = scores  # unsorted: each quantile is one O(n) selection
        self.quantile_ = conformal_quantile(self.calibration_scores_, self.alpha)
        return self

    def predict_intervals(self, pred: Any, *, alpha: float | None = None) -> tuple[Tensor, Tensor]:
        """``(lower, upper)`` shaped like ``pred.mean``, at level ``1 - alpha`` (default: the
        ``alpha`` of the constructor; another re-reads the kept calibration scores)."""
        if self.quantile_ is None or self.calibration_scores_ is None:
            fail("self", "fitted", "an unfitted SplitConformalRegressor", "Call fit first.")
        q = self.quantile_
        if alpha is not None:
            q = conformal_quantile(self.calibration_scores_, check_alpha(alpha))
        mean, std = self._parts(pred)
        half = q.to(mean) if std is None else q.to(mean) * std
        return mean - half, mean + half


def conformal_intervals(
    cal_pred: Any,
    cal_target: Any,
    pred: Any,
    *,
    score: RegressionScore = "normalized",
    alpha: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """Functional form of :class:`SplitConformalRegressor`: fit on the calibration
    prediction and target, intervals ``(lower, upper)`` of ``pred``.

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> from bayesdrop.conformal import conformal_intervals
    >>> pred = bayesdrop.RegressionPrediction.from_samples(torch.zeros(2, 19), tau=1.0)
    >>> y = torch.arange(1.0, 20.0)  # residuals 1, ..., 19; k = ceil(20 * 0.9) = 18
    >>> lower, upper = conformal_intervals(pred, y, pred, score="residual", alpha=0.1)
    >>> lower[0].item(), upper[0].item()
    (-18.0, 18.0)
    """
    cp = SplitConformalRegressor(score, alpha=alpha)
    return cp.fit(cal_pred, cal_target).predict_intervals(pred)
