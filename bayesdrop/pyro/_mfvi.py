r"""A mean-field Gaussian Bayesian neural network in Pyro: the baseline beside MC dropout.

The model has the architecture of the UCI dropout network (ReLU MLP), Gaussian priors on all
weights and biases, and a homoscedastic Gaussian likelihood whose precision has a Gamma prior:

.. math::

    W_k, b_k \sim \mathcal N(0, \sigma_w^2), \qquad \tau \sim \Gamma(a, b), \qquad
    y_n \mid x_n \sim \mathcal N\!\left(f_W(x_n), \tau^{-1}\right).

Fitting it with :class:`pyro.infer.autoguide.AutoNormal` gives mean-field (fully factorised)
Gaussian variational inference (Blundell et al., 2015). ``num_models`` independent networks
share one Pyro model (a plate over models), so a baseline over many splits trains in one loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, PyroSample
from torch import Tensor

from bayesdrop._validation import check_positive, check_positive_int, check_tensor, fail

__all__ = ["MeanFieldMLP"]


def _matmul(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x (M, B, I)`` times weights ``(..., M, I, O)`` plus biases ``(..., M, O)``."""
    lead = weight.shape[:-3]
    weight = weight.reshape((-1, *weight.shape[-3:]))
    bias = bias.reshape((-1, *bias.shape[-2:]))
    out = torch.matmul(x, weight) + bias.unsqueeze(-2)
    return out.reshape(lead + out.shape[-3:]) if lead else out[0]


class MeanFieldMLP(PyroModule):
    r"""Pyro model of ``num_models`` Bayesian ReLU MLPs (priors as in the module docstring).

    Call it as ``model(x, y=None, num_data=None)`` with ``x`` of shape ``(M, B, in)`` (or
    ``(B, in)``, shared by the models) and ``y`` of shape ``(M, B)``. When ``num_data`` (the
    training-set size of each model, an int or ``(M,)``) is given, the observed minibatch's
    log-likelihood is scaled by ``num_data / B``, so that SVI on minibatches optimises the
    full-data ELBO. A deterministic site ``"mean"`` holds the network output, the sample site
    ``"precision"`` the noise precision :math:`\tau` of each model.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int
    num_models : int, default 1
    prior_scale : float, default 1.0
        :math:`\sigma_w`.
    precision_prior : (float, float), default (6.0, 6.0)
        Shape and rate of the Gamma prior on :math:`\tau` (those of Hernandez-Lobato & Adams,
        2015, for standardised targets).

    Examples
    --------
    >>> import pyro
    >>> import torch
    >>> from pyro.infer import SVI, Trace_ELBO
    >>> from pyro.infer.autoguide import AutoNormal
    >>> from bayesdrop.pyro import MeanFieldMLP
    >>> pyro.clear_param_store()
    >>> model = MeanFieldMLP(2, (16,))
    >>> guide = AutoNormal(model, init_scale=0.01)
    >>> svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    >>> x = torch.randn(1, 32, 2); y = x[..., 0]
    >>> losses = [svi.step(x, y, num_data=32) for _ in range(200)]
    >>> losses[-1] < losses[0]
    True
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        *,
        num_models: int = 1,
        prior_scale: float = 1.0,
        precision_prior: tuple[float, float] = (6.0, 6.0),
    ) -> None:
        super().__init__()
        self.num_models = check_positive_int("num_models", num_models)
        widths = [check_positive_int("in_features", in_features)]
        widths += [check_positive_int("hidden", h) for h in hidden] + [1]
        self.widths = tuple(widths)
        scale = check_positive("prior_scale", prior_scale)
        shape, rate = (check_positive("precision_prior", v) for v in precision_prior)
        self.num_layers = len(widths) - 1
        for k, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            w_prior = dist.Normal(0.0, scale).expand([num_models, fan_in, fan_out]).to_event(3)
            b_prior = dist.Normal(0.0, scale).expand([num_models, fan_out]).to_event(2)
            setattr(self, f"weight{k}", PyroSample(w_prior))
            setattr(self, f"bias{k}", PyroSample(b_prior))
        self.precision = PyroSample(dist.Gamma(shape, rate).expand([num_models]).to_event(1))

    def network(self, x: Tensor) -> Tensor:
        """The network output ``(..., M, B)`` for the current sample of the weights."""
        for k in range(self.num_layers):
            x = _matmul(x, getattr(self, f"weight{k}"), getattr(self, f"bias{k}"))
            if k < self.num_layers - 1:
                x = torch.relu(x)
        return x[..., 0]

    def forward(
        self, x: Tensor, y: Tensor | None = None, num_data: Tensor | int | None = None
    ) -> Tensor:
        x = check_tensor("x", x)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.num_models, -1, -1)
        if x.dim() != 3 or x.shape[0] != self.num_models or x.shape[2] != self.widths[0]:
            fail("x", f"of shape ({self.num_models}, B, {self.widths[0]})", tuple(x.shape))
        if y is not None and y.dim() == 1 and self.num_models == 1:
            y = y.unsqueeze(0)
        mean = pyro.deterministic("mean", self.network(x))
        noise = self.precision.reshape(mean.shape[:-1]).rsqrt().unsqueeze(-1)  # type: ignore[attr-defined]
        scale: float | Tensor = 1.0
        if num_data is not None and y is not None:
            num = torch.as_tensor(num_data, dtype=x.dtype, device=x.device)
            scale = (num.expand(self.num_models) / x.shape[1]).unsqueeze(-1)
        with pyro.plate("models", self.num_models, dim=-2), pyro.plate("data", x.shape[1], dim=-1):
            with pyro.poutine.scale(scale=scale):
                return pyro.sample("obs", dist.Normal(mean, noise), obs=y)
