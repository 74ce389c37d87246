"""Switching dropout sampling on and off without touching the rest of the model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from bayesdrop._validation import check_choice, check_module, fail
from bayesdrop.nn._base import StochasticModule
from bayesdrop.nn._noise_calls import functional_noise, functional_noise_paused
from bayesdrop.nn._source import (
    _flag_switched_rates,
    find_functional_dropout,
    training_lines,
)

__all__ = [
    "drop_rate",
    "find_functional_dropout",
    "is_noise_module",
    "is_stochastic",
    "noise_modules",
    "noise_scope",
    "refuse_scripted",
    "register_stochastic_module",
    "sampling",
    "stochastic_modules",
    "training_lines",
]

# torch modules that keep their dropout rate as a float and whose `training` flag only switches
# that dropout (and, for attention, disables the inference fast path that would skip it).
_FLOAT_DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.RNNBase,
)

RateGetter = Callable[[nn.Module], float]
ScopeGetter = Callable[[nn.Module], str]
#: How a noise module draws: per element or row of the batch ("row": the samples of a repeated
#: batch are independent), once per call ("call": every sample needs a call of its own), or
#: coupled across the batch ("batch": every sample needs a call on the batch as given).
SCOPES = ("row", "call", "batch")


def _stochastic_depth_scope(module: nn.Module) -> str:
    return "call" if getattr(module, "mode", "row") == "batch" else "row"


def _rrelu_rate(module: nn.Module) -> float:
    return float(module.upper != module.lower)  # type: ignore[operator]


# Noise modules of other libraries, matched by qualified class name so that none of those
# libraries is imported: (module path, class name) -> (attribute holding the drop rate, scope).
# timm's DropBlock2d rescales its mask by the kept fraction of the whole batch.
_KNOWN_TYPES: dict[tuple[str, str], tuple[str, str | ScopeGetter]] = {
    ("torchvision.ops.stochastic_depth", "StochasticDepth"): ("p", _stochastic_depth_scope),
    ("timm.layers.drop", "DropPath"): ("drop_prob", "row"),
    ("timm.layers.drop", "DropBlock2d"): ("drop_prob", "batch"),
    ("timm.models.layers.drop", "DropPath"): ("drop_prob", "row"),
    ("timm.models.layers.drop", "DropBlock2d"): ("drop_prob", "batch"),
}

_REGISTRY: dict[type, tuple[str | RateGetter | None, str | ScopeGetter]] = {}


def register_stochastic_module(
    module_type: type[nn.Module],
    rate: str | RateGetter | None = "p",
    *,
    scope: str | ScopeGetter = "row",
) -> type[nn.Module]:
    """Teach :func:`.sampling` a module type whose ``training`` flag switches its noise.

    Inside :func:`.sampling` the ``training`` flag of every module of this type (and of its
    subclasses) is set, exactly as for ``nn.Dropout``; the rest of the model stays in eval
    mode. Register a type only when its ``training`` flag switches nothing but its noise. Can
    be used as a class decorator.

    The ``scope`` says how the module draws its noise, which decides how the predictor may
    batch Monte-Carlo samples (:func:`bayesdrop.mc_predict` repeats the batch ``k`` times in
    one pass):

    ``"row"``
        Independently per element or per row of the batch (``nn.Dropout``, ``DropPath``):
        the ``k`` repeats of a batch are ``k`` independent samples.
    ``"call"``
        Once per call (LayerDrop, ``StochasticDepth(mode="batch")``, dropout on a weight):
        the repeats of one pass would share the draw, so every sample gets a pass of its own.
    ``"batch"``
        Coupled across the batch (timm's ``DropBlock2d`` normalises its mask over the whole
        batch): every sample gets a pass of its own on the batch as given.

    Parameters
    ----------
    module_type : type
        A subclass of ``nn.Module``.
    rate : str, callable or None, default "p"
        Where the drop rate is read: an attribute name, or a function of the module. A module
        whose rate is 0 is not counted as a noise source (:func:`.is_stochastic` is False, and
        the cached engine computes it once). ``None``: the rate is unknown, always counted.
    scope : {"row", "call", "batch"} or callable, default "row"
        How the noise is drawn (above), or a function of the module that returns one of them.

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

    A noise drawn once per call (one shift for the whole batch):

    >>> from bayesdrop.nn import noise_scope
    >>> class Shift(Jitter):
    ...     def forward(self, x):
    ...         return x + self.scale * torch.randn(()) if self.training else x
    >>> _ = register_stochastic_module(Shift, rate="scale", scope="call")
    >>> noise_scope(Shift(0.1)), noise_scope(Jitter(0.1))
    ('call', 'row')
    """
    if not isinstance(module_type, type) or not issubclass(module_type, nn.Module):
        fail("module_type", "a subclass of torch.nn.Module", repr(module_type), type_error=True)
    if rate is not None and not isinstance(rate, str) and not callable(rate):
        fail("rate", "an attribute name, a callable or None", repr(rate), type_error=True)
    if isinstance(scope, str):
        check_choice("scope", scope, SCOPES)
    elif not callable(scope):
        fail("scope", f"one of {SCOPES} or a callable", repr(scope), type_error=True)
    _REGISTRY[module_type] = (rate, scope)
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


_KIND_CACHE: dict[type, tuple[str, object, object]] = {}


def _kind(module: nn.Module) -> tuple[str, object, object]:
    """How a module's noise is switched: ("mc" | "training" | "", rate getter, scope)."""
    return _kind_of_class(type(module))


