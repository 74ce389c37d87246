r"""Recalibration of Gaussian regression uncertainty: variance scaling and isotonic recalibration
of the predictive CDF (Kuleshov et al., 2018), with a ``fit(pred, target)`` interface.

Both read a :class:`~bayesdrop.RegressionPrediction` as the Gaussian
:math:`\mathcal N(\mu(x), \sigma^2(x))` with :math:`\sigma^2` the total (epistemic plus
aleatoric) variance.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bayesdrop._validation import check_real, fail
from bayesdrop.calibration._inputs import as_float_tensor

__all__ = ["IsotonicCDFRecalibration", "VarianceScaling"]


def _gaussian(pred: Any, name: str = "pred") -> tuple[Tensor, Tensor]:
    from bayesdrop.predict._results import RegressionPrediction

    if not isinstance(pred, RegressionPrediction):
        fail(name, "a RegressionPrediction", type(pred).__name__, type_error=True)
    mean = as_float_tensor(f"{name}.mean", pred.mean)
    var = as_float_tensor(f"{name}.total_variance", pred.total_variance)
    if mean.shape != var.shape:
        fail(
            f"{name}.total_variance",
            f"shaped like the mean {tuple(mean.shape)}",
            f"shape {tuple(var.shape)}",
        )
    lo = var.min().item()
    if lo <= 0:
        fail(f"{name}.total_variance", "positive", f"a minimum of {lo:.4g}")
    return mean, var


def _open_unit(name: str, value: Any) -> float:
    value = check_real(name, value)
    if not 0.0 < value < 1.0:
        fail(name, "in (0, 1)", value)
    return value


def _target(target: Any, mean: Tensor) -> Tensor:
    target = as_float_tensor("target", target)
    if target.shape != mean.shape:
        fail("target", f"shaped like the mean {tuple(mean.shape)}", f"shape {tuple(target.shape)}")
    return target.to(mean)


class VarianceScaling:
    r"""One factor :math:`s` on the predictive variance, fitted by the Gaussian NLL.

    .. math::

        s^\star = \arg\min_s \frac1N\sum_i \Big[\frac{(y_i - \mu_i)^2}{2 s \sigma_i^2}
        + \frac12 \log (2\pi s \sigma_i^2)\Big]
        = \frac1N \sum_i \frac{(y_i - \mu_i)^2}{\sigma_i^2}

    (closed form: the derivative in :math:`s` vanishes there). ``transform`` returns a
    :class:`~bayesdrop.RegressionPrediction` with every variance (epistemic, aleatoric, total)
    multiplied by :math:`s`, the samples spread by :math:`\sqrt s` around the mean, ``tau``
    divided by :math:`s` and log-variance samples shifted by :math:`\log s`, so
    :meth:`~bayesdrop.RegressionPrediction.log_likelihood` and the regression metrics
    (:func:`gaussian_negative_log_likelihood`, :class:`RegressionReport`) read the recalibrated
    model. This is
    Levi et al.'s (2022) :math:`\sigma` scaling with :math:`\sigma \to \sqrt s\, \sigma`.

    Attributes
    ----------
    scale_ : float
        :math:`s` (above 1: the model was over-confident).

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> from bayesdrop.calibration import VarianceScaling, gaussian_negative_log_likelihood
    >>> _ = torch.manual_seed(0)
    >>> y = 2 * torch.randn(5000)  # true std 2, the model says 1
    >>> pred = bayesdrop.RegressionPrediction.from_samples(torch.zeros(2, 5000), tau=1.0)
    >>> vs = VarianceScaling().fit(pred, y)
    >>> abs(vs.scale_ - 4.0) < 0.2  # s = 4: the variance was 4 times too small
    True
    >>> fixed = vs.transform(pred)
    >>> bool(gaussian_negative_log_likelihood(fixed.mean, fixed.total_variance.sqrt(), y)
    ...      < gaussian_negative_log_likelihood(pred.mean, pred.total_variance.sqrt(), y))
    True
    """

    def __init__(self) -> None:
        self.scale_: float | None = None

    def fit(self, pred: Any, target: Any) -> VarianceScaling:
        """Fit :math:`s` on ``pred`` and ``target`` (shaped like its mean); returns ``self``."""
        mean, var = _gaussian(pred)
        target = _target(target, mean)
        scale = ((target - mean).pow(2) / var).double().mean().item()
        if not math.isfinite(scale) or scale <= 0:
            fail(
                "target",
                "some residual and a finite ratio to the variance",
                f"a fitted scale of {scale}",
                "Every target equals its mean?",
            )
        self.scale_ = scale
        return self

    def transform(self, pred: Any) -> Any:
        """``pred`` with every variance multiplied by :math:`s` (see the class docstring)."""
        if self.scale_ is None:
            fail("self", "fitted", "an unfitted VarianceScaling", "Call fit first.")
        _gaussian(pred)
        s = float(self.scale_)  # type: ignore[arg-type]
        changes: dict[str, Any] = {
            "epistemic_variance": pred.epistemic_variance * s,
            "aleatoric_variance": pred.aleatoric_variance * s,
            "total_variance": pred.total_variance * s,
            "mean_std_error": None,
            "target_log_likelihood": None,
        }
        if pred.samples is not None:
            changes["samples"] = pred.mean + math.sqrt(s) * (pred.samples - pred.mean)
        if pred.log_variance_samples is not None:
            changes["log_variance_samples"] = pred.log_variance_samples + math.log(s)
        if pred.tau is not None:
            changes["tau"] = pred.tau / s
        return dataclasses.replace(pred, **changes)

    def fit_transform(self, pred: Any, target: Any) -> Any:
        """``fit(pred, target).transform(pred)``."""
        return self.fit(pred, target).transform(pred)


class IsotonicCDFRecalibration:
    r"""Isotonic recalibration of the predictive CDF (Kuleshov, Fenner & Ermon, 2018).

    With the predicted CDF levels :math:`p_i = \Phi((y_i - \mu_i)/\sigma_i)` of the
    recalibration points, ``fit`` regresses the empirical CDF of those levels,
    :math:`\hat P(p_i) = \frac1n \#\{j : p_j \le p_i\}`, on :math:`p_i` with isotonic
    regression (scikit-learn's ``IsotonicRegression``, anchored at :math:`(0, 0)` and
    :math:`(1, 1)`), giving a monotone :math:`R` with :math:`R \circ F` calibrated. The
    recalibrated quantile at level :math:`\tau` is :math:`F^{-1}(R^{-1}(\tau)) = \mu + \sigma\,
    \Phi^{-1}(R^{-1}(\tau))`, :math:`R^{-1}` read off the piecewise-linear fit (first point of a
    flat step).

    Attributes
    ----------
    levels_ : numpy.ndarray
        The fit's breakpoints :math:`p` (increasing).
    calibrated_ : numpy.ndarray
        :math:`R` at those breakpoints.

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> from bayesdrop.calibration import IsotonicCDFRecalibration
    >>> _ = torch.manual_seed(0)
    >>> y = 2 * torch.randn(5000)
    >>> pred = bayesdrop.RegressionPrediction.from_samples(torch.zeros(2, 5000), tau=1.0)
    >>> iso = IsotonicCDFRecalibration().fit(pred, y)
    >>> lower, upper = iso.predict_intervals(pred, alpha=0.1)
    >>> round(upper[0].item(), 1)  # 1.64 * 2 for the true std of 2
    3.3
    >>> round(((lower <= y) & (y <= upper)).float().mean().item(), 2)
    0.9
    """

    def __init__(self) -> None:
        self.levels_: np.ndarray | None = None
        self.calibrated_: np.ndarray | None = None

    def fit(self, pred: Any, target: Any) -> IsotonicCDFRecalibration:
        """Fit :math:`R` on ``pred`` and ``target`` (shaped like its mean); returns ``self``."""
        from sklearn.isotonic import IsotonicRegression

        mean, var = _gaussian(pred)
        target = _target(target, mean)
        p = torch.special.ndtr((target - mean).double() / var.double().sqrt())
        p = np.sort(p.reshape(-1).cpu().numpy())
        n = p.shape[0]
        empirical = np.searchsorted(p, p, side="right") / n
        x = np.concatenate([[0.0], p, [1.0]])
        y = np.concatenate([[0.0], empirical, [1.0]])
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(x, y)
        self.levels_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.calibrated_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return self

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.levels_ is None or self.calibrated_ is None:
            fail("self", "fitted", "an unfitted IsotonicCDFRecalibration", "Call fit first.")
        return self.levels_, self.calibrated_

    def recalibrate_levels(self, levels: Any) -> Tensor:
        r""":math:`R(p)`: predicted CDF levels mapped to calibrated ones."""
        x, y = self._fitted()
        p = as_float_tensor("levels", levels)
        out = np.interp(p.detach().cpu().double().numpy(), x, y)
        return torch.from_numpy(out).to(p)

    def _inverse(self, tau: float) -> float:
        x, y = self._fitted()
        y_unique, first = np.unique(y, return_index=True)
        return float(np.interp(tau, y_unique, x[first]))

    def cdf(self, pred: Any, target: Any) -> Tensor:
        r"""Recalibrated CDF :math:`R(F(y))` at ``target``, shaped like the mean."""
        mean, var = _gaussian(pred)
        target = _target(target, mean)
        return self.recalibrate_levels(torch.special.ndtr((target - mean) / var.sqrt()))

    def quantile(self, pred: Any, level: float) -> Tensor:
        r"""Recalibrated quantile :math:`\mu + \sigma\,\Phi^{-1}(R^{-1}(\tau))` at ``level``
        :math:`\tau \in (0, 1)`, shaped like the mean."""
        tau = _open_unit("level", level)
        mean, var = _gaussian(pred)
        p = min(max(self._inverse(tau), 1e-12), 1 - 1e-12)  # an open interval, finite z
        z = torch.special.ndtri(torch.tensor(p, dtype=torch.float64)).item()
        return mean + z * var.sqrt()

    def predict_intervals(self, pred: Any, *, alpha: float = 0.1) -> tuple[Tensor, Tensor]:
        """Central interval ``(lower, upper)`` at level ``1 - alpha``: the recalibrated
        quantiles at ``alpha / 2`` and ``1 - alpha / 2``."""
        alpha = _open_unit("alpha", alpha)
        return self.quantile(pred, alpha / 2), self.quantile(pred, 1 - alpha / 2)
