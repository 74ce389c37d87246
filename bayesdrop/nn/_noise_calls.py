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

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

__all__ = [
    "NOISE_FUNCTIONS",
    "PER_ELEMENT_FUNCTIONS",
    "RANDOM_METHODS",
    "Draw",
    "FunctionalNoise",
    "draw_rows",
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
#: Names of the functions whose draws are per element of their (first) input: with an input
#: that holds the rows of the batch, they are drawn per row.
PER_ELEMENT_FUNCTIONS = frozenset(getattr(f, "__name__", "") for f in _TRAINING_ARG) | {
    "scaled_dot_product_attention"
}
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


class Draw(NamedTuple):
    """One random draw: the innermost module of ``model`` running when it happened (``""``
    when none was), the function's name, the number of values drawn and the shape of the
    result (``()`` for a draw that returns no tensor), and whether its input is (a view of) one
    of the model's parameters or buffers."""

    module: str
    function: str
    numel: int
    shape: tuple[int, ...] = ()
    #: the call's input shares storage with one of the model's parameters or buffers
    #: (dropout on a weight): drawn once per call, whatever the shape
    on_state: bool = False
    #: the class of the module that drew it (None when no module of the model was running)
    owner: type | None = None


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


# kernels that draw their dropout between layers inside C++ (nn.LSTM, nn.GRU, nn.RNN)
_RNN_KERNELS = frozenset({torch.lstm, torch.gru, torch.rnn_tanh, torch.rnn_relu})
_MAY_DRAW = NOISE_FUNCTIONS | {F.scaled_dot_product_attention} | _RNN_KERNELS


def _rnn_dropout(args: tuple) -> bool:
    """Whether a recurrent kernel's call drops between layers: its ``num_layers, dropout,
    train`` (an int, a float and a bool, in that order, in every overload) say more than one
    layer, a positive rate and training."""
    for i in range(len(args) - 2):
        layers, rate, train = args[i : i + 3]
        if type(layers) is int and isinstance(rate, float) and type(train) is bool:
            return layers > 1 and rate > 0.0 and train
    return False


_MAY_DRAW_SEEN: dict[object, bool] = {}


def _may_draw(func: object) -> bool:
    """A cheap filter before :func:`_draws` (a recorder sees every torch call of a pass): one
    dictionary look-up per function once it has been seen."""
    try:
        return _MAY_DRAW_SEEN[func]
    except KeyError:  # not seen yet
        found = func in _MAY_DRAW or getattr(func, "__name__", "") in RANDOM_METHODS
        _MAY_DRAW_SEEN[func] = found
        return found
    except TypeError:  # not hashable: no torch function is, but a handler sees anything
        return getattr(func, "__name__", "") in RANDOM_METHODS


def _draws(func: object, args: tuple, kwargs: dict, forced: bool) -> bool:
    """Whether a call draws random numbers; ``forced``: a dropout-family call runs as in
    training whatever its argument says."""
    if func in _TRAINING_ARG:
        return (forced or _training_on(func, args, kwargs)) and _rate(func, args, kwargs) > 0.0
    if func in _RANDOM_FUNCTIONS or getattr(func, "__name__", "") in RANDOM_METHODS:
        return True
    if func is F.scaled_dot_product_attention:
        p = args[4] if len(args) > 4 else kwargs.get("dropout_p", 0.0)
        return float(p) > 0.0
    if func in _RNN_KERNELS:
        return _rnn_dropout(args)
    return False


class FunctionalNoise(TorchFunctionMode):
    """Run the dropout-family functions as in training (and, with ``record``, note draws).

    Every call of ``F.dropout``, ``F.dropout1d/2d/3d``, ``F.alpha_dropout``,
    ``F.feature_alpha_dropout``, ``F.rrelu`` (and ``torch.dropout`` and its kin) made inside
    the block runs with ``training=True``, whichever module makes it. With ``record=True``,
    :attr:`draws` lists every random draw; ``names`` maps modules (by ``id``) to their names in
    the model, and a draw is attributed to the innermost module whose method is running when it
    happens (read from the Python stack at the draw: no hooks slow every module call of the
    pass).
    """

    def __init__(
        self,
        record: bool = False,
        names: dict[int, str] | None = None,
        force: bool = True,
        model: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.record, self.names, self.force, self.model = record, names or {}, force, model
        self.draws: list[Draw] = []
        self.paused = False
        self._state: frozenset[int] | None = None  # storages of the model's tensors, when asked
        self.modules: list[nn.Module] = []  # the model's modules (set with ``names``)
        #: with ``rows_of`` set (by :func:`draw_rows`), the record is one bool per drawing
        #: call: whether its result has a dimension of a multiple of ``rows_of``
        self.rows_of = 0
        self.rows_seen: list[bool] = []
        #: ids of the noise modules a noise selection switched off (and of those it keeps on):
        #: a dropout-family call made inside an off one runs as given
        self.off: frozenset[int] = frozenset()
        self.on: frozenset[int] = frozenset()

    def _forced_below(self) -> bool:
        """Whether a mode entered before this one runs the dropout-family calls as in training."""
        index = next((i for i, m in enumerate(_ACTIVE) if m is self), len(_ACTIVE))
        return any(m.force and not m.paused for m in _ACTIVE[:index])

    def _state_storages(self) -> frozenset[int]:
        """The storages of the model's parameters and buffers (read once, with torch function
        handling off: inside a mode each ``untyped_storage()`` would be a mode call)."""
        if self._state is None:
            with torch._C.DisableTorchFunction():
                tensors: list[Tensor] = []
                if self.model is not None:  # the modules named, through their own dicts
                    for m in self.modules:
                        tensors += [t for t in m._parameters.values() if t is not None]
                        tensors += [t for t in m._buffers.values() if t is not None]
                self._state = frozenset(_storage(t) for t in tensors) - {0, -1}
        return self._state

    def _where(self) -> tuple[str, type | None]:
        """The name and class of the innermost module of the model with a method on the stack
        (``("", None)`` when none is): the module that made the draw being recorded."""
        names = self.names
        if names:
            for owner in _selves_on_stack(sys._getframe(2)):  # from the caller of the mode
                name = names.get(id(owner))
                if name is not None:
                    return name, type(owner)
        return "", None

    def _inside_off(self) -> bool:
        """Whether the innermost noise module on the Python stack is one a noise selection
        switched off (its dropout-family calls are then not forced to sample)."""
        off, on = self.off, self.on
        for owner in _selves_on_stack(sys._getframe(2)):  # from the caller of the mode
            found = id(owner)
            if found in off:
                return True
            if found in on:
                return False
        return False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        if self.force and func in _TRAINING_ARG and not (self.off and self._inside_off()):
            args, kwargs = _with_training(func, args, kwargs)
        out = func(*args, **kwargs)
        if self.rows_of and _may_draw(func):
            first = _first_result(out)
            rows = self.rows_of
            shape = first.shape if isinstance(first, Tensor) else ()
            self.rows_seen.append(rows > 1 and any(n and n % rows == 0 for n in shape))
        elif self.record and _may_draw(func):
            # whether a mode below forces training matters only for a call that says training
            # off (this mode, when it forces, has already switched the call's argument on)
            forced = (
                func in _TRAINING_ARG
                and not _training_on(func, args, kwargs)
                and self._forced_below()
            )
            if _draws(func, args, kwargs, forced):
                where, owner = self._where()
                name = getattr(func, "__name__", str(func))
                first = args[0] if args else next(iter(kwargs.values()), None)
                on_state = name in PER_ELEMENT_FUNCTIONS and isinstance(first, Tensor)
                on_state = on_state and _storage(first) in self._state_storages()
                result = _first_result(out)
                shape = tuple(result.shape) if isinstance(result, Tensor) else ()
                numel = result.numel() if isinstance(result, Tensor) else 1
                self.draws.append(Draw(where, name, numel, shape, on_state, owner))
        return out


_ACTIVE: list[FunctionalNoise] = []


def _selves_on_stack(frame) -> Iterator[object]:
    """The ``self`` of every method running on the Python stack, innermost first, from
    ``frame`` outwards (a draw is attributed to, or a selection decided by, the innermost
    module among them that the caller knows)."""
    while frame is not None:
        code = frame.f_code
        if code.co_argcount and code.co_varnames[0] == "self":
            yield frame.f_locals.get("self")
        frame = frame.f_back


def _first_result(out: object) -> object:
    """A call's (first) result: the output of a recurrent kernel's ``(output, h_n, ...)``."""
    return out[0] if isinstance(out, tuple) and out else out


def _storage(t: Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # tensors without storage (meta, functional)
        return -1


@contextmanager
def functional_noise(
    record: bool = False, model: nn.Module | None = None, force: bool = True
) -> Iterator[FunctionalNoise]:
    """The :class:`FunctionalNoise` mode for a block; with ``record`` and ``model``, draws are
    attributed to ``model``'s modules; with
    ``force=False`` calls run as given (recording only).

    A recorder (``record=True, force=False``) opened inside :func:`.sampling` borrows the
    sampling's own mode instead of stacking a second one (every torch call made through a
    ``TorchFunctionMode`` pays a Python call, and a second mode doubles that cost); the
    recorder it yields then holds the block's draws without being a mode itself."""
    pairs = list(model.named_modules()) if record and model is not None else []
    names = _names(pairs)
    modules = [m for _, m in pairs]
    host = _ACTIVE[-1] if _ACTIVE else None
    if record and not force and host is not None and not host.paused and not host.record:
        with _borrowed(host, names, model, modules) as view:
            yield view
        return
    mode = FunctionalNoise(record=record, names=names, force=force, model=model)
    mode.modules = modules
    _ACTIVE.append(mode)
    try:
        with mode:
            yield mode
    finally:
        _ACTIVE.remove(mode)


@contextmanager
def _borrowed(
    host: FunctionalNoise, names: dict[int, str], model: nn.Module | None, modules: list
) -> Iterator[FunctionalNoise]:
    """``host`` records for the block; the yielded recorder (not itself a mode) holds the draws
    afterwards."""
    view = FunctionalNoise(record=True, names=names, force=False, model=model)
    saved = (host.names, host.draws, host.model, host._state, host.modules)
    host.record, host.names, host.draws = True, names, view.draws
    host.model, host._state, host.modules = model, None, modules
    try:
        yield view
    finally:
        host.record = False
        host.names, host.draws, host.model, host._state, host.modules = saved


@contextmanager
def draw_rows(rows: int) -> Iterator[list[bool]]:
    """For the block, one ``bool`` per call that may draw random numbers (the dropout family,
    the random functions and methods, attention with dropout, and the recurrent kernels, whose
    dropout between layers is drawn inside the kernel): whether its (first) result has a
    dimension of a multiple of ``rows``. A cheaper record than ``record=True``: no module
    names, no sizes; the sampling's own mode does it when one is open (no second mode)."""
    host = _ACTIVE[-1] if _ACTIVE else None
    if host is not None and not host.paused and not host.record and not host.rows_of:
        host.rows_of, host.rows_seen = rows, []
        try:
            yield host.rows_seen
        finally:
            host.rows_of = 0
        return
    mode = FunctionalNoise(force=False)
    mode.rows_of = rows
    _ACTIVE.append(mode)
    try:
        with mode:
            yield mode.rows_seen
    finally:
        _ACTIVE.remove(mode)


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
    return _names(model.named_modules())


def _names(pairs) -> dict[int, str]:
    """``id(module) -> name`` for ``(name, module)`` pairs (``"(model)"`` for the root's ``""``)."""
    return {id(m): name or "(model)" for name, m in pairs}
