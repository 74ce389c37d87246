r"""Stochastic depth ("drop path"): drop a whole residual branch per sample.

For a residual block :math:`y = x + f(x)`, stochastic depth (Huang et al., 2016) keeps the branch
of sample :math:`n` with probability :math:`1 - p` and rescales it, so the expectation over the
mask is the deterministic block:

.. math::

    y_n = x_n + \frac{z_n}{1 - p} f(x)_n, \qquad z_n \sim \mathrm{Bernoulli}(1 - p),
    \qquad \mathbb E[y_n] = x_n + f(x)_n .

One mask value per sample (shape ``(N, 1, ..., 1)``) multiplies every element of that
sample's branch output. At :math:`p = 1` the branch is always dropped (no rescaling).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["drop_path", "drop_path_mask_shape"]


def drop_path_mask_shape(x: Tensor) -> tuple[int, ...]:
    """Mask shape with one value per sample: ``(N, 1, ..., 1)``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import drop_path_mask_shape
    >>> drop_path_mask_shape(torch.zeros(8, 3, 5))
    (8, 1, 1)
    """
    if x.dim() < 1:
        raise ValueError(
            "Expected `x` to have a batch dimension, but got a 0-dimensional tensor. "
            "Pass the residual branch output of shape (N, ...)."
        )
    return (x.shape[0],) + (1,) * (x.dim() - 1)


def drop_path(x: Tensor, p: float, *, generator: torch.Generator | None = None) -> Tensor:
    r"""Drop the residual-branch output ``x`` of whole samples with probability ``p``.

    .. math::

        \tilde x_n = x_n \cdot \frac{z_n}{1 - p}, \qquad z_n \sim \mathrm{Bernoulli}(1 - p)

    Parameters
    ----------
    x : Tensor of shape (N, ...)
        Output of the residual branch (not the sum with the shortcut).
    p : float
        Drop probability in ``[0, 1]``; ``0`` returns ``x`` unchanged, ``1`` returns zeros.
    generator : torch.Generator, optional
        Source of randomness (on ``x``'s device).

    Returns
    -------
    Tensor
        Same shape as ``x``; each sample is either zero or ``x_n / (1 - p)``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import drop_path
    >>> g = torch.Generator().manual_seed(0)
    >>> y = drop_path(torch.ones(6, 2), 0.5, generator=g)
    >>> sorted(set(y.flatten().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    >>> bool((y[:, 0] == y[:, 1]).all())  # one value per sample
    True
    """
    if p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    keep = torch.empty(drop_path_mask_shape(x), dtype=x.dtype, device=x.device)
    keep.bernoulli_(1.0 - p, generator=generator)
    return x * keep.div_(1.0 - p)
