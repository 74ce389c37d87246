"""The fingerprint of a model's state that keys its cached plans (issue 21).

:func:`fingerprint` is everything ``forward`` can read besides parameter values and buffer
contents; :class:`Snapshot` is its fast check on every call: the same objects (compared by
identity first, then by value) give the same fingerprint, so only a call that finds some object
replaced (or a list, dict or nested tuple attribute changed in place) builds the fingerprint
again.
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter, itemgetter

import torch
from torch import Tensor, nn

from bayesdrop.nn._sampling import _REGISTRY, _kind, is_stochastic

__all__ = ["Snapshot", "fingerprint", "value_key"]

_STANDARD_KEYS = frozenset(nn.Module().__dict__)
_SCALARS = (bool, int, float, complex, str, bytes, torch.dtype, torch.device, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)
_FORWARD = attrgetter("forward")
_GET = itemgetter.__call__
_MODULE_DICTS = ("_parameters", "_buffers", "_modules", "_forward_hooks", "_forward_pre_hooks")


def value_key(value: object, depth: int = 0) -> object:
    """What a plain attribute contributes to the fingerprint: scalars by value, containers of
    them by their items, tensors, modules and other objects by identity."""
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return value
    if isinstance(value, (tuple, list)) and _SCALAR_TYPES.issuperset(map(type, value)):
        # scalars in a tuple are compared by value as they are; a list is copied
        return value if kind is tuple else (kind.__name__, *value)
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Tensor):
        return ("tensor", id(value))
    if isinstance(value, (tuple, list)) and depth < 2 and len(value) <= 32:
        return (type(value).__name__, *(value_key(v, depth + 1) for v in value))
    if isinstance(value, dict) and depth < 2 and len(value) <= 32:
        return ("dict", *((k, value_key(v, depth + 1)) for k, v in value.items()))
    return ("object", id(value))


def _plain_key(state: dict) -> tuple:
    """A module's plain attributes (not the standard ``nn.Module`` ones): their names and
    values, scalars as they are (a fast path in C for modules with only scalar attributes),
    anything else through :func:`value_key`."""
    keys = state.keys() - _STANDARD_KEYS
    if not keys:
        return ()
    names = tuple(keys)  # the set's order follows the dict's: a re-ordered dict only re-traces
    values = tuple(map(state.__getitem__, names))
    if not _SCALAR_TYPES.issuperset(map(type, values)):
        values = tuple(map(value_key, values))
    return (len(names), *names, *values)


def _modules(model: nn.Module) -> list[nn.Module]:
    """Every module once, depth first, without building the dotted names of named_modules()."""
    found: list[nn.Module] = []
    seen: set[int] = set()
    stack: list = [model]
    while stack:
        module = stack.pop()
        if module is None or id(module) in seen:
            continue
        seen.add(id(module))
        found.append(module)
        stack.extend(reversed(module.__dict__["_modules"].values()))
    return found


def _registry() -> tuple:
    """The registered noise types (:func:`bayesdrop.nn.register_stochastic_module`): a
    registration changes which modules are noise and how they are sampled."""
    return tuple(_REGISTRY.items())


def fingerprint(model: nn.Module) -> tuple:
    """Everything ``forward`` can read besides parameter values and buffer contents: each
    module's identity, class ``forward`` and rate, its plain attributes (flags, temperatures,
    sizes, ...) by value, the identity of its parameters, buffers, children and other
    attributes (a re-assigned buffer is a new object) and its hooks. A change re-traces the
    model and re-runs the first-call checks. In-place changes of parameters and buffers need
    none: the traced halves read them when they run.

    One flat tuple for the whole model (each group led by its length), built with C-level
    unpacking."""
    key: list = [_registry()]
    for module in _modules(model):
        state = module.__dict__
        params, buffers, children = state["_parameters"], state["_buffers"], state["_modules"]
        hooks, pre_hooks = state["_forward_hooks"], state["_forward_pre_hooks"]
        plain = _plain_key(state)
        key.extend(
            (
                id(module),
                type(module).forward,
                bool(_kind(module)[0]) and is_stochastic(module),  # rates of noise modules only
                len(plain),
                *plain,
                len(params),
                *params,
                *map(id, params.values()),
                len(buffers),
                *buffers,
                *map(id, buffers.values()),
                len(children),
                *children,
                *map(id, children.values()),
                len(hooks),
                *hooks,
                len(pre_hooks),
                *pre_hooks,
            )
        )
    return tuple(key)


def _containers(value: object, dicts: list, lists: list, depth: int = 0) -> None:
    """The lists and dicts :func:`value_key` may read inside ``value`` (to depth 2), whose
    items can change while ``value`` stays the same object."""
    if depth > 2:
        return
    if type(value) in _SCALAR_TYPES or isinstance(value, (Tensor, nn.Module)):
        return
    if isinstance(value, dict):
        dicts.append(value)
        items: object = value.values()
    elif isinstance(value, list):
        lists.append(value)
        items = value
    elif isinstance(value, tuple):
        items = value
    else:
        return
    for item in items:  # type: ignore[attr-defined]
        _containers(item, dicts, lists, depth + 1)


class Snapshot:
    """The objects :func:`fingerprint` read, held, to be compared on every call: :meth:`same`
    is true only where :func:`fingerprint` would return the same tuple, or where an object was
    replaced by one equal to it. Compared: every module's class and class ``forward``, the
    names and values of every entry of its ``__dict__``, of its parameter, buffer, child and
    hook dicts and of the lists and dicts inside its plain attributes (to the depth
    :func:`value_key` reads), and the rates of noise modules (a rate may be read through
    another object). Where any differs, :func:`fingerprint` is built again and decides.

    One list of every object, built in C and compared with ``==`` against the held list:
    identity first, so an unchanged model costs a pointer comparison per object. A replaced
    object is compared by value: scalars as the fingerprint compares them; a tensor of one
    element equal to the one it replaced keeps the plans (it gives the same numbers, and its
    value is compared again on every call, so a later change is seen); any other tensor, and
    any object whose ``==`` raises, counts as changed."""

    def __init__(self, model: nn.Module, key: tuple) -> None:
        self.key = key
        modules = _modules(model)
        # the model itself is not held (it keys a weak dictionary whose values are snapshots):
        # :meth:`same` is given it; its submodules are held, none of them refers back to it
        self.submodules = modules[1:]
        self.states = [m.__dict__ for m in modules]
        dicts = [s[name] for s in self.states for name in _MODULE_DICTS]
        lists: list = []
        self.getters = []
        for state in self.states:
            names = [name for name in state if name not in _STANDARD_KEYS]
            # the plain values and the five dicts, in C; a missing name raises KeyError
            self.getters.append(itemgetter(*names, *_MODULE_DICTS))
            for name in names:
                _containers(state[name], dicts, lists)
        self.dicts, self.lists = dicts, lists
        # most of a model's dicts are empty (hooks, buffers of most layers): their sizes are
        # compared, and only the filled ones are read
        self.filled = [d for d in dicts if d]
        self.held = self._objects(model)
        self.sizes = list(map(len, chain(self.states, dicts, lists)))
        self.noise = [i for i, m in enumerate(modules) if _kind(m)[0]]
        self.rates = [is_stochastic(modules[i]) for i in self.noise]
        self.registry = _registry()

    def _objects(self, model: nn.Module) -> list:
        classes = [type(model), *map(type, self.submodules)]
        return [
            *classes,
            *map(_FORWARD, classes),
            *chain.from_iterable(map(_GET, self.getters, self.states)),
            *chain.from_iterable(self.filled),  # the keys
            *chain.from_iterable(map(dict.values, self.filled)),
            *chain.from_iterable(self.lists),
        ]

    def same(self, model: nn.Module) -> bool:
        """Whether :func:`fingerprint` would give :attr:`key` for ``model`` (the model the
        snapshot was taken of) now, up to the order of a module's attributes (false: it may
        not). Each module's ``__dict__`` has as many names as before and holds all of them (the
        same names, then), with the same values, and the registered noise types are the
        same."""
        if model.__dict__ is not self.states[0]:
            return False
        try:
            if (
                list(map(len, chain(self.states, self.dicts, self.lists))) != self.sizes
                or self._objects(model) != self.held
                or _registry() != self.registry
            ):
                return False
        except Exception:  # KeyError: an attribute deleted; else an == that raises (a tensor)
            return False
        modules = [model, *self.submodules]
        return [is_stochastic(modules[i]) for i in self.noise] == self.rates
