r"""KL terms of dropout posteriors and the constants that tie them to weight decay.

Gal & Ghahramani (2016) give, for one weight matrix :math:`W = M\,\mathrm{diag}(z)`,
:math:`z_j \sim \mathrm{Bernoulli}(1-p)`, and the prior :math:`\mathcal N(0, l^{-2} I)`,

.. math::

    \mathrm{KL}(q \,\|\, p) \approx \frac{l^2 (1-p)}{2} \lVert M \rVert^2 - K\,\mathcal H(p),
    \qquad \mathcal H(p) = -p \log p - (1-p) \log(1-p),

with :math:`K` the number of input features of the layer. The ELBO per data point is
:math:`\frac1N \sum_n -\log p(y_n \mid x_n) + \mathrm{KL}/N`.

Two conventions for the weight term exist in the authors' reference code, and bayesdrop keeps
both, each where its authors used it:

* MC dropout (``mc_dropout_kl``) applies :math:`\frac{l^2(1-p)}{2}\lVert W \rVert^2` to the
  inverted-dropout weights :math:`W` directly (the DropoutUncertaintyExps code: weight decay
  :math:`\lambda = (1-p) l^2 / (2 N \tau)`).
* Concrete dropout (``concrete_dropout_kl``) uses :math:`M = W / (1-p)` for inverted dropout,
  giving :math:`\frac{l^2}{2(1-p)}\lVert W \rVert^2`; it is this dependence on :math:`p` that
  pushes the learned rate down as data grows. Its reference regulariser is the KL scaled by the
  likelihood's factor (see :func:`regularizer_constants`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bayesdrop._validation import check_positive, fail
from bayesdrop._vocabulary import Likelihood, check_likelihood

__all__ = [
    "RegularizerConstants",
    "bernoulli_entropy",
    "concrete_dropout_kl",
    "concrete_regularization",
    "mc_dropout_kl",
    "regularizer_constants",
]


def bernoulli_entropy(p: Tensor | float) -> Tensor:
    r"""Entropy :math:`\mathcal H(p) = -p\log p - (1-p)\log(1-p)` in nats, with :math:`0\log 0 = 0`.

    Examples
    --------
    >>> from bayesdrop.functional import bernoulli_entropy
    >>> round(bernoulli_entropy(0.5).item(), 6)  # log 2
    0.693147
    >>> bernoulli_entropy(0.0).item() == 0.0  # 0 log 0 = 0 (the float may print as -0.0)
    True
    """
    p = torch.as_tensor(p, dtype=torch.get_default_dtype() if not torch.is_tensor(p) else None)
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1.0 - p, 1.0 - p))


def mc_dropout_kl(
    weight_sq_norm: Tensor, p: float | Tensor, num_inputs: int, length_scale: float
) -> Tensor:
    r"""KL of a Bernoulli-dropout layer to the Gaussian prior (Gal & Ghahramani, 2016).

    .. math::

        \mathrm{KL} = \frac{l^2 (1-p)}{2} \lVert W \rVert^2 - K\,\mathcal H(p)

    Parameters
    ----------
    weight_sq_norm : Tensor
        :math:`\lVert W \rVert^2` of the layer whose inputs are dropped.
    p : float or Tensor
        Drop probability.
    num_inputs : int
        :math:`K`, the number of input features the mask acts on.
    length_scale : float
        Prior length-scale :math:`l` (prior precision :math:`l^2`).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import mc_dropout_kl
    >>> kl = mc_dropout_kl(torch.tensor(4.0), 0.5, num_inputs=2, length_scale=1.0)
    >>> round(kl.item(), 6)  # 0.25 * 4 - 2 log 2
    -0.386294
    """
    p_t = torch.as_tensor(p, dtype=weight_sq_norm.dtype, device=weight_sq_norm.device)
    weight_term = 0.5 * length_scale**2 * (1.0 - p_t) * weight_sq_norm
    return weight_term - num_inputs * bernoulli_entropy(p_t)


def concrete_dropout_kl(
    weight_sq_norm: Tensor, p: Tensor, num_inputs: int, length_scale: float
) -> Tensor:
    r"""KL of a Concrete-dropout layer whose weights :math:`W` are inverted-dropout weights.

    .. math::

        \mathrm{KL} = \frac{l^2}{2(1-p)} \lVert W \rVert^2 - K\,\mathcal H(p)

    (the paper's :math:`\frac{l^2(1-p)}{2}\lVert M\rVert^2` with :math:`M = W/(1-p)`).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import concrete_dropout_kl
    >>> kl = concrete_dropout_kl(torch.tensor(4.0), torch.tensor(0.5), 2, length_scale=1.0)
    >>> round(kl.item(), 6)  # 4 / (2 * 0.5) - 2 log 2
    2.613706
    """
    return 0.5 * length_scale**2 * weight_sq_norm / (1.0 - p) - num_inputs * bernoulli_entropy(p)


def concrete_regularization(
    weight_sq_norm: Tensor,
    p: Tensor,
    num_inputs: int,
    weight_regularizer: float | Tensor,
    dropout_regularizer: float | Tensor,
) -> Tensor:
    r"""The Concrete Dropout regulariser exactly as the reference code adds it to the loss.

    .. math::

        R = \lambda_w \frac{\lVert W \rVert^2}{1 - p}
            + \lambda_p K \left(p \log p + (1 - p) \log(1 - p)\right)

    The entropy term enters with this sign: minimising :math:`R` pulls :math:`p` toward 1/2,
    while the weight term pulls it toward 0.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import concrete_regularization
    >>> r = concrete_regularization(torch.tensor(4.0), torch.tensor(0.5), 2, 1e-2, 1e-1)
    >>> round(r.item(), 6)  # 1e-2 * 8 - 1e-1 * 2 log 2
    -0.058629
    """
    return weight_regularizer * weight_sq_norm / (1.0 - p) - dropout_regularizer * num_inputs * (
        bernoulli_entropy(p)
    )


@dataclass(frozen=True)
class RegularizerConstants:
    """Weight and dropout regularisers of Concrete Dropout for a given prior and data size.

    Attributes
    ----------
    weight_regularizer : float
        :math:`\\lambda_w`, multiplies :math:`\\lVert W \\rVert^2 / (1-p)`.
    dropout_regularizer : float
        :math:`\\lambda_p`, multiplies :math:`K (p\\log p + (1-p)\\log(1-p))`.
    """

    weight_regularizer: float
    dropout_regularizer: float


def regularizer_constants(
    length_scale: float,
    num_data: int,
    *,
    tau: float = 1.0,
    likelihood: Likelihood = "gaussian",
) -> RegularizerConstants:
    r"""Concrete Dropout's regularisers from the prior length-scale and the data-set size.

    The reference loss is the ELBO per point multiplied by a likelihood-dependent factor
    :math:`s` (so that its data term is the plain MSE or cross-entropy), and
    :math:`\lambda_w = s\,l^2/2`, :math:`\lambda_p = s`:

    =================  ===================  ======================  ======================
    likelihood         data term            :math:`\lambda_w`       :math:`\lambda_p`
    =================  ===================  ======================  ======================
    ``"gaussian"``     mean squared error   :math:`l^2 / (\tau N)`  :math:`2 / (\tau N)`
    ``"categorical"``  mean cross-entropy   :math:`l^2 / (2N)`      :math:`1 / N`
    =================  ===================  ======================  ======================

    ``"heteroscedastic"`` (the loss :math:`e^{-s}(y-\mu)^2 + s`, twice the Gaussian NLL) is
    ``"gaussian"`` with ``tau=1``; a ``tau`` other than 1 is refused for it (the network
    predicts its own noise).

    Examples
    --------
    >>> from bayesdrop.functional import regularizer_constants
    >>> c = regularizer_constants(1e-4, 100)
    >>> c.weight_regularizer, c.dropout_regularizer
    (1e-10, 0.02)
    >>> regularizer_constants(1e-2, 1000, likelihood="categorical").dropout_regularizer
    0.001
    """
    length_scale = check_positive("length_scale", length_scale)
    n = check_positive("num_data", num_data)
    tau = check_positive("tau", tau)
    check_likelihood(likelihood)
    if likelihood == "heteroscedastic":
        if tau != 1.0:
            fail("tau", "1 for likelihood='heteroscedastic' (the network predicts its noise)", tau)
        likelihood = "gaussian"
    scale = 2.0 / (tau * n) if likelihood == "gaussian" else 1.0 / n
    return RegularizerConstants(
        weight_regularizer=scale * length_scale**2 / 2.0, dropout_regularizer=scale
    )
