"""The evidence lower bound of a dropout network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from bayesdrop import functional as BF
from bayesdrop._validation import check_choice, check_positive, check_tensor, fail
from bayesdrop.objectives.kl import kl_divergence

__all__ = ["ELBO", "ELBOTerms"]

Likelihood = Literal["categorical", "gaussian", "heteroscedastic"]


@dataclass(frozen=True)
class ELBOTerms:
    """The terms of the negative ELBO per data point.

    Attributes
    ----------
    nll : Tensor
        Mean negative log-likelihood of the minibatch.
    kl : Tensor
        Total KL of the model's dropout posteriors (not divided by ``num_data``).
    loss : Tensor
        ``nll + beta * kl / num_data``, the quantity to minimise.
    """

    nll: Tensor
    kl: Tensor
    loss: Tensor


class ELBO(nn.Module):
    r"""Negative ELBO per data point for a network with bayesdrop layers.

    .. math::

        \mathcal L = \frac{1}{|B|} \sum_{n \in B} -\log p(y_n \mid x_n, \hat\omega)
                     + \beta\, \frac{\mathrm{KL}(q(\omega)\,\|\,p(\omega))}{N}

    on a minibatch :math:`B` drawn from :math:`N` points. This is the full-data negative ELBO
    divided by :math:`N`, so learning rates do not depend on the data-set size. The NLL includes
    its constants (so ``loss`` is a bound on :math:`-\frac1N \log p(\mathcal D)`).

    Parameters
    ----------
    num_data : int
        :math:`N`, the number of training points.
    likelihood : {"categorical", "gaussian", "heteroscedastic"}
        ``"categorical"``: the output are logits ``(N, C)``, the target class indices.
        ``"gaussian"``: homoscedastic, with precision ``tau``.
        ``"heteroscedastic"``: the output is a pair ``(mean, log_variance)``.
    tau : float, default 1.0
        Model precision of the Gaussian likelihood.
    beta : float, default 1.0
        Weight of the KL term (1 is the ELBO).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> from bayesdrop.objectives import ELBO
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(bayesdrop.ConcreteDropout(nn.Linear(3, 4)))
    >>> elbo = ELBO(num_data=100, likelihood="categorical")
    >>> terms = elbo(net(torch.randn(8, 3)), torch.randint(0, 4, (8,)), net)
    >>> torch.allclose(terms.loss, terms.nll + terms.kl / 100)
    True
    """

    def __init__(
        self,
        num_data: int,
        likelihood: Likelihood = "categorical",
        *,
        tau: float = 1.0,
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_data = check_positive("num_data", num_data)
        self.likelihood = check_choice(
            "likelihood", likelihood, ("categorical", "gaussian", "heteroscedastic")
        )
        self.tau = check_positive("tau", tau)
        self.beta = check_positive("beta", beta, allow_zero=True)

    def nll(self, output: Tensor | tuple[Tensor, Tensor], target: Tensor) -> Tensor:
        """Mean negative log-likelihood of a minibatch."""
        target = check_tensor("target", target)
        if self.likelihood == "heteroscedastic":
            if not (isinstance(output, (tuple, list)) and len(output) == 2):
                fail(
                    "output",
                    "a pair (mean, log_variance) for the heteroscedastic likelihood",
                    type(output).__name__,
                    type_error=True,
                )
            mean, log_var = output
            per_point = BF.heteroscedastic_nll(mean, log_var, target.reshape(mean.shape))
        else:
            output = check_tensor("output", output)
            if self.likelihood == "categorical":
                if output.dim() != 2 or target.shape != output.shape[:1]:
                    fail(
                        "output, target",
                        "logits (N, C) and class indices (N,)",
                        f"{tuple(output.shape)} and {tuple(target.shape)}",
                    )
                per_point = BF.categorical_nll(output, target)
            else:
                if target.numel() != output.numel():
                    fail(
                        "target",
                        f"as many values as output {tuple(output.shape)}",
                        tuple(target.shape),
                    )
                per_point = BF.gaussian_nll(output, target.reshape(output.shape), self.tau)
        return per_point.mean()

    def forward(
        self,
        output: Tensor | tuple[Tensor, Tensor],
        target: Tensor,
        model: nn.Module,
    ) -> ELBOTerms:
        nll = self.nll(output, target)
        kl = kl_divergence(model).to(nll.device, nll.dtype)
        return ELBOTerms(nll=nll, kl=kl, loss=nll + self.beta * kl / self.num_data)

    def extra_repr(self) -> str:
        return (
            f"num_data={self.num_data:g}, likelihood={self.likelihood!r}, tau={self.tau:g}, "
            f"beta={self.beta:g}"
        )
