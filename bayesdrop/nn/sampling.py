"""Switching dropout sampling on and off without touching the rest of the model."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from bayesdrop._validation import check_module, fail
from bayesdrop.nn.base import StochasticModule

__all__ = [
    "drop_rate",
    "find_functional_dropout",
    "is_noise_module",
    "is_stochastic",
    "noise_modules",
    "register_stochastic_module",
    "sampling",
    "stochastic_modules",
]

# torch modules that keep their dropout rate as a float and whose `training` flag only switches
# that dropout (and, for attention, disables the inference fast path that would skip it).
_FLOAT_DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.RNNBase,
)

# Noise modules of other libraries, matched by qualified class name so that none of those
# libraries is imported: (module path, class name) -> attribute holding the drop rate.
_KNOWN_TYPES: dict[tuple[str, str], str] = {
    ("torchvision.ops.stochastic_depth", "StochasticDepth"): "p",
    ("timm.layers.drop", "DropPath"): "drop_prob",
    ("timm.layers.drop", "DropBlock2d"): "drop_prob",
    ("timm.models.layers.drop", "DropPath"): "drop_prob",
}

RateGetter = Callable[[nn.Module], float]
_REGISTRY: dict[type, str | RateGetter | None] = {}


def register_stochastic_module(
    module_type: type[nn.Module], rate: str | RateGetter | None = "p"
) -> type[nn.Module]:
    """Teach :func:`.sampling` a module type whose ``training`` flag switches its noise.

    Inside :func:`.sampling` the ``training`` flag of every module of this type (and of its
    subclasses) is set, exactly as for ``nn.Dropout``; the rest of the model stays in eval
    mode. Register a type only when its ``training`` flag switches nothing but its noise. Can
    be used as a class decorator.

    Parameters
    ----------
    module_type : type
        A subclass of ``nn.Module``.
    rate : str, callable or None, default "p"
        Where the drop rate is read: an attribute name, or a function of the module. A module
        whose rate is 0 is not counted as a noise source (:func:`.is_stochastic` is False, and
        the cached engine computes it once). ``None``: the rate is unknown, always counted.

    Returns
    -------
    type
        ``module_type``, unchanged.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from bayesdrop.nn import is_stochastic, register_stochastic_module
    >>> class Jitter(nn.Module):
    ...     def __init__(self, scale):
    ...         super().__init__()
    ...         self.scale = scale
    ...     def forward(self, x):
    ...         return x + self.scale * torch.randn_like(x) if self.training else x
    >>> _ = register_stochastic_module(Jitter, rate="scale")
    >>> is_stochastic(Jitter(0.1)), is_stochastic(Jitter(0.0))
    (True, False)
    """
    if not isinstance(module_type, type) or not issubclass(module_type, nn.Module):
        fail("module_type", "a subclass of torch.nn.Module", repr(module_type), type_error=True)
    if rate is not None and not isinstance(rate, str) and not callable(rate):
        fail("rate", "an attribute name, a callable or None", repr(rate), type_error=True)
    _REGISTRY[module_type] = rate
    _KIND_CACHE.clear()
    return module_type


def _rate_value(module: nn.Module, getter: str | RateGetter | None) -> float | None:
    if getter is None:
        return None
    value = getter(module) if callable(getter) else getattr(module, getter, None)
    if isinstance(value, nn.Module):  # e.g. `self.attn_drop` is an nn.Dropout
        value = getattr(value, "p", None)
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


_DROP_LINE = re.compile(r"drop", re.IGNORECASE)
_SELF_ATTR = re.compile(r"self\.(\w+)")


def _flag_switched_rates(cls: type) -> tuple[str, ...] | None:
    """Attributes holding the rate when ``cls.forward`` reads ``self.training`` only to pick a
    dropout rate (Hugging Face attention: ``dropout=0.0 if not self.training else
    self.dropout.p``; timm's fused attention), else None."""
    source = forward_source(cls)
    lines = [line for line in source.splitlines() if "self.training" in line]
    if not lines or not all(_DROP_LINE.search(line) for line in lines):
        return None
    names = {n for line in lines for n in _SELF_ATTR.findall(line) if n != "training"}
    return tuple(sorted(n for n in names if _DROP_LINE.search(n)))


_SOURCE_CACHE: dict[type, str] = {}


def forward_source(cls: type) -> str:
    """The source of ``cls.forward`` for classes outside torch and bayesdrop ("" for those, and
    where the source is unavailable); read once per class."""
    source = _SOURCE_CACHE.get(cls)
    if source is None:
        source = ""
        if cls.__module__.split(".")[0] not in ("torch", "bayesdrop"):
            try:
                source = inspect.getsource(cls.forward)  # type: ignore[attr-defined]
            except (OSError, TypeError, AttributeError):
                source = ""
        _SOURCE_CACHE[cls] = source
    return source


_KIND_CACHE: dict[type, tuple[str, object]] = {}


def _kind(module: nn.Module) -> tuple[str, object]:
    """How a module's noise is switched: ("mc" | "training" | "", rate getter)."""
    cls = type(module)
    cached = _KIND_CACHE.get(cls)
    if cached is not None:
        return cached
    kind: tuple[str, object] = ("", None)
    if issubclass(cls, StochasticModule):
        kind = ("mc", "p")
    elif issubclass(cls, _DropoutNd):
        kind = ("training", "p")
    elif issubclass(cls, _FLOAT_DROPOUT_TYPES):
        kind = ("training", _float_dropout)
    else:
        for base in cls.__mro__:
            if base in _REGISTRY:
                kind = ("training", _REGISTRY[base])
                break
            key = (base.__module__, base.__name__)
            if key in _KNOWN_TYPES:
                kind = ("training", _KNOWN_TYPES[key])
                break
        else:
            names = _flag_switched_rates(cls)
            if names is not None:
                kind = ("training", _max_rate(names))
    _KIND_CACHE[cls] = kind
    return kind


def _max_rate(names: tuple[str, ...]) -> RateGetter | None:
    if not names:
        return None

    def rate(module: nn.Module) -> float:
        values = [_rate_value(module, n) for n in names]
        known = [v for v in values if v is not None]
        return max(known) if len(known) == len(values) else float("nan")

    return rate


def _float_dropout(module: nn.Module) -> float:
    if isinstance(module, (nn.MultiheadAttention, nn.RNNBase)):
        return float(module.dropout)
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        return float(module.self_attn.dropout)
    return 0.0


def is_noise_module(module: nn.Module) -> bool:
    """Whether :func:`.sampling` switches ``module`` (whatever its current rate).

    Examples
    --------
    >>> from torch import nn
    >>> from bayesdrop.nn import is_noise_module, is_stochastic
    >>> is_noise_module(nn.Dropout(0.0)), is_stochastic(nn.Dropout(0.0))
    (True, False)
    """
    return bool(_kind(module)[0])


def drop_rate(module: nn.Module) -> float | None:
    """The drop rate of a noise module, ``nan`` when it cannot be read, None for other modules.

    Examples
    --------
    >>> from torch import nn
    >>> from bayesdrop.nn import drop_rate
    >>> drop_rate(nn.Dropout(0.3)), drop_rate(nn.Linear(2, 2))
    (0.3, None)
    """
    switch, getter = _kind(module)
    if not switch:
        return None
    if isinstance(module, StochasticModule):
        value = _rate_value(module, "p")
        return float("nan") if value is None else value
    value = _rate_value(module, getter)  # type: ignore[arg-type]
    return float("nan") if value is None else value


def is_stochastic(module: nn.Module) -> bool:
    """Whether ``module`` draws noise when sampling: a noise module whose rate is not 0.

    Noise modules are bayesdrop's layers; torch's ``_DropoutNd`` family (``Dropout``,
    ``Dropout1d/2d/3d``, ``AlphaDropout``, ``FeatureAlphaDropout``); the torch modules that keep
    a dropout rate as a float (``MultiheadAttention``, ``TransformerEncoderLayer``,
    ``TransformerDecoderLayer``, ``RNN``/``LSTM``/``GRU`` between layers); torchvision's
    ``StochasticDepth`` and timm's ``DropPath`` / ``DropBlock2d`` (recognised by name, without
    importing those libraries); modules of other libraries whose ``forward`` reads
    ``self.training`` only to choose a dropout rate (Hugging Face attention with SDPA or eager
    kernels, timm's fused attention: ``dropout_p=self.attn_drop.p if self.training else 0``);
    and types added with :func:`.register_stochastic_module`. A module whose rate is 0 does not
    count; one whose rate cannot be read does.

    Examples
    --------
    >>> from torch import nn
    >>> from bayesdrop.nn import is_stochastic
    >>> is_stochastic(nn.Dropout(0.1)), is_stochastic(nn.Dropout(0.0))
    (True, False)
    >>> is_stochastic(nn.Linear(2, 2))
    False
    """
    rate = drop_rate(module)
    return rate is not None and not rate == 0.0


def stochastic_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every stochastic module in ``model`` (see :func:`.is_stochastic`)."""
    return [(name, m) for name, m in model.named_modules() if is_stochastic(m)]


def noise_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module :func:`.sampling` switches, whatever its rate."""
    return [(name, m) for name, m in model.named_modules() if is_noise_module(m)]


@contextmanager
def sampling(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Make every dropout in ``model`` sample (or, with ``enabled=False``, not sample).

    Inside the block, bayesdrop layers have ``mc = enabled``, and every other noise module (torch's
    dropout modules, the attention and recurrent modules with a dropout rate, torchvision's
    ``StochasticDepth``, timm's ``DropPath`` and fused attention, Hugging Face attention; see
    :func:`.is_stochastic` and :func:`.register_stochastic_module`) has ``training = enabled``;
    those modules read ``training`` only to switch their noise. Modules whose rate is 0 are
    switched too, so a rate raised inside the block takes effect.
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
    >>> from torch import nn
    >>> from bayesdrop import sampling
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
            switch = _kind(module)[0]
            if switch == "mc":
                saved.append((module, "mc", module.mc))  # type: ignore[attr-defined]
                module.mc = bool(enabled)  # type: ignore[assignment]
            elif switch == "training":
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
    modules, so :func:`.sampling`, :func:`bayesdrop.convert` and the predictor warn about it.
    torch's own modules are not inspected. This reads the source code of ``forward``; code whose
    source is unavailable is not detected.

    Examples
    --------
    >>> from torch import nn
    >>> from bayesdrop.nn import find_functional_dropout
    >>> find_functional_dropout(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)))
    []
    """
    return [
        name
        for name, module in model.named_modules()
        if _FUNCTIONAL_DROPOUT.search(forward_source(type(module)))
    ]
