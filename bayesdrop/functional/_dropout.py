r"""Dropout noise as a variational posterior: the masks and their application.

Everything here is a pure function of tensors. ``p`` is always the DROP probability.

Bernoulli (MC) dropout draws :math:`z_j \sim \mathrm{Bernoulli}(1 - p)` and applies inverted
scaling :math:`\tilde x = x \cdot z / (1 - p)`, so that :math:`\mathbb{E}[\tilde x] = x`.

Concrete dropout (Gal, Hron & Kendall, 2017) replaces the Bernoulli drop indicator by its
continuous relaxation with temperature :math:`t`,

.. math::

    \tilde z = \sigma\!\left(\frac{\log(p + \epsilon) - \log(1 - p + \epsilon)
               + \log(u + \epsilon) - \log(1 - u + \epsilon)}{t}\right),
    \quad u \sim \mathcal U(0, 1),

and keeps :math:`\tilde x = x \cdot (1 - \tilde z) / (1 - p)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "bernoulli_dropout",
    "bernoulli_mask",
    "concrete_drop_mask",
    "concrete_dropout",
    "spatial_mask_shape",
]

#: The clamp of the Concrete relaxation's logarithms, :math:`\log(p + \epsilon)` (Gal et al.,
#: 2017, reference code).
CONCRETE_EPS = 1e-7


def bernoulli_mask(
    shape: tuple[int, ...] | torch.Size,
    p: float,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Draw an inverted Bernoulli keep-mask :math:`z / (1 - p)`, :math:`z \sim \mathrm{Bern}(1-p)`.

    Parameters
    ----------
    shape : tuple of int
        Shape of the mask.
    p : float
        Drop probability in ``[0, 1)``.

    Returns
    -------
    Tensor
        Values in ``{0, 1 / (1 - p)}``; its expectation is one.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import bernoulli_mask
    >>> m = bernoulli_mask((10_000,), 0.25, generator=torch.Generator().manual_seed(0))
    >>> [round(v, 4) for v in m.unique().tolist()]
    [0.0, 1.3333]
    >>> round(m.mean().item(), 1)
    1.0
    """
    keep = torch.empty(shape, dtype=dtype, device=device)
    if p == 0.0:
        return keep.fill_(1.0)
    keep.bernoulli_(1.0 - p, generator=generator)
    return keep.div_(1.0 - p)


def bernoulli_dropout(
    x: Tensor,
    p: float,
    *,
    mask_shape: tuple[int, ...] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Inverted Bernoulli dropout, :math:`\tilde x = x \cdot z / (1 - p)`.

    ``mask_shape`` broadcasts against ``x``: ``None`` drops elementwise, a shape with ones drops
    whole slices (``spatial_mask_shape`` gives the per-channel shape).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import bernoulli_dropout
    >>> x = torch.ones(2, 4)
    >>> torch.equal(bernoulli_dropout(x, 0.0), x)
    True
    """
    if p == 0.0:
        return x
    shape = tuple(x.shape) if mask_shape is None else tuple(mask_shape)
    return x * bernoulli_mask(shape, p, dtype=x.dtype, device=x.device, generator=generator)


def spatial_mask_shape(x: Tensor) -> tuple[int, ...]:
    """Mask shape with one value per (sample, channel): ``(N, C, 1, ..., 1)``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import spatial_mask_shape
    >>> spatial_mask_shape(torch.zeros(8, 3, 5, 5))
    (8, 3, 1, 1)
    """
    if x.dim() < 3:
        raise ValueError(
            "Expected `x` to have a channel and at least one spatial dimension (N, C, ...), "
            f"but got shape {tuple(x.shape)}."
        )
    return (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)


def concrete_drop_mask(
    p: Tensor,
    shape: tuple[int, ...] | torch.Size,
    temperature: float,
    *,
    noise: Tensor | None = None,
    eps: float = CONCRETE_EPS,
) -> Tensor:
    r"""Relaxed Bernoulli DROP indicator :math:`\tilde z \in (0, 1)` of Concrete Dropout.

    .. math::

        \tilde z = \sigma\!\left(\frac{\log(p+\epsilon) - \log(1-p+\epsilon)
        + \log(u+\epsilon) - \log(1-u+\epsilon)}{t}\right)

    As :math:`t \to 0` this becomes a Bernoulli(:math:`p`) drop indicator. It is the
    ``RelaxedBernoulli(temperature=t, probs=p)`` distribution, reparameterised so that
    gradients flow to ``p``.

    Parameters
    ----------
    p : Tensor
        Drop probability (a scalar tensor, usually ``sigmoid(p_logit)``).
    shape : tuple of int
        Shape of the mask.
    temperature : float
        Relaxation temperature ``t`` (0.1 for dense layers, 2/3 for spatial ones).
    noise : Tensor, optional
        Uniform noise ``u`` of ``shape``; drawn with ``torch.rand`` when omitted.
    eps : float
        Numerical guard, 1e-7 as in the reference code.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import concrete_drop_mask
    >>> z = concrete_drop_mask(torch.tensor(0.5), (3,), 0.1, noise=torch.tensor([0.01, 0.5, 0.99]))
    >>> [round(v, 3) for v in z.tolist()]
    [0.0, 0.5, 1.0]
    """
    if noise is None:
        noise = torch.rand(shape, dtype=p.dtype, device=p.device)
    logit_p = torch.log(p + eps) - torch.log(1.0 - p + eps)
    logit_u = torch.log(noise + eps) - torch.log(1.0 - noise + eps)
    return torch.sigmoid((logit_p + logit_u) / temperature)


def concrete_dropout(
    x: Tensor,
    p: Tensor,
    temperature: float,
    *,
    mask_shape: tuple[int, ...] | None = None,
    noise: Tensor | None = None,
    eps: float = CONCRETE_EPS,
) -> Tensor:
    r"""Apply Concrete Dropout: :math:`\tilde x = x \cdot (1 - \tilde z) / (1 - p)`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import concrete_dropout
    >>> x = torch.ones(4)
    >>> y = concrete_dropout(x, torch.tensor(0.5), 0.1, noise=torch.tensor([0.01, 0.2, 0.8, 0.99]))
    >>> [round(v, 2) for v in y.tolist()]
    [2.0, 2.0, 0.0, 0.0]
    """
    shape = tuple(x.shape) if mask_shape is None else tuple(mask_shape)
    drop = concrete_drop_mask(p, shape, temperature, noise=noise, eps=eps)
    return x * (1.0 - drop) / (1.0 - p)
