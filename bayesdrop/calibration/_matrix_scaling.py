r"""Vector scaling and Dirichlet calibration (Kull et al., 2019): the matrix relatives of
temperature scaling, with its ``fit(x, target)`` / ``transform(x)`` interface.

With logits :math:`z` (or log-probabilities :math:`\log p`):

.. math::

    \text{vector scaling:}\quad \hat p = \mathrm{softmax}(a \odot z + b), \qquad
    \text{Dirichlet:}\quad \hat p = \mathrm{softmax}(W \log p + b),

both fitted by the mean negative log-likelihood with L-BFGS from the identity
(:math:`a = 1`, :math:`W = I`, :math:`b = 0`). Dirichlet calibration is regularised with Kull et
al.'s ODIR (off-diagonal and intercept regularisation),

.. math::

    \mathcal L = -\frac1N\sum_i \log \hat p_{y_i}(x_i)
        + \frac{\lambda}{C(C - 1)} \sum_{i \ne j} W_{ij}^2 + \frac{\mu}{C} \sum_j b_j^2,

which leaves the diagonal (a per-class temperature) free and shrinks the rest toward vector
scaling. The paper picks :math:`\lambda, \mu` by cross-validation; the defaults here
(``reg_lambda=1e-3``, ``reg_mu=1e-3``) are a light fixed choice.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bayesdrop._validation import check_positive, fail
from bayesdrop.calibration._inputs import check_target
from bayesdrop.calibration._recalibration import TemperatureInputs, TemperatureScaling

__all__ = ["DirichletCalibration", "VectorScaling"]


class _MatrixScaling:
    """Shared fit/transform: ``softmax(linear(logits))`` fitted by penalised NLL."""

    def __init__(self, *, inputs: TemperatureInputs, max_iter: int) -> None:
        # TemperatureScaling's input checks, not a copy of them
        self._reader = TemperatureScaling(inputs=inputs, max_iter=max_iter)
        self.inputs = self._reader.inputs
        self.max_iter = self._reader.max_iter
        self.weight_: Tensor | None = None
        self.bias_: Tensor | None = None

    def _logits(self, x: Any) -> Tensor:
        return self._reader._logits(x).double()

    def _init(self, num_classes: int, like: Tensor) -> Tensor:
        raise NotImplementedError

    def _apply(self, logits: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        raise NotImplementedError

    def _penalty(self, weight: Tensor, bias: Tensor) -> Tensor:
        return weight.new_zeros(())

    def fit(self, x: Any, target: Any):
        """Fit on ``x (N, C)`` (as declared by ``inputs``) and integer ``target (N,)``;
        returns ``self``."""
        logits = self._logits(x).detach()
        target = check_target(target, logits.shape[0], logits.shape[1]).to(logits.device)
        weight = self._init(logits.shape[1], logits).requires_grad_(True)
        bias = logits.new_zeros(logits.shape[1]).requires_grad_(True)
        opt = torch.optim.LBFGS(
            [weight, bias], lr=1.0, max_iter=self.max_iter, line_search_fn="strong_wolfe"
        )

        def closure() -> Tensor:
            opt.zero_grad()
            out = self._apply(logits, weight, bias)
            loss = torch.nn.functional.cross_entropy(out, target) + self._penalty(weight, bias)
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        if not (bool(torch.isfinite(weight).all()) and bool(torch.isfinite(bias).all())):
            fail("x", "data the fit converges on", "a non-finite fitted parameter")
        self.weight_, self.bias_ = weight.detach(), bias.detach()
        return self

    def transform(self, x: Any) -> Tensor:
        """Calibrated probabilities ``(N, C)`` of ``x`` (float64)."""
        if self.weight_ is None or self.bias_ is None:
            fail("self", "fitted", f"an unfitted {type(self).__name__}", "Call fit first.")
        logits = self._logits(x)
        if logits.shape[1] != self.bias_.shape[0]:
            fail("x", f"{self.bias_.shape[0]} classes as in fit", f"{logits.shape[1]} classes")
        weight, bias = self.weight_.to(logits.device), self.bias_.to(logits.device)
        return self._apply(logits, weight, bias).softmax(-1)

    def fit_transform(self, x: Any, target: Any) -> Tensor:
        """``fit(x, target).transform(x)``."""
        return self.fit(x, target).transform(x)


class VectorScaling(_MatrixScaling):
    r"""Vector scaling (Guo et al. 2017; Kull et al. 2019): :math:`\mathrm{softmax}(a \odot z +
    b)`, a temperature and an offset per class.

    .. math::

        \hat p(x) = \mathrm{softmax}(a \odot z(x) + b), \qquad
        (a, b) = \arg\min_{a, b} -\frac1N \sum_i \log \hat p_{y_i}(x_i),

    fitted with L-BFGS from :math:`a = 1, b = 0` (temperature scaling is :math:`a = 1/T`,
    :math:`b = 0`).

    Parameters
    ----------
    inputs : {"logits", "probs", "log_probs"}, default "logits"
        As in :class:`TemperatureScaling` (probabilities become :math:`z = \log p`).
    max_iter : int, default 200
        L-BFGS iterations.

    Attributes
    ----------
    weight_ : Tensor (C,)
        :math:`a`.
    bias_ : Tensor (C,)
        :math:`b`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import VectorScaling
    >>> _ = torch.manual_seed(0)
    >>> true_logits = 3 * torch.randn(4000, 3)
    >>> target = torch.distributions.Categorical(logits=true_logits).sample()
    >>> vs = VectorScaling().fit(2 * true_logits + torch.tensor([1.0, 0, 0]), target)
    >>> [round(v, 1) for v in vs.weight_.tolist()]  # a = 1/2 undoes the factor 2
    [0.5, 0.5, 0.5]
    """

    def __init__(self, *, inputs: TemperatureInputs = "logits", max_iter: int = 200) -> None:
        super().__init__(inputs=inputs, max_iter=max_iter)

    def _init(self, num_classes: int, like: Tensor) -> Tensor:
        return like.new_ones(num_classes)

    def _apply(self, logits: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return logits * weight + bias


class DirichletCalibration(_MatrixScaling):
    r"""Dirichlet calibration (Kull et al., 2019): :math:`\mathrm{softmax}(W \log p + b)` with
    ODIR regularisation (module docstring).

    .. math::

        \hat p = \mathrm{softmax}(W \log p + b), \qquad
        \mathcal L = -\frac1N\sum_i \log \hat p_{y_i}
            + \frac{\lambda}{C(C - 1)} \sum_{i \ne j} W_{ij}^2 + \frac{\mu}{C} \sum_j b_j^2,

    minimised with L-BFGS from :math:`W = I, b = 0`.

    Parameters
    ----------
    inputs : {"probs", "log_probs", "logits"}, default "probs"
        What ``fit`` and ``transform`` receive (``mc_predict(...).probs`` by default; logits are
        log-probabilities up to a constant per row, which the softmax ignores).
    reg_lambda : float, default 1e-3
        :math:`\lambda`, the weight on the squared off-diagonal entries of :math:`W`.
    reg_mu : float, default 1e-3
        :math:`\mu`, the weight on the squared intercepts.
    max_iter : int, default 200

    Attributes
    ----------
    weight_ : Tensor (C, C)
        :math:`W` (row :math:`i` gives the calibrated logit of class :math:`i`).
    bias_ : Tensor (C,)

    References
    ----------
    Kull, Perelló-Nieto, Kängsepp, Silva Filho, Song & Flach, "Beyond temperature scaling:
    obtaining well-calibrated multiclass probabilities with Dirichlet calibration",
    NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import DirichletCalibration, negative_log_likelihood
    >>> _ = torch.manual_seed(0)
    >>> true_logits = 2 * torch.randn(4000, 4)
    >>> target = torch.distributions.Categorical(logits=true_logits).sample()
    >>> bad = (3 * true_logits).softmax(-1)  # over-confident
    >>> fixed = DirichletCalibration().fit_transform(bad, target)
    >>> bool(negative_log_likelihood(fixed, target) < negative_log_likelihood(bad, target))
    True
    """

    def __init__(
        self,
        *,
        inputs: TemperatureInputs = "probs",
        reg_lambda: float = 1e-3,
        reg_mu: float = 1e-3,
        max_iter: int = 200,
    ) -> None:
        super().__init__(inputs=inputs, max_iter=max_iter)
        self.reg_lambda = check_positive("reg_lambda", reg_lambda, allow_zero=True)
        self.reg_mu = check_positive("reg_mu", reg_mu, allow_zero=True)

    def _init(self, num_classes: int, like: Tensor) -> Tensor:
        return torch.eye(num_classes, dtype=like.dtype, device=like.device)

    def _apply(self, logits: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return logits @ weight.T + bias

    def _penalty(self, weight: Tensor, bias: Tensor) -> Tensor:
        c = weight.shape[0]
        off = weight - torch.diag_embed(weight.diagonal())
        return (
            self.reg_lambda * off.pow(2).sum() / (c * (c - 1)) + self.reg_mu * bias.pow(2).sum() / c
        )
