"""Switching dropout sampling on and off without touching the rest of the model."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from bayesdrop._validation import check_module
from bayesdrop.nn.base import StochasticModule

__all__ = ["find_functional_dropout", "is_stochastic", "sampling", "stochastic_modules"]

# torch modules that keep their dropout rate as a float and whose `training` flag only switches
# that dropout (and, for attention, disables the inference fast path that would skip it).
_FLOAT_DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.RNNBase,
)


def _float_dropout(module: nn.Module) -> float:
    if isinstance(module, (nn.MultiheadAttention, nn.RNNBase)):
        return float(module.dropout)
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        return float(module.self_attn.dropout)
    return 0.0


def is_stochastic(module: nn.Module) -> bool:
    """Whether ``module`` draws dropout noise when sampling.

    True for bayesdrop's layers, torch's ``_DropoutNd`` family (``Dropout``, ``Dropout1d/2d/3d``,
    ``AlphaDropout``, ``FeatureAlphaDropout``), and the torch modules that keep a dropout rate as
    a float when it is non-zero: ``MultiheadAttention``, ``TransformerEncoderLayer``,
    ``TransformerDecoderLayer`` and ``RNN``/``LSTM``/``GRU`` (dropout between layers).

    Examples
    --------
    >>> is_stochastic(nn.Dropout(0.1)), is_stochastic(nn.Linear(2, 2))
    (True, False)
    """
    if isinstance(module, (StochasticModule, _DropoutNd)):
        return True
    return isinstance(module, _FLOAT_DROPOUT_TYPES) and _float_dropout(module) > 0.0


def stochastic_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every stochastic module in ``model`` (see :func:`is_stochastic`)."""
    return [(name, m) for name, m in model.named_modules() if is_stochastic(m)]


@contextmanager
def sampling(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Make every dropout in ``model`` sample (or, with ``enabled=False``, not sample).

    Inside the block, bayesdrop layers have ``mc = enabled``, and torch's dropout modules (and
    the attention and recurrent modules with a dropout rate, see :func:`is_stochastic`) have
    ``training = enabled``; for those modules PyTorch reads ``training`` only to switch dropout.
    Nothing else changes: BatchNorm stays in eval mode, so MC predictions do not update running
    statistics. Every flag is restored on exit, also when the block raises. This is the way to
    draw Monte-Carlo dropout samples; ``model.train()`` would also switch BatchNorm to batch
    statistics.

    Parameters
    ----------
    model : nn.Module
        Any model.
    enabled : bool, default True
        Sample (True) or force the deterministic path (False).

    Examples
    --------
    >>> import torch
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5)).eval()
    >>> x = torch.randn(8, 4)
    >>> with sampling(model):
    ...     torch.equal(model(x), model(x)), model[1].training
    (False, False)
    >>> model[2].training
    False
    """
    check_module("model", model)
    saved: list[tuple[nn.Module, str, object]] = []
    try:
        for module in model.modules():
            if isinstance(module, StochasticModule):
                saved.append((module, "mc", module.mc))
                module.mc = bool(enabled)
            elif is_stochastic(module):
                saved.append((module, "training", module.training))
                module.training = bool(enabled)
        yield model
    finally:
        for module, attr, value in reversed(saved):
            setattr(module, attr, value)


_FUNCTIONAL_DROPOUT = re.compile(
    r"\b(?:F|functional|nn\.functional|torch)\s*\.\s*"
    r"(?:feature_alpha_|alpha_)?dropout(?:[123]d)?\s*\("
)


def find_functional_dropout(model: nn.Module) -> list[str]:
    """Names of the model's own modules whose ``forward`` calls functional dropout.

    ``F.dropout(x, p, training=self.training)`` cannot be reached by swapping or flagging
    modules, so :func:`sampling`, :func:`bayesdrop.convert` and the predictor warn about it.
    torch's own modules are not inspected. This reads the source code of ``forward``; code whose
    source is unavailable is not detected.

    Examples
    --------
    >>> find_functional_dropout(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)))
    []
    """
    found = []
    seen: dict[type, bool] = {}
    for name, module in model.named_modules():
        cls = type(module)
        if cls.__module__.startswith("torch.") or cls.__module__.startswith("bayesdrop."):
            continue
        if cls not in seen:
            try:
                source = inspect.getsource(cls.forward)
            except (OSError, TypeError):
                source = ""
            seen[cls] = bool(_FUNCTIONAL_DROPOUT.search(source))
        if seen[cls]:
            found.append(name)
    return found
