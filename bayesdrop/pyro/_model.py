r"""A bayesdrop network as a Pyro model whose ELBO is bayesdrop's.

Dropout variational inference keeps the variational parameters (the weights and, for Concrete
Dropout, the drop rates) inside the network, and draws :math:`\hat\omega \sim q(\omega)` by
sampling masks. In Pyro terms the network is a model with no latent sample sites: the masks
are drawn inside the forward pass, the KL enters as a factor, and the guide is empty. With a
minibatch :math:`B` of :math:`N` points the observation plate scales the likelihood by
:math:`N/|B|`, so Pyro's ``Trace_ELBO`` loss is

.. math::

    -\frac{N}{|B|}\sum_{n \in B} \log p(y_n \mid x_n, \hat\omega) + \mathrm{KL}(q \,\|\, p)
    = N \cdot \mathcal L_{\text{bayesdrop}},

``num_data`` times the per-point negative ELBO of :class:`bayesdrop.ELBO` on the same masks.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from bayesdrop._validation import check_module, check_positive, check_tensor, fail
from bayesdrop._vocabulary import Likelihood, check_likelihood
from bayesdrop.nn._sampling import sampling
from bayesdrop.objectives._kl import kl_divergence

__all__ = ["DropoutModel"]


class DropoutModel:
    r"""Wrap a network with bayesdrop layers as a Pyro model (and its empty guide).

    ``model(x, y=None)`` registers the network's parameters (:func:`pyro.module`), adds
    ``pyro.factor("kl", -KL)`` with the KL of :func:`bayesdrop.kl_divergence`, runs the
    network under :func:`bayesdrop.sampling` (so every call draws fresh dropout masks),
    records the output as the deterministic site ``"prediction"`` (for the heteroscedastic
    likelihood: ``"mean"`` and ``"log_variance"``) and observes ``y`` at the site ``"obs"``
    inside a plate of size ``num_data`` subsampled to the minibatch. Without ``y`` the plate is
    the batch itself, and ``"obs"`` is a draw from the predictive.

    SVI with ``Trace_ELBO`` and :meth:`guide` then minimises ``num_data`` times the loss of
    :class:`bayesdrop.ELBO` (see the module docstring), and
    ``pyro.infer.Predictive(model, guide=model.guide, num_samples=S)`` draws MC-dropout samples.

    Parameters
    ----------
    net : nn.Module
        A network containing bayesdrop layers.
    num_data : int
        :math:`N`, the training-set size.
    likelihood : {"gaussian", "categorical", "heteroscedastic"}, default "gaussian"
        As in :class:`bayesdrop.ELBO`: a Normal with precision ``tau`` (summed over output
        dimensions), a Categorical over logits, or a Normal with a predicted log-variance
        (the network returns ``(mean, log_variance)``).
    tau : float, default 1.0
        Precision of the Gaussian likelihood.
    name : str, default "net"
        Prefix of the network's parameters in Pyro's parameter store.

    Examples
    --------
    >>> import pyro
    >>> import torch
    >>> from pyro.infer import SVI, Trace_ELBO
    >>> from torch import nn
    >>> import bayesdrop
    >>> from bayesdrop.pyro import DropoutModel
    >>> pyro.clear_param_store()
    >>> net = nn.Sequential(nn.Linear(1, 16), nn.ReLU(),
    ...                     bayesdrop.MCDropout(nn.Linear(16, 1), p=0.1))
    >>> model = DropoutModel(net, num_data=64, tau=10.0)
    >>> x = torch.linspace(-1, 1, 64)[:, None]; y = x**2
    >>> svi = SVI(model, model.guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    >>> losses = [svi.step(x, y) for _ in range(100)]
    >>> losses[-1] < losses[0]
    True
    """

    def __init__(
        self,
        net: nn.Module,
        num_data: int,
        likelihood: Likelihood = "gaussian",
        *,
        tau: float = 1.0,
        name: str = "net",
    ) -> None:
        self.net = check_module("net", net)
        kl_divergence(net)  # fails early, naming the fix, if the net has no bayesdrop layer
        self.num_data = int(check_positive("num_data", num_data))
        self.likelihood = check_likelihood(likelihood)
        self.tau = check_positive("tau", tau)
        self.name = name

    def _observation(self, output: Tensor | tuple[Tensor, Tensor]) -> dist.Distribution:
        if self.likelihood == "categorical":
            return dist.Categorical(logits=pyro.deterministic("prediction", output))  # type: ignore[arg-type]
        if self.likelihood == "gaussian":
            mean = pyro.deterministic("prediction", output)  # type: ignore[arg-type]
            return dist.Normal(mean, self.tau**-0.5).to_event(mean.dim() - 1)
        if not (isinstance(output, (tuple, list)) and len(output) == 2):
            fail(
                "net",
                "a network returning (mean, log_variance) for the heteroscedastic likelihood",
                type(output).__name__,
                type_error=True,
            )
        mean = pyro.deterministic("mean", output[0])
        log_var = pyro.deterministic("log_variance", output[1])
        return dist.Normal(mean, torch.exp(0.5 * log_var)).to_event(mean.dim() - 1)

    def __call__(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        x = check_tensor("x", x)
        batch = x.shape[0]
        if y is not None and batch > self.num_data:
            fail("x", f"a minibatch of at most num_data={self.num_data} points", batch)
        pyro.module(self.name, self.net)
        pyro.factor("kl", -kl_divergence(self.net))
        with sampling(self.net):
            output = self.net(x)
        obs_dist = self._observation(output)
        if y is not None and self.likelihood != "categorical":
            shape = obs_dist.batch_shape + obs_dist.event_shape  # type: ignore[attr-defined]
            y = check_tensor("y", y).reshape(shape)
        size = self.num_data if y is not None else batch
        with pyro.plate("data", size, subsample_size=batch):
            return pyro.sample("obs", obs_dist, obs=y)  # type: ignore[arg-type]

    def guide(self, x: Tensor, y: Tensor | None = None) -> None:
        """The empty guide: the variational parameters live in the network."""

    def __repr__(self) -> str:
        return (
            f"DropoutModel(num_data={self.num_data}, likelihood={self.likelihood!r}, "
            f"tau={self.tau:g})"
        )
