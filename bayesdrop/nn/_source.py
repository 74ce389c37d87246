"""Reading a module class's source: which lines of ``forward`` read ``self.training`` (a
dropout rate picked by the flag, Hugging Face's attention), and which classes call functional
dropout in any method. Used by :mod:`bayesdrop.nn._sampling` to find noise that no module type
declares."""

from __future__ import annotations

import inspect
import re

from torch import nn

__all__ = ["class_source", "find_functional_dropout", "forward_source", "training_lines"]

_DROP_LINE = re.compile(r"drop", re.IGNORECASE)
_SELF_ATTR = re.compile(r"self\.(\w+)")
# lines that read self.training for gradient checkpointing (T5's attention): no noise
_CHECKPOINTING = re.compile(r"gradient_checkpointing|checkpoint")


def _flag_switched_rates(cls: type) -> tuple[str, ...] | None:
    """Attributes holding the rate when ``cls.forward`` reads ``self.training`` only to pick a
    dropout rate (Hugging Face attention: ``dropout=0.0 if not self.training else
    self.dropout.p``; timm's fused attention), else None. Lines that read it for gradient
    checkpointing as well (T5's attention) do not count: switching that flag under
    ``torch.no_grad()`` changes nothing else."""
    lines = training_lines(cls)
    if not lines or not all(_DROP_LINE.search(line) for line in lines):
        return None
    names = {n for line in lines for n in _SELF_ATTR.findall(line) if n != "training"}
    return tuple(sorted(n for n in names if _DROP_LINE.search(n)))


def training_lines(cls: type) -> list[str]:
    """The lines of ``cls.forward`` that read ``self.training``, except those that read it for
    gradient checkpointing (no noise)."""
    return [
        line
        for line in forward_source(cls).splitlines()
        if "self.training" in line and not _CHECKPOINTING.search(line)
    ]


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


_FUNCTIONAL_DROPOUT = re.compile(
    r"\b(?:F|functional|nn\.functional|torch)\s*\.\s*"
    r"(?:(?:feature_alpha_|alpha_)?dropout(?:[123]d)?|rrelu_?)\s*\("
)
_CLASS_SOURCE: dict[type, str] = {}


def class_source(cls: type) -> str:
    """The source of ``cls`` (all its methods) for classes outside torch and bayesdrop; read once
    per class ("" where unavailable)."""
    source = _CLASS_SOURCE.get(cls)
    if source is None:
        source = ""
        if cls.__module__.split(".")[0] not in ("torch", "bayesdrop"):
            try:
                source = inspect.getsource(cls)
            except (OSError, TypeError):
                source = ""
        _CLASS_SOURCE[cls] = source
    return source


def find_functional_dropout(model: nn.Module) -> list[str]:
    """Names of the model's own modules whose methods call functional dropout.

    ``F.dropout(x, p, training=self.training)`` in ``forward`` or in a helper method (timm
    applies ``drop_rate`` in ``forward_head``) cannot be reached by flagging modules:
    :func:`.sampling` runs such calls as in training (a ``TorchFunctionMode``), while
    :func:`bayesdrop.convert` cannot replace them and says so. torch's own modules are not
    inspected. This reads the source code of the module's class; code whose source is
    unavailable is not detected (the predictor's run-time check still sees its draws).

    Examples
    --------
    >>> from torch import nn
    >>> from bayesdrop.nn import find_functional_dropout
    >>> find_functional_dropout(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)))
    []
    """
    return [name for name, module in model.named_modules() if _calls_functional(type(module))]


_CALLS_FUNCTIONAL: dict[type, bool] = {}


def _calls_functional(cls: type) -> bool:
    """Whether the source of ``cls`` calls functional dropout (searched once per class, as its
    source is read once: ``noise=`` asks on every prediction)."""
    found = _CALLS_FUNCTIONAL.get(cls)
    if found is None:
        found = _CALLS_FUNCTIONAL[cls] = bool(_FUNCTIONAL_DROPOUT.search(class_source(cls)))
    return found
