"""Stochastic depth on residual branches, as a schedulable bayesdrop layer."""

from __future__ import annotations

import torch
from torch import Tensor

from bayesdrop._validation import check_probability
from bayesdrop.functional._drop_path import drop_path
from bayesdrop.nn._base import StochasticModule

__all__ = ["DropPath"]


class DropPath(StochasticModule):
    r"""Stochastic depth: drop the residual branch of whole samples (Huang et al., 2016).

    Use it on the branch of a residual block, ``x + drop_path(f(x))``. Each sample's branch is
    kept with probability :math:`1 - p` and rescaled by :math:`1 / (1 - p)`, so

    .. math::

        \mathbb E_z\!\left[x + \tfrac{z}{1-p} f(x)\right] = x + f(x),
        \qquad z \sim \mathrm{Bernoulli}(1 - p)\ \text{per sample}.

    It samples in training mode and under :func:`bayesdrop.sampling` (so MC prediction draws
    sub-networks of random depth), and is the identity otherwise. Unlike the reference code
    (timm's blocks become ``nn.Identity`` at rate 0), a ``DropPath`` stays a ``DropPath`` at
    ``p = 0``, so :class:`bayesdrop.schedules.DropoutScheduler` can raise its rate later
    ("Dropout Reduces Underfitting", Liu et al. 2023, needs every block schedulable).

    :meth:`kl` is zero: stochastic depth drops activations, not the weights of a layer this
    module knows, so there is no weight-space posterior term to add (as for a bare
    :class:`bayesdrop.MCDropout` without a layer).

    Parameters
    ----------
    p : float, default 0.0
        Drop probability in ``[0, 1]``; a plain attribute, so schedules may change it.

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> drop = bayesdrop.nn.DropPath(0.5).train()
    >>> y = drop(torch.ones(8, 3))
    >>> bool(((y == 0) | (y == 2)).all()), bool((y[:, :1] == y).all())
    (True, True)
    >>> torch.equal(drop.eval()(torch.ones(8, 3)), torch.ones(8, 3))
    True
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    @property
    def p(self) -> float:
        """Drop probability of the branch."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        self._p = check_probability("p", value, allow_one=True)

    def forward(self, x: Tensor) -> Tensor:
        if self.is_sampling and self._p > 0.0:
            return drop_path(x, self._p)
        return x

    def kl(self) -> Tensor:
        return torch.zeros(())

    def extra_repr(self) -> str:
        return f"p={self._p}"
