"""The evidence lower bound of a dropout network."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bayesdrop import functional as BF
from bayesdrop._validation import (
    check_count,
    check_int,
    check_positive,
    check_tensor,
    fail,
)
from bayesdrop._vocabulary import Likelihood, check_likelihood
from bayesdrop.objectives._kl import kl_divergence

__all__ = ["ELBO", "ELBOTerms"]


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

    Half-precision outputs (float16, bfloat16) are computed in float32, as autocast does for
    losses, so the NLL is not inf where float16 cannot hold it.

    Parameters
    ----------
    num_data : int
        :math:`N`, the number of training points: a positive whole number. A float with an
        integral value (``1000.0``, as ``0.8 * len(data)`` can give) is taken as that integer;
        ``0.5`` is an error.
    likelihood : {"categorical", "gaussian", "heteroscedastic"}
        ``"categorical"``: the output are floating logits ``(N, C)``, the target integer class
        indices ``(N,)``.
        ``"gaussian"``: homoscedastic, with precision ``tau``.
        ``"heteroscedastic"``: the output is a pair ``(mean, log_variance)`` of one shape.
        A Gaussian target has the output's shape, or drops (or adds) a trailing dimension of
        size 1 (``(N,)`` for an output ``(N, 1)``); any other shape is an error, never reshaped.
    tau : float, default 1.0
        Model precision of the Gaussian likelihood.
    beta : float, default 1.0
        Weight of the KL term (1 is the ELBO).
    ignore_index : int, default -100
        For ``"categorical"``: rows whose target is ``ignore_index`` are left out of the NLL and
        of its average, as in :func:`torch.nn.functional.cross_entropy` (padding, unlabelled
        tokens). A minibatch whose every row is ignored has no NLL to average: it is an error,
        not the NaN cross-entropy returns.

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
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.num_data = check_count("num_data", num_data)
        self.likelihood = check_likelihood(likelihood)
        self.tau = check_positive("tau", tau)
        self.beta = check_positive("beta", beta, allow_zero=True)
        self.ignore_index = check_int("ignore_index", ignore_index)

    def nll(self, output: Tensor | tuple[Tensor, Tensor], target: Tensor) -> Tensor:
        """Mean negative log-likelihood of a minibatch (ignored rows left out)."""
        target = check_tensor("target", target)
        if self.likelihood == "heteroscedastic":
            if not (isinstance(output, (tuple, list)) and len(output) == 2):
                fail(
                    "output",
                    "a pair (mean, log_variance) for the heteroscedastic likelihood",
                    type(output).__name__,
                    type_error=True,
                )
            mean = _floating("output[0] (mean)", output[0])
            log_var = _floating("output[1] (log_variance)", output[1])
            if log_var.shape != mean.shape:
                fail(
                    "output[1] (log_variance)",
                    f"of the shape of the mean {tuple(mean.shape)}",
                    f"shape {tuple(log_var.shape)}",
                    "Predict one log-variance per output (no broadcasting).",
                )
            target = _gaussian_target(target, mean)
            return BF.heteroscedastic_nll(_wide(mean), _wide(log_var), target).mean()
        output = _floating("output", output)
        if self.likelihood == "gaussian":
            target = _gaussian_target(target, output)
            return BF.gaussian_nll(_wide(output), target, self.tau).mean()
        return self._categorical_nll(output, target)

    def _categorical_nll(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.dim() != 2 or target.shape != logits.shape[:1]:
            fail(
                "output, target",
                "logits (N, C) and class indices (N,)",
                f"{tuple(logits.shape)} and {tuple(target.shape)}",
            )
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            fail(
                "target",
                "integer class indices",
                f"dtype {target.dtype}",
                "Pass labels as integers, e.g. target.long().",
                type_error=True,
            )
        keep = target != self.ignore_index
        num_kept = int(keep.sum())
        if num_kept == 0:
            fail(
                "target",
                f"a minibatch with a row other than ignore_index={self.ignore_index}",
                f"all {target.shape[0]} row(s) ignored",
                "Skip minibatches without a labelled row.",
            )
        kept = target[keep].long()
        lo, hi = (int(v) for v in torch.aminmax(kept))
        num_classes = logits.shape[1]
        if lo < 0 or hi >= num_classes:
            fail(
                "target",
                f"class indices in [0, {num_classes - 1}] or ignore_index={self.ignore_index}",
                f"labels in [{lo}, {hi}]",
            )
        rows = logits if num_kept == target.shape[0] else logits[keep]
        return BF.categorical_nll(_wide(rows), kept).mean()

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
            f"num_data={self.num_data}, likelihood={self.likelihood!r}, tau={self.tau:g}, "
            f"beta={self.beta:g}, ignore_index={self.ignore_index}"
        )


def _wide(value: Tensor) -> Tensor:
    """float16 / bfloat16 in float32 (as autocast computes losses): a cross-entropy of 1.2e5
    or an ``exp(-s)`` of 1e6 is inf in float16. The gradient flows back in the input's dtype."""
    return value.float() if value.dtype in (torch.float16, torch.bfloat16) else value


def _floating(name: str, value: object) -> Tensor:
    value = check_tensor(name, value)
    if not value.is_floating_point():
        fail(
            name,
            "a floating-point tensor",
            f"dtype {value.dtype}",
            "Pass the network's output, e.g. output.float().",
            type_error=True,
        )
    return value


def _gaussian_target(target: Tensor, output: Tensor) -> Tensor:
    """``target`` in ``output``'s shape: equal, or off by a trailing dimension of size 1."""
    shape, want = tuple(target.shape), tuple(output.shape)
    if shape != want and not (
        (want[-1:] == (1,) and shape == want[:-1]) or (shape[-1:] == (1,) and shape[:-1] == want)
    ):
        fail(
            "target",
            f"of the output's shape {want} (or without its trailing 1)",
            f"shape {shape}",
            "Reshape it yourself if the layout really differs; a transpose is not undone.",
        )
    if target.is_complex() or target.dtype == torch.bool:
        fail("target", "real-valued", f"dtype {target.dtype}", type_error=True)
    return target.reshape(want)  # its dtype promotes with the output's
