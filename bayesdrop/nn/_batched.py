"""Many small dropout MLPs evaluated as one batch: the grid of a sweep as a single module."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from bayesdrop import functional as BF
from bayesdrop._validation import (
    check_choice,
    check_positive,
    check_positive_int,
    check_probability,
    check_tensor,
    fail,
)
from bayesdrop.functional import batched as BB
from bayesdrop.nn._base import StochasticModule

__all__ = ["BatchedMLP"]

Dropout = Literal["bernoulli", "concrete"]


def _rates(num_models: int, p: float | Sequence[float] | Tensor) -> Tensor:
    values = torch.as_tensor(p, dtype=torch.float64).reshape(-1)
    if values.numel() == 1:
        values = values.expand(num_models)
    if values.numel() != num_models:
        fail("p", f"a float or {num_models} rates (one per model)", f"{values.numel()} rates")
    for v in values.tolist():
        check_probability("p", v)
    return values.clone()


class BatchedMLP(StochasticModule):
    r"""``num_models`` independent ReLU MLPs with dropout on the input of every linear layer.

    Model :math:`m` computes, for layers :math:`k = 1..L`,

    .. math::

        h^{(k)} = \phi\!\left(\big(h^{(k-1)} \odot z^{(k)}_m / (1 - p^{(k)}_m)\big)
        W^{(k)}_m + b^{(k)}_m\right)

    (no activation on the last layer), with weights of shape ``(M, in, out)``. With
    ``dropout="bernoulli"`` the drop rate :math:`p_m` is fixed per model (the same on every
    layer, as in the UCI protocol); with ``dropout="concrete"`` each model and layer learns its
    own :math:`p = \sigma(\theta)` through the relaxed Concrete mask (temperature ``t``). The
    module samples in training mode or under :func:`bayesdrop.sampling`, and is deterministic
    otherwise, like every bayesdrop layer.

    Kernels start Glorot-uniform and biases at zero (the Keras defaults of the reference code).

    Parameters
    ----------
    num_models : int
        :math:`M`.
    in_features, out_features : int
        Input and output widths (shared by all models).
    hidden : sequence of int
        Hidden widths, e.g. ``(50,)``.
    dropout : {"bernoulli", "concrete"}, default "bernoulli"
    p : float or sequence of float, default 0.1
        Bernoulli: the rate of each model (a float applies to all). Concrete: the initial rate.
    length_scale : float, default 1e-2
        Prior length-scale :math:`l` of :meth:`kl`.
    temperature : float, default 0.1
        Concrete relaxation temperature.
    learn_noise : bool, default False
        Add a learned log noise variance per model, ``log_noise`` of shape ``(M,)`` (a
        homoscedastic Gaussian likelihood with learned precision, for one-output Concrete
        nets; two-output Concrete nets predict a log-variance per point instead).

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> net = bayesdrop.nn.BatchedMLP(3, 4, (8,), 1, p=[0.0, 0.1, 0.5])
    >>> x = torch.randn(3, 5, 4)  # (models, points, features)
    >>> net.eval()(x).shape
    torch.Size([3, 5, 1])
    >>> with bayesdrop.sampling(net):
    ...     torch.equal(net(x)[0], net(x)[0]), torch.equal(net(x)[2], net(x)[2])
    (True, False)
    """

    p: Tensor  # per-network drop rates (a buffer, Bernoulli dropout)

    def __init__(
        self,
        num_models: int,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        dropout: Dropout = "bernoulli",
        p: float | Sequence[float] | Tensor = 0.1,
        length_scale: float = 1e-2,
        temperature: float = 0.1,
        learn_noise: bool = False,
    ) -> None:
        super().__init__()
        self.num_models = check_positive_int("num_models", num_models)
        widths = [check_positive_int("in_features", in_features)]
        widths += [check_positive_int("hidden", h) for h in hidden]
        widths.append(check_positive_int("out_features", out_features))
        self.widths = tuple(widths)
        self.dropout = check_choice("dropout", dropout, ("bernoulli", "concrete"))
        self.length_scale = check_positive("length_scale", length_scale)
        self.temperature = check_positive("temperature", temperature)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(widths):
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            w = torch.empty(num_models, fan_in, fan_out).uniform_(-limit, limit)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(num_models, fan_out)))
        rates = _rates(num_models, p)
        if self.dropout == "bernoulli":
            self.register_buffer("p", rates.to(torch.get_default_dtype()))
        else:
            if bool((rates <= 0).any()):
                fail("p", "in (0, 1) for Concrete Dropout (the initial rate)", rates.tolist())
            logit = torch.logit(rates).to(torch.get_default_dtype())
            self.p_logit = nn.Parameter(logit[:, None].repeat(1, len(widths) - 1))
        self.log_noise = nn.Parameter(torch.zeros(num_models)) if learn_noise else None

    @property
    def num_layers(self) -> int:
        """Number of linear layers."""
        return len(self.weights)

    def drop_rates(self) -> Tensor:
        """Drop probabilities, shape ``(M, num_layers)``."""
        if self.dropout == "concrete":
            return torch.sigmoid(self.p_logit)
        return self.p[:, None].expand(-1, self.num_layers)

    def forward(self, x: Tensor) -> Tensor:
        """Outputs ``(M, B, out)`` for inputs ``(M, B, in)`` (or ``(B, in)``, shared)."""
        x = check_tensor("x", x)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.num_models, -1, -1)
        if x.dim() != 3 or x.shape[0] != self.num_models or x.shape[2] != self.widths[0]:
            fail("x", f"of shape ({self.num_models}, B, {self.widths[0]})", tuple(x.shape))
        rates = self.drop_rates() if self.is_sampling else None
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=False)):
            if rates is None:
                x = BB.batched_linear(x, w, b)
            elif self.dropout == "concrete":
                x = BB.batched_concrete_dropout(x, rates[:, k], self.temperature)
                x = BB.batched_linear(x, w, b)
            else:
                x = BB.batched_dropout_linear(x, rates[:, k], w, b)
            if k < self.num_layers - 1:
                x = torch.relu(x)
        return x

    def noise_log_variance(self, output: Tensor) -> Tensor:
        """Log noise variance for outputs ``(..., M, B, out)``: the learned ``log_noise`` of each
        model (``learn_noise=True``), else the second output (a heteroscedastic head)."""
        if self.log_noise is not None:
            return self.log_noise[:, None].expand(output.shape[:-1])
        if self.widths[-1] != 2:
            fail("net", "a net with learn_noise=True or a (mean, log-variance) head", self.widths)
        return output[..., 1]

    def kernel_sq_norms(self) -> Tensor:
        r""":math:`\lVert W^{(k)}_m \rVert^2` of every kernel (biases excluded), ``(M, L)``."""
        return torch.stack([w.pow(2).sum(dim=(1, 2)) for w in self.weights], dim=1)

    def kl_per_model(self) -> Tensor:
        r"""KL of each model's dropout posterior to the prior :math:`\mathcal N(0, l^{-2})`,
        ``(M,)`` (:func:`bayesdrop.functional.mc_dropout_kl` or
        :func:`bayesdrop.functional.concrete_dropout_kl` per layer, summed)."""
        sq, rates = self.kernel_sq_norms(), self.drop_rates()
        kl = BF.concrete_dropout_kl if self.dropout == "concrete" else BF.mc_dropout_kl
        terms = [
            kl(sq[:, k], rates[:, k], self.widths[k], self.length_scale) for k in range(sq.shape[1])
        ]
        return torch.stack(terms, dim=1).sum(dim=1)

    def kl(self) -> Tensor:
        """Sum of the models' KL terms (the models are independent)."""
        return self.kl_per_model().sum()

    def extra_repr(self) -> str:
        return f"num_models={self.num_models}, widths={self.widths}, dropout={self.dropout!r}"
