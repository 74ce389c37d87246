"""Bernoulli (MC) dropout as a variational posterior."""

from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor, nn

from bayesdrop import functional as BF
from bayesdrop._validation import check_positive, check_probability, fail
from bayesdrop.nn._base import StochasticModule, check_weighted, input_features, weight_sq_norm

__all__ = ["MCDropout", "SpatialMCDropout"]


class MCDropout(StochasticModule):
    r"""Inverted Bernoulli dropout that is a variational posterior (Gal & Ghahramani, 2016).

    It samples in training mode and under :func:`bayesdrop.sampling`, and is the identity
    otherwise, so it is a drop-in for :class:`torch.nn.Dropout`: ``MCDropout(0.5)``.
    Given the layer whose input it drops, ``MCDropout(nn.Linear(50, 1), p=0.05)`` computes
    ``layer(dropout(x))`` and knows that layer's weights, so :meth:`kl` is the layer's KL
    to the prior :math:`\mathcal N(0, l^{-2} I)`:

    .. math::

        \mathrm{KL} = \frac{l^2 (1-p)}{2} \lVert W \rVert^2 - K\,\mathcal H(p),

    with :math:`K` the layer's input features and :math:`W` its kernel (biases excluded, as in
    the reference code). Without a layer, :meth:`kl` is zero: the KL of a dropout posterior
    lives on the weights it masks.

    Parameters
    ----------
    layer : nn.Module or float, optional
        The layer whose input is dropped (it must have a ``weight``), or the drop rate when
        used as a plain ``nn.Dropout`` replacement.
    p : float, optional
        Drop probability in ``[0, 1)`` (0.5 when neither ``p`` nor a rate as ``layer`` is
        given); a plain attribute, so schedules may change it.
    length_scale : float, default 1e-2
        Prior length-scale :math:`l`.
    include_bias : bool, default False
        Whether :math:`\lVert W \rVert^2` includes the bias.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> _ = torch.manual_seed(0)
    >>> layer = bayesdrop.MCDropout(nn.Linear(4, 1), p=0.5, length_scale=1.0)
    >>> layer.eval()(torch.ones(2, 4)).shape
    torch.Size([2, 1])
    >>> w2 = layer.layer.weight.pow(2).sum()
    >>> torch.allclose(layer.kl(), 0.25 * w2 - 4 * torch.log(torch.tensor(2.0)))
    True
    """

    def __init__(
        self,
        layer: nn.Module | float | None = None,
        p: float | None = None,
        *,
        length_scale: float = 1e-2,
        include_bias: bool = False,
    ) -> None:
        super().__init__()
        module: nn.Module | None = None
        if isinstance(layer, Real) and not isinstance(layer, bool):
            if p is not None:
                fail("p", "given once", f"p={layer!r} positionally and p={p!r}")
            p = float(layer)
        elif layer is not None:
            module = check_weighted(layer, type(self).__name__)  # type: ignore[arg-type]
        self.layer = module
        self.p = 0.5 if p is None else p
        self.length_scale = check_positive("length_scale", length_scale)
        self.include_bias = bool(include_bias)

    @property
    def p(self) -> float:
        """Drop probability."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        self._p = check_probability("p", value)

    def _mask_shape(self, x: Tensor) -> tuple[int, ...] | None:
        return None

    def forward(self, x: Tensor) -> Tensor:
        if self.is_sampling and self._p > 0.0:
            x = BF.bernoulli_dropout(x, self._p, mask_shape=self._mask_shape(x))
        return x if self.layer is None else self.layer(x)

    def kl(self) -> Tensor:
        if self.layer is None:
            return torch.zeros(())
        sq = weight_sq_norm(self.layer, include_bias=self.include_bias)
        return BF.mc_dropout_kl(sq, self._p, input_features(self.layer), self.length_scale)

    def extra_repr(self) -> str:
        return f"p={self._p}, length_scale={self.length_scale}"


class SpatialMCDropout(MCDropout):
    r"""Channel-wise MC dropout for convolutional inputs: one mask value per (sample, channel).

    The drop-in for :class:`torch.nn.Dropout1d` / ``Dropout2d`` / ``Dropout3d``; the KL is
    that of :class:`MCDropout` with :math:`K` the number of input channels.

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> drop = bayesdrop.nn.SpatialMCDropout(0.5).train()
    >>> y = drop(torch.ones(2, 3, 4, 4))
    >>> bool((y.amax(dim=(2, 3)) == y.amin(dim=(2, 3))).all())
    True
    """

    def _mask_shape(self, x: Tensor) -> tuple[int, ...] | None:
        return BF.spatial_mask_shape(x)
