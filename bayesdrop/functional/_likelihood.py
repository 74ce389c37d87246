r"""Per-point negative log-likelihoods used by the ELBO.

* categorical: :math:`-\log \mathrm{softmax}(f(x))_y`;
* homoscedastic Gaussian with precision :math:`\tau`:
  :math:`\frac{\tau}{2}\lVert y - f(x)\rVert^2 - \frac D2 \log\tau + \frac D2 \log 2\pi`;
* heteroscedastic Gaussian with a mean head :math:`\mu` and a log-variance head :math:`s`:
  :math:`\frac12 \sum_d \left(e^{-s_d}(y_d-\mu_d)^2 + s_d + \log 2\pi\right)`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["categorical_nll", "gaussian_nll", "heteroscedastic_nll"]

_LOG_2PI = math.log(2.0 * math.pi)


def _per_point(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).sum(-1) if t.dim() > 1 else t


def categorical_nll(logits: Tensor, target: Tensor) -> Tensor:
    """Per-point cross-entropy of ``logits (N, C)`` against integer ``target (N,)``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import categorical_nll
    >>> round(categorical_nll(torch.zeros(1, 4), torch.tensor([2])).item(), 6)  # log 4
    1.386294
    """
    return F.cross_entropy(logits, target, reduction="none")


def gaussian_nll(prediction: Tensor, target: Tensor, tau: float) -> Tensor:
    r"""Per-point Gaussian NLL with precision ``tau``, summed over output dimensions.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import gaussian_nll
    >>> round(gaussian_nll(torch.zeros(1, 1), torch.zeros(1, 1), 1.0).item(), 6)  # log(2 pi)/2
    0.918939
    """
    sq = _per_point((target - prediction).pow(2))
    dims = prediction[0].numel() if prediction.dim() > 1 else 1
    return 0.5 * tau * sq + 0.5 * dims * (_LOG_2PI - math.log(tau))


def heteroscedastic_nll(mean: Tensor, log_variance: Tensor, target: Tensor) -> Tensor:
    r"""Per-point Gaussian NLL with a predicted log-variance ``s`` for every output.

    The reference loss :math:`e^{-s}(y-\mu)^2 + s` is twice this, minus the constant. The
    precision :math:`e^{-s}` is capped at :math:`e^{-1}` times the dtype's largest value, so
    that an exact fit (:math:`y = \mu`) with a very negative :math:`s` gives
    :math:`(s + \log 2\pi) / 2` (not NaN, with a finite gradient); a residual there gives a
    loss near the dtype's largest value (``inf`` once it overflows).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import heteroscedastic_nll
    >>> z = torch.zeros(1, 1)
    >>> round(heteroscedastic_nll(z, z, z).item(), 6)
    0.918939
    """
    # the precision capped below the dtype's largest value: exp(-s) overflows to inf for s below
    # about -88 in float32, and inf * 0 (an exact fit) would be NaN instead of 0 (the cap is on
    # the exponent, so that the gradient stays finite too)
    cap = math.log(torch.finfo(log_variance.dtype).max) - 1.0
    precision = torch.exp((-log_variance).clamp_max(cap))
    terms = precision * (target - mean).pow(2) + log_variance + _LOG_2PI
    return 0.5 * _per_point(terms)
