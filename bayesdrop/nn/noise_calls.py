"""Noise that lives in function calls: switching it on, and recording where it is drawn.

Dropout applied as a function (``F.dropout(x, p, training=self.training)``), wherever in the
call tree it is (timm applies ``drop_rate`` in ``forward_head``; torchvision's shifted-window
attention in a module-level function; a user's helper method), cannot be reached by flagging
modules. :class:`FunctionalNoise` is a ``TorchFunctionMode`` that runs the dropout-family
functions as in training: ``F.dropout``, ``dropout1d/2d/3d``, ``alpha_dropout``,
``feature_alpha_dropout``, ``rrelu`` (and their ``torch.*`` kernels). With ``record=True`` it
also notes every random draw (which module drew it, which function, how many values) so that
the predictor can tell noise drawn once per call from noise drawn per row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

__all__ = [
    "NOISE_FUNCTIONS",
    "RANDOM_METHODS",
    "Draw",
    "FunctionalNoise",
    "functional_noise",
    "functional_noise_paused",
    "module_names",
]

# function -> (position of the `training` argument, its keyword name, its default)
_TRAINING_ARG: dict[object, tuple[int, str, bool]] = {
    F.dropout: (2, "training", True),
    F.dropout1d: (2, "training", True),
    F.dropout2d: (2, "training", True),
    F.dropout3d: (2, "training", True),
    F.alpha_dropout: (2, "training", False),
    F.feature_alpha_dropout: (2, "training", False),
    F.rrelu: (3, "training", False),
    F.rrelu_: (3, "training", False),
    torch.dropout: (2, "train", True),
    torch.alpha_dropout: (2, "train", True),
    torch.feature_dropout: (2, "train", True),
    torch.feature_alpha_dropout: (2, "train", True),
    torch.rrelu: (3, "training", False),
}
_RRELU = (F.rrelu, F.rrelu_, torch.rrelu)
_RANDOM_FUNCTIONS = {
    torch.rand,
    torch.randn,
    torch.rand_like,
    torch.randn_like,
    torch.randint,
    torch.randint_like,
    torch.randperm,
    torch.bernoulli,
    torch.normal,
    torch.poisson,
    torch.multinomial,
}
#: Functions that draw random numbers (or, for the dropout family, may): the random-number
#: functions and the dropout-family functions whose training flag this module switches.
NOISE_FUNCTIONS = frozenset(_RANDOM_FUNCTIONS) | frozenset(_TRAINING_ARG)
#: Tensor methods that fill a tensor with random numbers.
RANDOM_METHODS = frozenset(
    {
        "bernoulli",
        "bernoulli_",
        "uniform_",
        "normal_",
        "random_",
        "exponential_",
        "geometric_",
        "cauchy_",
        "log_normal_",
    }
)


@dataclass(frozen=True)
class Draw:
    """One random draw: the innermost module of ``model`` running when it happened (``""``
    for the model itself), the function's name and the number of values drawn."""

    module: str
    function: str
    numel: int


def _training_on(func: object, args: tuple, kwargs: dict) -> bool:
    """The value of a dropout-family call's training argument (its default when not given)."""
    index, name, default = _TRAINING_ARG[func]
    return bool(args[index] if len(args) > index else kwargs.get(name, default))


