r"""Math for many small networks trained at once (a batch of :math:`M` models).

Every tensor carries the model dimension first: weights ``(M, in, out)``, biases ``(M, out)``,
activations ``(M, B, features)``, per-model rates ``(M,)``. Models never interact: the sum of
their losses has, for each model's parameters, exactly that model's gradient.

MC dropout's weight decay follows from the model precision :math:`\tau` (Gal & Ghahramani, 2016):

.. math::

    \lambda = \frac{(1 - p)\, l^2}{2 N \tau},

applied to the kernels only. The test log-likelihood of :math:`S` MC samples
:math:`\hat y_s` under a Gaussian of precision :math:`\tau` is, per point,

.. math::

    \log \frac1S \sum_s \mathcal N(y; \hat y_s, \tau^{-1})
    = \operatorname{logsumexp}_s\!\left(-\tfrac\tau2 (y - \hat y_s)^2\right) - \log S
      - \tfrac12 \log 2\pi + \tfrac12 \log\tau .
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bayesdrop.functional._dropout import concrete_dropout

__all__ = [
    "batched_bernoulli_dropout",
    "batched_concrete_dropout",
    "batched_dropout_linear",
    "batched_linear",
    "bernoulli_keep_mask",
    "gaussian_log_density",
    "logmeanexp_update",
    "mc_dropout_weight_decay",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _per_model(rates: Tensor, like: Tensor) -> Tensor:
    """Reshape ``(M,)`` rates to broadcast against ``like`` of shape ``(M, ...)``."""
    return rates.reshape((-1,) + (1,) * (like.dim() - 1)).to(like.dtype)


def batched_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Apply ``M`` linear maps at once: ``out[m] = x[m] @ weight[m] + bias[m]``.

    Parameters
    ----------
    x : Tensor, shape (M, B, in)
    weight : Tensor, shape (M, in, out)
    bias : Tensor, shape (M, out), optional

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional.batched import batched_linear
    >>> x, w, b = torch.ones(2, 3, 4), torch.ones(2, 4, 5), torch.zeros(2, 5)
    >>> batched_linear(x, w, b).shape
    torch.Size([2, 3, 5])
    """
    if bias is None:
        return torch.bmm(x, weight)
    return torch.baddbmm(bias.unsqueeze(1), x, weight)


_INT64_MIN = -(2**63)
_LEVELS = 2**16


