"""The KL term of a whole model."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bayesdrop._validation import check_module, fail
from bayesdrop.nn._base import StochasticModule

__all__ = ["kl_divergence"]


def kl_divergence(model: nn.Module) -> Tensor:
    r"""Sum of the KL terms of every bayesdrop layer in ``model``.

    .. math::

        \mathrm{KL}(q(\omega) \,\|\, p(\omega)) = \sum_{\text{layers } i} \mathrm{KL}_i

    Parameters
    ----------
    model : nn.Module
        A model containing bayesdrop layers (:class:`bayesdrop.MCDropout`,
        :class:`bayesdrop.ConcreteDropout`, ...).

    Returns
    -------
    Tensor
        A 0-d tensor on the model's device, differentiable in the weights and drop rates.

    Raises
    ------
    ValueError
        If the model has no bayesdrop layer.

    Examples
    --------
    >>> from torch import nn
    >>> import bayesdrop
    >>> from bayesdrop.objectives import kl_divergence
    >>> net = nn.Sequential(bayesdrop.MCDropout(nn.Linear(2, 1), p=0.5, length_scale=1.0))
    >>> _ = nn.init.ones_(net[0].layer.weight)
    >>> round(kl_divergence(net).item(), 6)  # 0.25 * 2 - 2 log 2
    -0.886294
    """
    check_module("model", model)
    terms = [m.kl() for m in model.modules() if isinstance(m, StochasticModule)]
    if not terms:
        fail(
            "model",
            "a model with at least one bayesdrop layer",
            "none",
            "Wrap weighted layers, e.g. bayesdrop.MCDropout(nn.Linear(50, 1), p=0.1), or "
            "bayesdrop.convert(model, to='concrete') to replace torch dropout modules.",
        )
    # Weightless layers (a bare MCDropout) return a CPU zero; the sum lives with the weights.
    param = next(model.parameters(), None)
    device = param.device if param is not None else terms[0].device
    return sum((term.to(device) for term in terms), torch.zeros((), device=device))
