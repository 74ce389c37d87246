r"""Calibration of Gaussian regression predictions ``N(mean, std^2)`` against targets.

* PICP: the fraction of targets inside the central :math:`q` interval
  :math:`\mu \pm \sigma\,\Phi^{-1}(\tfrac{1+q}{2})`; calibrated when it equals :math:`q`.
* Quantile calibration error: the mean over levels :math:`q` of :math:`|\mathrm{PICP}(q) - q|`
  (netcal's marginal ``QCE``).
* Calibration curve (Kuleshov et al., 2018): for expected levels :math:`p`, the observed fraction of
  targets with :math:`\Phi((y - \mu)/\sigma) \le p`.
* ENCE (Levi et al., 2022): bins by predicted std (equal width between its min and max, as
  netcal), mean over non-empty bins of :math:`|\mathrm{RMV}_b - \mathrm{RMSE}_b| / \mathrm{RMV}_b`.
* Gaussian NLL and the closed-form CRPS of a Gaussian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bayesdrop._validation import check_positive_int, fail
from bayesdrop.calibration._binning import accumulator_dtype, check_num_bins
from bayesdrop.calibration._inputs import as_float_tensor

__all__ = [
    "RegressionCalibrationCurve",
    "expected_normalized_calibration_error",
    "gaussian_crps",
    "gaussian_negative_log_likelihood",
    "picp",
    "quantile_calibration_error",
    "regression_calibration_curve",
]


def _check_gaussian(mean: Any, std: Any, target: Any) -> tuple[Tensor, Tensor, Tensor]:
    """The three in the accumulator dtype (float64 but on MPS), never cast down first: a float16
    ``mean`` with float64 ``std`` and ``target`` keeps their values."""
    mean = as_float_tensor("mean", mean)
    std = as_float_tensor("std", std)
    target = as_float_tensor("target", target)
    for name, value in (("std", std), ("target", target)):
        if value.shape != mean.shape:
            fail(name, f"of the shape of `mean` {tuple(mean.shape)}", f"shape {tuple(value.shape)}")
    acc = accumulator_dtype(mean.device)
    std = std.to(mean.device, acc)
    if not bool((std > 0).all()):
        fail("std", "positive everywhere", f"a minimum of {std.min().item():.4g}")
    return mean.to(acc), std, target.to(mean.device, acc)


def _check_levels(levels: Any) -> Tensor:
    if not isinstance(levels, Tensor):
        try:
            levels = torch.as_tensor(levels, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            fail("levels", "probabilities in (0, 1)", _short(levels), type_error=True)
    levels = as_float_tensor("levels", levels.double()).reshape(-1)
    if not bool(((levels > 0) & (levels < 1)).all()):
        fail("levels", "probabilities strictly inside (0, 1)", levels.tolist())
    return levels


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _central_coverage(z: Tensor, levels: Tensor) -> Tensor:
    half_width = torch.special.ndtri((1 + levels.to(z)) / 2)
    return (z.abs().reshape(-1, 1) <= half_width).to(z).mean(0)


def picp(mean: Tensor, std: Tensor, target: Tensor, *, level: float = 0.95) -> Tensor:
    r"""Prediction interval coverage probability of the central ``level`` interval.

    .. math:: \mathrm{PICP}(q) = \frac1N \sum_i \mathbb 1\big[|y_i - \mu_i| \le
              \sigma_i \Phi^{-1}(\tfrac{1+q}{2})\big]

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import picp
    >>> y = torch.tensor([0.0, 1.0, 3.0])
    >>> picp(torch.zeros(3), torch.ones(3), y, level=0.95).item()  # 1.96 sigma
    0.6666666666666666
    """
    mean, std, target = _check_gaussian(mean, std, target)
    return _central_coverage((target - mean) / std, _check_levels(level))[0]


def quantile_calibration_error(
    mean: Tensor, std: Tensor, target: Tensor, *, levels: Any = None
) -> Tensor:
    r"""Mean over central-interval levels of :math:`|\mathrm{PICP}(q) - q|` (netcal's M-QCE).

    ``levels`` defaults to ``0.05, 0.10, ..., 0.95``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import quantile_calibration_error
    >>> z = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.0005, 0.9995, 1000))
    >>> round(quantile_calibration_error(torch.zeros(1000), torch.ones(1000), z).item(), 3)
    0.0
    """
    mean, std, target = _check_gaussian(mean, std, target)
    levels = _check_levels(torch.arange(1, 20) / 20 if levels is None else levels).to(mean)
    return (_central_coverage((target - mean) / std, levels) - levels).abs().mean()


@dataclass(frozen=True)
class RegressionCalibrationCurve:
    """Expected vs observed cumulative frequency, with the calibration error (mean abs gap).

    Attributes
    ----------
    expected : Tensor, shape ``(num_levels,)``
        The levels :math:`p`, from 0 to 1.
    observed : Tensor, shape ``(num_levels,)``
        The fraction of targets at or below the predicted :math:`p`-quantile.
    error : float
        The mean absolute difference between ``observed`` and ``expected``.
    """

    expected: Tensor
    observed: Tensor
    error: float


def regression_calibration_curve(
    mean: Tensor, std: Tensor, target: Tensor, *, num_levels: int = 21
) -> RegressionCalibrationCurve:
    r"""Quantile calibration curve: :math:`\hat P(p) = \frac1N\sum_i \mathbb 1[F_i(y_i) \le p]`.

    Evaluated at ``num_levels`` levels from 0 to 1; a calibrated model lies on the diagonal.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import regression_calibration_curve
    >>> curve = regression_calibration_curve(torch.zeros(4), torch.ones(4),
    ...                                      torch.tensor([-1.0, -0.1, 0.1, 1.0]), num_levels=3)
    >>> curve.observed
    tensor([0.0000, 0.5000, 1.0000], dtype=torch.float64)
    """
    mean, std, target = _check_gaussian(mean, std, target)
    num_levels = check_positive_int("num_levels", num_levels)
    if num_levels < 2:
        fail("num_levels", "at least 2", num_levels)
    expected = torch.linspace(0, 1, num_levels, dtype=mean.dtype, device=mean.device)
    # F(y) <= p  <=>  z <= ndtri(p), compared in z: ndtr(z) rounds to 0 below z = -38, which
    # counted such points at the level 0 (the curve starts at 0: no Gaussian CDF value is 0).
    # A z that overflowed stays finite, so it is above ndtri(0) = -inf and below ndtri(1) = inf.
    z = torch.nan_to_num((target - mean) / std).reshape(-1, 1)
    observed = (z <= torch.special.ndtri(expected)).to(mean).mean(0)
    return RegressionCalibrationCurve(expected, observed, (observed - expected).abs().mean().item())


def expected_normalized_calibration_error(
    mean: Tensor, std: Tensor, target: Tensor, *, num_bins: int = 15
) -> Tensor:
    r"""ENCE: bins by predicted std, mean over non-empty bins of the normalised gap.

    .. math::
        \mathrm{ENCE} = \frac{1}{|B|}\sum_{b \in B}
        \frac{|\mathrm{RMV}_b - \mathrm{RMSE}_b|}{\mathrm{RMV}_b},\quad
        \mathrm{RMV}_b = \sqrt{\tfrac{1}{n_b}\textstyle\sum_{i\in b}\sigma_i^2},\quad
        \mathrm{RMSE}_b = \sqrt{\tfrac{1}{n_b}\textstyle\sum_{i\in b}(y_i-\mu_i)^2}

    Bins are equal-width between the smallest and the largest std, the last closed.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import expected_normalized_calibration_error
    >>> ence = expected_normalized_calibration_error(
    ...     torch.zeros(2), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]), num_bins=2)
    >>> ence.item()  # bin 1: |1 - 1| / 1, bin 2: |2 - 1| / 2
    0.25
    """
    mean, std, target = _check_gaussian(mean, std, target)
    num_bins = check_num_bins(num_bins)
    counts, rmv, rmse = ence_bins(mean, std, target, num_bins)
    filled = counts > 0
    # |RMV - RMSE| / RMV = |1 - RMSE / RMV|, from the scaled parts (no overflow for 1e200)
    return (1 - rmse[filled] / rmv[filled]).abs().mean()


def ence_bins(mean: Tensor, std: Tensor, target: Tensor, num_bins: int) -> tuple[Tensor, ...]:
    """Per std bin (equal width between the smallest and largest std, the last closed): the
    count, :math:`\\mathrm{RMV}_b` and :math:`\\mathrm{RMSE}_b` of validated inputs.

    Each bin's root mean square is formed as ``m * sqrt(mean((v / m)^2))`` with ``m`` the bin's
    largest magnitude, so a std of 1e200 (whose square overflows) or 1e-200 (whose square
    underflows to 0) gives the exact RMV, not inf or 0. Empty bins report 0.
    """
    std, mean, target = std.reshape(-1), mean.reshape(-1), target.reshape(-1)
    lo, hi = std.min(), std.max()
    steps = torch.arange(1, num_bins, dtype=std.dtype, device=std.device) / num_bins
    edges = lo + (hi - lo) * steps
    index = torch.bucketize(std, edges, right=True)
    counts = torch.bincount(index, minlength=num_bins)
    error, factor = (target - mean).abs(), 1.0
    if not bool(torch.isfinite(error).all()):  # |y - mu| above the float range: halve both
        error, factor = (0.5 * target - 0.5 * mean).abs(), 2.0
    rmv = _root_mean_square(index, std, counts)
    return counts, rmv, factor * _root_mean_square(index, error, counts)


def root_mean_square(values: Tensor) -> Tensor:
    """``sqrt(mean(values^2))`` without overflow or underflow of the squares (scaled by the
    largest magnitude), as a 0-d tensor.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration._regression import root_mean_square
    >>> root_mean_square(torch.tensor([3e200, 4e200], dtype=torch.float64)).item()
    3.5355339059327374e+200
    """
    values = values.reshape(-1).abs()
    scale = values.max()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale * (values / scale).square().mean().sqrt()


def _root_mean_square(index: Tensor, values: Tensor, counts: Tensor) -> Tensor:
    """``sqrt(mean(values^2))`` per bin of non-negative ``values``, scaled by each bin's max."""
    scale = torch.zeros(counts.shape, dtype=values.dtype, device=values.device)
    scale = scale.scatter_reduce(0, index, values, reduce="amax", include_self=True)
    divisor = scale[index]
    ratio = values / torch.where(divisor > 0, divisor, torch.ones_like(divisor))
    mean_square = torch.bincount(index, ratio.square(), minlength=counts.numel())
    return scale * (mean_square / counts.clamp_min(1)).sqrt()