def _with_training(func: object, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``args``/``kwargs`` with the training argument set to True."""
    index, name, _default = _TRAINING_ARG[func]
    if len(args) > index:
        return (*args[:index], True, *args[index + 1 :]), kwargs
    return args, {**kwargs, name: True}


def _rate(func: object, args: tuple, kwargs: dict) -> float:
    """The drop rate of a dropout-family call (1 for rrelu: its slope is always drawn)."""
    if func in _RRELU:
        lower = args[1] if len(args) > 1 else kwargs.get("lower", 1.0 / 8)
        upper = args[2] if len(args) > 2 else kwargs.get("upper", 1.0 / 3)
        return float(upper != lower)
    p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
    return float(p)


def _drawn(func: object, args: tuple, kwargs: dict, out: object, forced: bool) -> int | None:
    """Values drawn by a call (None when it draws nothing); ``forced``: a dropout-family call
    runs as in training whatever its argument says."""
    if func in _TRAINING_ARG:
        if not (forced or _training_on(func, args, kwargs)):
            return None
        return _numel(out) if _rate(func, args, kwargs) > 0.0 else None
    if func in _RANDOM_FUNCTIONS or getattr(func, "__name__", "") in RANDOM_METHODS:
        return _numel(out)
    if func is F.scaled_dot_product_attention:
        p = args[4] if len(args) > 4 else kwargs.get("dropout_p", 0.0)
        return _numel(out) if float(p) > 0.0 else None
    return None


def _numel(out: object) -> int:
    return out.numel() if isinstance(out, Tensor) else 1


class FunctionalNoise(TorchFunctionMode):
    """Run the dropout-family functions as in training (and, with ``record``, note draws).

    Every call of ``F.dropout``, ``F.dropout1d/2d/3d``, ``F.alpha_dropout``,
    ``F.feature_alpha_dropout``, ``F.rrelu`` (and ``torch.dropout`` and its kin) made inside
    the block runs with ``training=True``, whichever module makes it. With ``record=True``,
    :attr:`draws` lists every random draw; ``names`` maps modules to their names in the model,
    and :meth:`enter` / :meth:`leave` (called by forward hooks) keep the stack of running
    modules.
    """

    def __init__(
        self, record: bool = False, names: dict[int, str] | None = None, force: bool = True
    ) -> None:
        super().__init__()
        self.record, self.names, self.force = record, names or {}, force
        self.draws: list[Draw] = []
        self.paused = False
        self._stack: list[str] = []

    def _forced_below(self) -> bool:
        """Whether a mode entered before this one runs the dropout-family calls as in training."""
        index = next((i for i, m in enumerate(_ACTIVE) if m is self), len(_ACTIVE))
        return any(m.force and not m.paused for m in _ACTIVE[:index])

    def enter(self, module: nn.Module) -> None:
        name = self.names.get(id(module))
        if name is not None:
            self._stack.append(name)

    def leave(self, module: nn.Module) -> None:
        if id(module) in self.names and self._stack:
            self._stack.pop()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        if self.force and func in _TRAINING_ARG:
            args, kwargs = _with_training(func, args, kwargs)
        out = func(*args, **kwargs)
        if self.record:
            numel = _drawn(func, args, kwargs, out, self._forced_below())
            if numel is not None:
                where = self._stack[-1] if self._stack else ""
                self.draws.append(Draw(where, getattr(func, "__name__", str(func)), numel))
        return out


_ACTIVE: list[FunctionalNoise] = []


@contextmanager
def functional_noise(
    record: bool = False, model: nn.Module | None = None, force: bool = True
) -> Iterator[FunctionalNoise]:
    """The :class:`FunctionalNoise` mode for a block; with ``record`` and ``model``, draws are
    attributed to ``model``'s modules (global forward hooks for the block only); with
    ``force=False`` calls run as given (recording only)."""
    names = module_names(model) if record and model is not None else {}
    mode = FunctionalNoise(record=record, names=names, force=force)
    handles = []
    if record and names:
        hooks = nn.modules.module
        handles.append(hooks.register_module_forward_pre_hook(lambda m, _i: mode.enter(m)))
        handles.append(
            hooks.register_module_forward_hook(lambda m, _i, _o: mode.leave(m), always_call=True)
        )
    _ACTIVE.append(mode)
    try:
        with mode:
            yield mode
    finally:
        _ACTIVE.remove(mode)
        for handle in handles:
            handle.remove()


@contextmanager
def functional_noise_paused() -> Iterator[None]:
    """Let calls through unchanged (used while tracing a model with torch.fx)."""
    saved = [(m, m.paused) for m in _ACTIVE]
    try:
        for m, _ in saved:
            m.paused = True
        yield
    finally:
        for m, value in saved:
            m.paused = value


def module_names(model: nn.Module) -> dict[int, str]:
    """``id(module) -> name`` for every module of ``model`` (``"(model)"`` for the root)."""
    return {id(m): name or "(model)" for name, m in model.named_modules()}
