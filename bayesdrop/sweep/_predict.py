r"""Monte-Carlo dropout prediction of a :class:`~bayesdrop.nn.BatchedMLP`, in original units.

With :math:`S` samples :math:`\hat y_s` of each model (MC dropout) the predictive mean and
variance are :math:`\bar y = \frac1S\sum_s \hat y_s` and
:math:`\tau^{-1} + \frac1S\sum_s \hat y_s^2 - \bar y^2`; the per-point log-likelihood is that of
the mixture :math:`\frac1S\sum_s \mathcal N(y; \hat y_s, \tau^{-1})`. For the heteroscedastic
(Concrete) head each sample is :math:`\mathcal N(\mu_s, e^{s_s})`: the aleatoric part of the
variance becomes :math:`\frac1S \sum_s e^{s_s}`, and the mixture uses each sample's variance.
Samples are drawn in chunks, so :math:`S = 10{,}000` needs little memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from bayesdrop._validation import check_positive_int, fail
from bayesdrop.functional import batched as BB
from bayesdrop.nn._batched import BatchedMLP
from bayesdrop.nn._sampling import sampling
from bayesdrop.sweep._data import ArrayLike, RegressionBatch, pad_sets

__all__ = ["RegressionMetrics", "predict_regression"]


@dataclass(frozen=True)
class RegressionMetrics:
    """MC predictions of ``M`` models on their evaluation sets, in original units.

    Attributes
    ----------
    mean, variance : Tensor, shape (M, N_max)
        Predictive mean and variance (zero beyond each model's ``num_points``).
    rmse : Tensor, shape (M,)
        Root mean squared error of the predictive mean.
    log_likelihood : Tensor, shape (M,)
        Mean per-point log predictive density (the protocol's test log-likelihood).
    num_points : Tensor, shape (M,)
    num_samples : int
    """

    mean: Tensor
    variance: Tensor
    rmse: Tensor
    log_likelihood: Tensor
    num_points: Tensor
    num_samples: int


def _chunk(net: BatchedMLP, n_max: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        return check_positive_int("chunk_size", chunk_size)
    per_sample = net.num_models * n_max * max(net.widths)
    return max(1, (1 << 24) // per_sample)


def _log_terms(net, out, y, y_mean, y_std, tau):
    """Per-sample log densities (chunk, M, N), the sample means and aleatoric variances."""
    mean = out[..., 0] * y_std + y_mean
    if net.dropout == "concrete":
        log_var = net.noise_log_variance(out) + 2.0 * torch.log(y_std)
        return BB.gaussian_log_density(y, mean, log_var), mean, torch.exp(log_var)
    log_tau = torch.log(tau)
    return -0.5 * tau * (y - mean).pow(2) + 0.5 * (log_tau - math.log(2 * math.pi)), mean, None


def predict_regression(
    net: BatchedMLP,
    data: RegressionBatch,
    inputs: Sequence[ArrayLike],
    targets: Sequence[ArrayLike],
    *,
    num_samples: int,
    tau: Tensor | float | None = None,
    chunk_size: int | None = None,
) -> RegressionMetrics:
    """MC-dropout predictive mean, variance, RMSE and log-likelihood of every model.

    Parameters
    ----------
    net : BatchedMLP
        Trained by :func:`fit_regression` on ``data``.
    data : RegressionBatch
        The training sets (their statistics standardise ``inputs`` and de-standardise outputs).
    inputs, targets : sequences of M arrays
        Evaluation inputs ``(N_m, D)`` and targets ``(N_m,)`` of each model, original units.
    num_samples : int
        :math:`S`, dropout masks per point.
    tau : float or Tensor of shape (M,), optional
        Model precision, required for MC dropout (homoscedastic) nets.
    chunk_size : int, optional
        Samples per forward pass (default: about 16M activations per pass).

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> from bayesdrop.sweep import RegressionBatch, predict_regression
    >>> x = torch.randn(20, 2)
    >>> data = RegressionBatch.from_arrays([x, x], [x[:, 0], x[:, 1]])
    >>> net = bayesdrop.nn.BatchedMLP(2, 2, (8,), 1, p=[0.0, 0.1])
    >>> m = predict_regression(net, data, [x, x], [x[:, 0], x[:, 1]], num_samples=100, tau=4.0)
    >>> m.rmse.shape, m.num_samples
    (torch.Size([2]), 100)
    >>> bool(torch.allclose(m.variance[0], torch.tensor(0.25)))  # p = 0: only 1 / tau
    True
    """
    num_samples = check_positive_int("num_samples", num_samples)
    x, counts = data.standardize_inputs(inputs)
    y, y_counts = pad_sets("targets", targets, dtype=x.dtype, device=x.device)
    if not torch.equal(counts, y_counts):
        fail("targets", "one target per input row for every model", "mismatched sizes")
    y = y[..., 0]
    tau_t = None
    if net.dropout == "bernoulli":
        if tau is None:
            fail("tau", "given for MC dropout nets (the likelihood's precision)", None)
        tau_t = torch.as_tensor(tau, dtype=x.dtype, device=x.device).expand(net.num_models)
        tau_t = tau_t[:, None]
    num_models, n_max = y.shape
    step = _chunk(net, n_max, chunk_size)
    y_mean, y_std = data.y_mean[:, None], data.y_std[:, None]
    lme, seen = None, 0
    total = torch.zeros(num_models, n_max, dtype=torch.float64, device=x.device)
    total_sq, aleatoric = torch.zeros_like(total), torch.zeros_like(total)
    with torch.no_grad(), sampling(net):
        while seen < num_samples:
            s = min(step, num_samples - seen)
            out = net(x.repeat(1, s, 1)).reshape(num_models, s, n_max, -1).transpose(0, 1)
            log_terms, mean, ale = _log_terms(net, out, y, y_mean, y_std, tau_t)
            lme, seen = BB.logmeanexp_update(lme, log_terms, seen, s)
            total += mean.sum(0, dtype=torch.float64)
            total_sq += mean.pow(2).sum(0, dtype=torch.float64)
            if ale is not None:
                aleatoric += ale.sum(0, dtype=torch.float64)
    assert lme is not None  # num_samples >= 1 was checked
    valid = (torch.arange(n_max, device=x.device) < counts[:, None]).to(x.dtype)
    pred = total / num_samples
    epistemic = (total_sq / num_samples - pred.pow(2)).clamp(min=0.0)
    noise = aleatoric / num_samples if tau_t is None else 1.0 / tau_t.double()
    variance = ((epistemic + noise) * valid).to(x.dtype)
    pred = pred.to(x.dtype) * valid
    sq_err = ((y - pred).pow(2) * valid).sum(1) / counts
    ll = (lme * valid).sum(1) / counts
    return RegressionMetrics(pred, variance, sq_err.sqrt(), ll, counts, num_samples)