def gaussian_negative_log_likelihood(mean: Tensor, std: Tensor, target: Tensor) -> Tensor:
    r"""Mean Gaussian negative log-likelihood in nats (a metric of predictive means and standard
    deviations; the per-point loss with a precision is :func:`bayesdrop.functional.gaussian_nll`).

    .. math::
        \frac1N\sum_i \Big[\tfrac12\log(2\pi\sigma_i^2) + \frac{(y_i-\mu_i)^2}{2\sigma_i^2}\Big]

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import gaussian_negative_log_likelihood
    >>> nll = gaussian_negative_log_likelihood(torch.zeros(1), torch.ones(1), torch.zeros(1))
    >>> round(nll.item(), 6)
    0.918939
    """
    mean, std, target = _check_gaussian(mean, std, target)
    z = (target - mean) / std
    return (0.5 * math.log(2 * math.pi) + std.log() + 0.5 * z.square()).mean()


def gaussian_crps(mean: Tensor, std: Tensor, target: Tensor) -> Tensor:
    r"""Mean continuous ranked probability score of Gaussian predictions (closed form).

    .. math::
        \mathrm{CRPS}(\mathcal N(\mu, \sigma^2), y) = \sigma\Big[z\,(2\Phi(z) - 1) + 2\varphi(z)
        - \frac{1}{\sqrt\pi}\Big],\quad z = \frac{y - \mu}{\sigma}

    References
    ----------
    Gneiting & Raftery, "Strictly Proper Scoring Rules, Prediction, and Estimation", JASA 2007.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import gaussian_crps
    >>> round(gaussian_crps(torch.zeros(1), torch.ones(1), torch.zeros(1)).item(), 6)
    0.233695
    """
    mean, std, target = _check_gaussian(mean, std, target)
    error = target - mean
    z = error / std
    pdf = torch.exp(-0.5 * z.square()) / math.sqrt(2 * math.pi)
    # sigma z (2 Phi(z) - 1) written as (y - mu)(2 Phi(z) - 1): finite where z overflows
    crps = error * (2 * torch.special.ndtr(z) - 1) + std * (2 * pdf - 1 / math.sqrt(math.pi))
    return crps.mean()