def bernoulli_keep_mask(shape: tuple[int, ...], keep: Tensor) -> tuple[Tensor, Tensor]:
    r"""Boolean keep-mask with keep probability ``keep`` (broadcast against ``shape``).

    Draws 16-bit uniform integers, four per 64-bit word of :meth:`torch.Tensor.random_`, and
    keeps an element when its integer falls below :math:`\mathrm{round}(2^{16}\,\text{keep})`.
    The keep probability is therefore rounded to a multiple of :math:`2^{-16}` (a drop rate of
    0.005 becomes 0.0050049); that rounded value is returned, and dividing by it keeps the
    inverted-dropout mask unbiased. This is four times cheaper on CPU than comparing
    ``torch.rand`` floats, which dominates the cost of training small dropout networks.

    Returns
    -------
    mask : Tensor of bool, ``shape``
    keep : Tensor
        The exact keep probability of the mask (``keep`` rounded), same shape as ``keep``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional.batched import bernoulli_keep_mask
    >>> _ = torch.manual_seed(0)  # the drop fraction printed below is random
    >>> m, k = bernoulli_keep_mask((2, 100_000), torch.tensor([[1.0], [0.995]]))
    >>> m.dtype, bool(m[0].all()), round(1 - m[1].float().mean().item(), 3)
    (torch.bool, True, 0.005)
    >>> round(1 - k[1].item(), 7)
    0.0050049
    """
    numel = math.prod(shape)
    words = torch.empty((numel + 3) // 4, dtype=torch.int64, device=keep.device)
    bits = words.random_(_INT64_MIN, None).view(torch.int16)[:numel].reshape(shape)
    levels = torch.round(keep * _LEVELS).clamp(1, _LEVELS)
    mask = bits <= (levels - (_LEVELS // 2 + 1)).to(torch.int16)
    return mask, levels / _LEVELS


def batched_bernoulli_dropout(x: Tensor, p: Tensor) -> Tensor:
    r"""Inverted Bernoulli dropout with one drop rate per model, a fresh mask per element.

    :math:`\tilde x_m = x_m \cdot z / (1 - p_m)`, :math:`z \sim \mathrm{Bernoulli}(1 - p_m)`
    (masks from :func:`bernoulli_keep_mask`, so :math:`1 - p_m` is rounded to
    :math:`2^{-16}`).

    Parameters
    ----------
    x : Tensor, shape (M, ...)
    p : Tensor, shape (M,)
        Drop probabilities in ``[0, 1)``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional.batched import batched_bernoulli_dropout
    >>> y = batched_bernoulli_dropout(torch.ones(2, 10_000), torch.tensor([0.0, 0.5]))
    >>> bool((y[0] == 1).all()), sorted(y[1].unique().tolist())
    (True, [0.0, 2.0])
    """
    mask, keep = bernoulli_keep_mask(tuple(x.shape), 1.0 - _per_model(p, x))
    return x * (mask.to(x.dtype) / keep)


def batched_dropout_linear(x: Tensor, p: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    r"""``batched_linear(batched_bernoulli_dropout(x, p), weight, bias)`` with the scaling
    :math:`1/(1-p_m)` folded into the (small) weights instead of the (large) activations.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional.batched import batched_dropout_linear
    >>> x, w = torch.ones(2, 3, 4), torch.ones(2, 4, 1)
    >>> batched_dropout_linear(x, torch.zeros(2), w, None)[..., 0]
    tensor([[4., 4., 4.],
            [4., 4., 4.]])
    """
    mask, keep = bernoulli_keep_mask(tuple(x.shape), 1.0 - p.to(x.dtype).reshape(-1, 1, 1))
    return batched_linear(x * mask.to(x.dtype), weight / keep, bias)


def batched_concrete_dropout(x: Tensor, p: Tensor, temperature: float) -> Tensor:
    r"""Concrete Dropout with one learned rate per model (see
    :func:`bayesdrop.functional.concrete_dropout`): :math:`\tilde x = x (1 - \tilde z)/(1 - p_m)`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional.batched import batched_concrete_dropout
    >>> p = torch.tensor([0.1, 0.4], requires_grad=True)
    >>> batched_concrete_dropout(torch.ones(2, 3, 4), p, 0.1).sum().backward()
    >>> p.grad.shape
    torch.Size([2])
    """
    return concrete_dropout(x, _per_model(p, x), temperature)


def mc_dropout_weight_decay(
    p: Tensor, tau: Tensor, num_data: Tensor, length_scale: float
) -> Tensor:
    r"""Weight decay :math:`\lambda = (1 - p)\, l^2 / (2 N \tau)` of MC dropout, elementwise.

    It multiplies :math:`\lVert W \rVert^2` of each kernel in a loss whose data term is the
    mean squared error (the reference code's Keras ``l2`` regulariser).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional.batched import mc_dropout_weight_decay
    >>> t = torch.tensor
    >>> lam = mc_dropout_weight_decay(t(0.05), t(0.25), t(100.0), 1e-2)
    >>> f"{lam.item():.3e}"
    '1.900e-06'
    """
    return (1.0 - p) * length_scale**2 / (2.0 * num_data * tau)


def gaussian_log_density(target: Tensor, mean: Tensor, log_variance: Tensor) -> Tensor:
    r"""Elementwise :math:`\log \mathcal N(y; \mu, e^{s})`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional.batched import gaussian_log_density
    >>> z = torch.zeros(1)
    >>> round(gaussian_log_density(z, z, z).item(), 6)  # -log(2 pi) / 2
    -0.918939
    """
    return -0.5 * ((target - mean).pow(2) * torch.exp(-log_variance) + log_variance + _LOG_2PI)


def logmeanexp_update(
    running: Tensor | None, log_terms: Tensor, count: int, new: int
) -> tuple[Tensor, int]:
    r"""Streaming :math:`\log \frac1S \sum_s e^{a_s}` over chunks of samples (dimension 0).

    ``running`` holds the log-mean of the first ``count`` samples (``None`` at the start);
    ``log_terms`` holds ``new`` more samples. Returns the log-mean of all and the new count.

    Examples
    --------
    >>> import math
    >>> import torch
    >>> from bayesdrop.functional.batched import logmeanexp_update
    >>> a = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    >>> r, n = logmeanexp_update(None, a[:4], 0, 4)
    >>> r, n = logmeanexp_update(r, a[4:], n, 6)
    >>> torch.allclose(r, torch.logsumexp(a, 0) - math.log(10), atol=1e-6)
    True
    """
    chunk = torch.logsumexp(log_terms, dim=0) - math.log(new)
    total = count + new
    if running is None:
        return chunk, total
    combined = torch.logaddexp(running + math.log(count / total), chunk + math.log(new / total))
    return combined, total
