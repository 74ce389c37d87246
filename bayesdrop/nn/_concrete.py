"""Concrete Dropout: dropout with a learned drop rate (Gal, Hron & Kendall, 2017)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bayesdrop import functional as BF
from bayesdrop._validation import check_positive, check_probability, fail
from bayesdrop.nn._base import StochasticModule, check_weighted, input_features, weight_sq_norm

__all__ = ["ConcreteDropout", "SpatialConcreteDropout"]


class ConcreteDropout(StochasticModule):
    r"""Wrap a layer with Concrete Dropout on its input; the drop rate is learned.

    The drop probability is :math:`p = \sigma(\theta)` for a parameter ``p_logit``
    :math:`\theta`. When sampling, the input is multiplied by :math:`(1 - \tilde z)/(1 - p)` with
    :math:`\tilde z` the relaxed Bernoulli drop indicator of temperature :math:`t`
    (:func:`bayesdrop.functional.concrete_drop_mask`), so gradients reach :math:`\theta`.
    When not sampling the layer is applied to the input unchanged (inverted dropout).

    Two objectives are offered:

    * :meth:`regularization`, the reference code's term, added to the plain MSE/cross-entropy:

      .. math::

          R = \lambda_w \frac{\lVert W \rVert^2}{1-p} + \lambda_p K\,(p\log p + (1-p)\log(1-p))

      with :math:`\lambda_w, \lambda_p` from :func:`bayesdrop.regularizer_constants`;
    * :meth:`kl`, in nats, for :class:`bayesdrop.ELBO`:
      :math:`\frac{l^2}{2(1-p)}\lVert W\rVert^2 - K\,\mathcal H(p)`.

    :math:`\lVert W \rVert^2` is the kernel only by default (the Keras reference; the PyTorch
    notebook also includes the bias: ``include_bias=True``). ``p_logit`` is a parameter of its
    own; keep it out of weight decay (:meth:`dropout_parameters` lists it).

    Parameters
    ----------
    layer : nn.Module
        The layer whose input is dropped; it must have a ``weight``.
    weight_regularizer, dropout_regularizer : float
        :math:`\lambda_w` and :math:`\lambda_p` of :meth:`regularization` (reference defaults
        1e-6 and 1e-5).
    length_scale : float, default 1e-2
        Prior length-scale :math:`l` used by :meth:`kl`.
    init_min, init_max : float, default 0.1
        Range of the initial drop rate; ``p_logit`` starts at
        :math:`\mathcal U(\mathrm{logit}(p_{min}), \mathrm{logit}(p_{max}))`.
    temperature : float, optional
        Relaxation temperature :math:`t`; when not given, 0.1 (and 2/3 for
        :class:`SpatialConcreteDropout`), as in the reference code.
    include_bias : bool, default False
        Include the bias in :math:`\lVert W \rVert^2`.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> _ = torch.manual_seed(0)
    >>> cd = bayesdrop.ConcreteDropout(nn.Linear(3, 2))
    >>> round(cd.p.item(), 4)
    0.1
    >>> cd.eval()(torch.ones(5, 3)).shape
    torch.Size([5, 2])
    >>> cd.regularization().requires_grad
    True
    """

    spatial = False

    def __init__(
        self,
        layer: nn.Module,
        *,
        weight_regularizer: float = 1e-6,
        dropout_regularizer: float = 1e-5,
        length_scale: float = 1e-2,
        init_min: float = 0.1,
        init_max: float = 0.1,
        temperature: float | None = None,
        include_bias: bool = False,
    ) -> None:
        super().__init__()
        check_weighted(layer, type(self).__name__)
        self.layer = layer
        self.weight_regularizer = check_positive(
            "weight_regularizer", weight_regularizer, allow_zero=True
        )
        self.dropout_regularizer = check_positive(
            "dropout_regularizer", dropout_regularizer, allow_zero=True
        )
        self.length_scale = check_positive("length_scale", length_scale)
        lo = check_probability("init_min", init_min)
        hi = check_probability("init_max", init_max)
        if lo <= 0.0 or hi < lo:
            fail("init_min, init_max", "0 < init_min <= init_max < 1", (init_min, init_max))
        default_t = 2.0 / 3.0 if self.spatial else 0.1
        self.temperature = check_positive(
            "temperature", default_t if temperature is None else temperature
        )
        self.include_bias = bool(include_bias)
        weight: Tensor = layer.weight  # type: ignore[assignment]
        logit = torch.empty((), dtype=weight.dtype, device=weight.device)
        nn.init.uniform_(logit, math.log(lo / (1 - lo)), math.log(hi / (1 - hi)))
        self.p_logit = nn.Parameter(logit)

    @property
    def p(self) -> Tensor:
        """Learned drop probability :math:`\\sigma(\\theta)` (a 0-d tensor)."""
        return torch.sigmoid(self.p_logit)

    @property
    def num_inputs(self) -> int:
        """:math:`K`: input features (dense) or input channels (spatial)."""
        return input_features(self.layer)

    def dropout_parameters(self) -> list[nn.Parameter]:
        """The parameters that set the drop rate (keep them out of weight decay)."""
        return [self.p_logit]

    def forward(self, x: Tensor) -> Tensor:
        if self.is_sampling:
            mask_shape = BF.spatial_mask_shape(x) if self.spatial else None
            x = BF.concrete_dropout(x, self.p, self.temperature, mask_shape=mask_shape)
        return self.layer(x)

    def _sq_norm(self) -> Tensor:
        return weight_sq_norm(self.layer, include_bias=self.include_bias)

    def regularization(self) -> Tensor:
        """The reference regulariser :math:`R` (see the class docstring)."""
        return BF.concrete_regularization(
            self._sq_norm(),
            self.p,
            self.num_inputs,
            self.weight_regularizer,
            self.dropout_regularizer,
        )

    def kl(self) -> Tensor:
        return BF.concrete_dropout_kl(self._sq_norm(), self.p, self.num_inputs, self.length_scale)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4f}, temperature={self.temperature:.4g}"


class SpatialConcreteDropout(ConcreteDropout):
    r"""Concrete Dropout for convolutions: one mask value per (sample, channel).

    Wraps ``Conv1d``/``Conv2d``/``Conv3d``; :math:`K` is the number of input channels and the
    default temperature is 2/3, as in the reference code. (An elementwise mask on a
    convolution's input, with :math:`K = C \cdot H \cdot W`, is a known bug this avoids.)

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> cd = bayesdrop.SpatialConcreteDropout(nn.Conv2d(3, 4, 3)).train()
    >>> cd.temperature, cd.num_inputs
    (0.6666666666666666, 3)
    >>> cd(torch.randn(2, 3, 8, 8)).shape
    torch.Size([2, 4, 6, 6])
    """

    spatial = True