def _kind_of_class(cls: type) -> tuple[str, object, object]:
    cached = _KIND_CACHE.get(cls)
    if cached is not None:
        return cached
    kind: tuple[str, object, object] = ("", None, "row")
    registered = next((_REGISTRY[b] for b in cls.__mro__ if b in _REGISTRY), None)
    if registered is not None:
        kind = ("mc" if issubclass(cls, StochasticModule) else "training", *registered)
    elif issubclass(cls, StochasticModule):
        kind = ("mc", "p", getattr(cls, "noise_scope", "row"))
    elif issubclass(cls, _DropoutNd):
        kind = ("training", "p", "row")
    elif issubclass(cls, _FLOAT_DROPOUT_TYPES):
        kind = ("training", _float_dropout, "row")
    elif issubclass(cls, nn.RReLU):
        kind = ("training", _rrelu_rate, "row")
    else:
        for base in cls.__mro__:
            key = (base.__module__, base.__name__)
            if key in _KNOWN_TYPES:
                kind = ("training", *_KNOWN_TYPES[key])
                break
        else:
            names = _flag_switched_rates(cls)
            if names is not None:
                kind = ("training", _max_rate(names), "row")
    _KIND_CACHE[cls] = kind
    return kind


def noise_scope(module: nn.Module) -> str | None:
    """How a noise module draws: ``"row"``, ``"call"`` or ``"batch"`` (None for other modules).

    See :func:`.register_stochastic_module` for what each means for the predictor.

    Examples
    --------
    >>> from torch import nn
    >>> from bayesdrop.nn import noise_scope
    >>> noise_scope(nn.Dropout(0.1)), noise_scope(nn.Linear(2, 2))
    ('row', None)
    """
    switch, _rate, scope = _kind(module)
    if not switch:
        return None
    value = scope(module) if callable(scope) else scope
    if value not in SCOPES:
        fail("scope", f"one of {SCOPES} for {type(module).__name__}", repr(value))
    return str(value)


def scope_is_built_in(cls: type) -> bool:
    """Whether modules of class ``cls`` are noise modules whose scope is known by
    construction: torch's and bayesdrop's noise modules, or one of the other libraries' known
    types, running their own ``forward`` (not a user's subclass that overrides it, nor a
    registered type, whose declared scope the predictor's first-call check still confirms)."""
    if cls in _REGISTRY or not _kind_of_class(cls)[0]:
        return False
    if (cls.__module__, cls.__name__) in _KNOWN_TYPES:
        return True
    owner = getattr(cls.forward, "__module__", "") or ""  # type: ignore[attr-defined]
    return owner.split(".")[0] in ("torch", "bayesdrop")


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
    switch, getter, _scope = _kind(module)
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
    dropout modules, the attention and recurrent modules with a dropout rate, ``nn.RReLU``,
    torchvision's ``StochasticDepth``, timm's ``DropPath`` and fused attention, Hugging Face
    attention; see :func:`.is_stochastic` and :func:`.register_stochastic_module`) has
    ``training = enabled``; those modules read ``training`` only to switch their noise. Modules
    whose rate is 0 are switched too, so a rate raised inside the block takes effect.

    With ``enabled=True`` the block also runs the dropout-family *functions* as in training,
    wherever they are called (``F.dropout``, ``F.dropout1d/2d/3d``, ``F.alpha_dropout``,
    ``F.feature_alpha_dropout``, ``F.rrelu``: timm's ``drop_rate`` in ``forward_head``,
    torchvision's shifted-window attention, a helper method of your own model). This is a
    ``TorchFunctionMode``: it applies to every such call made in the block, by whichever model,
    including calls that pass ``training=False`` literally.
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
    refuse_scripted(model)
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
        with functional_noise() if enabled else functional_noise_paused():
            yield model
    finally:
        for module, attr, value in reversed(saved):
            setattr(module, attr, value)


def refuse_scripted(model: nn.Module, name: str = "model") -> None:
    """TorchScript compiles its dropout calls: nothing can switch them on from outside."""
    if isinstance(model, torch.jit.ScriptModule):
        fail(
            name,
            "an eager nn.Module",
            f"a TorchScript module ({type(model).__name__} of {model.original_name})",
            "TorchScript compiles the model's dropout calls, so bayesdrop cannot make them "
            "sample (nor check that they do). Pass the eager module (the one given to "
            "torch.jit.script or torch.jit.trace).",
            type_error=True,
        )
