"""The base class every bayesdrop stochastic layer derives from."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bayesdrop._validation import fail

__all__ = ["StochasticModule", "input_features", "weight_sq_norm"]


class StochasticModule(nn.Module):
    """A layer whose output is random when it samples, deterministic otherwise.

    A layer samples while the module is in training mode, or when its ``mc`` flag is ``True``
    (set by :func:`bayesdrop.sampling`); ``mc=False`` forces the deterministic path even in
    training mode. ``mc=None`` (the default) follows ``self.training``.

    Subclasses implement ``forward`` (reading :attr:`is_sampling`) and :meth:`kl`.
    """

    mc: bool | None

    def __init__(self) -> None:
        super().__init__()
        self.mc = None

    @property
    def is_sampling(self) -> bool:
        """Whether the next forward pass draws a random mask."""
        return self.training if self.mc is None else bool(self.mc)

    def kl(self) -> Tensor:
        """KL divergence of this layer's variational posterior to its prior, in nats."""
        raise NotImplementedError


def input_features(layer: nn.Module) -> int:
    """Number of input features ``K`` a dropout mask on ``layer``'s input acts on."""
    for attr in ("in_features", "in_channels", "input_size"):
        value = getattr(layer, attr, None)
        if isinstance(value, int):
            return value
    weight = getattr(layer, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() >= 2:
        return int(weight.shape[1])
    fail(
        "layer",
        "a module with input features (in_features / in_channels)",
        type(layer).__name__,
        type_error=True,
    )


def check_weighted(layer: nn.Module, who: str) -> nn.Module:
    """Check that ``layer`` is a module with a ``weight`` parameter (to compute its KL)."""
    if not isinstance(layer, nn.Module):
        fail(
            "layer",
            "a torch.nn.Module with a weight",
            type(layer).__name__,
            f"{who} wraps the layer whose input it drops, e.g. {who}(nn.Linear(50, 1), p=0.1).",
            type_error=True,
        )
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, Tensor):
        fail(
            "layer",
            "a module with a `weight` tensor (Linear, ConvNd, ...)",
            f"{type(layer).__name__} without one",
            "Wrap the weighted layer that follows the dropout, not an activation or container.",
            type_error=True,
        )
    return layer


def weight_sq_norm(layer: nn.Module, *, include_bias: bool = False) -> Tensor:
    """:math:`\\lVert W \\rVert^2` of ``layer`` (kernel only unless ``include_bias``)."""
    weight: Tensor = layer.weight  # type: ignore[assignment]
    total = weight.pow(2).sum()
    bias = getattr(layer, "bias", None)
    if include_bias and isinstance(bias, torch.Tensor):
        total = total + bias.pow(2).sum()
    return total
