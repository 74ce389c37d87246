"""The fingerprint of a model's state that keys its cached plans (issue 21).

:func:`fingerprint` is everything ``forward`` can read besides parameter values and buffer
contents; :class:`Snapshot` is its fast check on every call: the same objects, compared by
identity, give the same fingerprint, so only a call that finds some object replaced (or a list,
dict or nested tuple attribute changed in place) builds the fingerprint again.
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter, itemgetter

import torch
from torch import Tensor, nn

from bayesdrop.nn.sampling import _kind, is_stochastic

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


def fingerprint(model: nn.Module) -> tuple:
    """Everything ``forward`` can read besides parameter values and buffer contents: each
    module's identity, class ``forward`` and rate, its plain attributes (flags, temperatures,
    sizes, ...) by value, the identity of its parameters, buffers, children and other
    attributes (a re-assigned buffer is a new object) and its hooks. A change re-traces the
    model and re-runs the first-call checks. In-place changes of parameters and buffers need
    none: the traced halves read them when they run.

    One flat tuple for the whole model (each group led by its length), built with C-level
    unpacking."""
    key: list = []
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
    """The objects :func:`fingerprint` read, held (so that no other object can take their ids)
    to be compared by identity: :meth:`same` is true only where :func:`fingerprint` would
    return the same tuple. Compared: every module's class and class ``forward``, the names and
    values of every entry of its ``__dict__``, of its parameter, buffer, child and hook dicts
    and of the lists and dicts inside its plain attributes (to the depth :func:`value_key`
    reads), and the rates of noise modules (a rate may be read through another object). Where
    any differs, :func:`fingerprint` is built again and decides; a flat list of ids, built and
    compared in C, because this runs on every call."""

    def __init__(self, model: nn.Module, key: tuple) -> None:
        self.key = key
        self.modules = _modules(model)
        self.states = [m.__dict__ for m in self.modules]
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
        self.held = self._objects()  # keeps every object compared alive
        self.ids = list(map(id, self.held))
        self.sizes = list(map(len, chain(self.states, dicts, lists)))
        self.noise = [m for m in self.modules if _kind(m)[0]]
        self.rates = [is_stochastic(m) for m in self.noise]

    def _objects(self) -> list:
        classes = list(map(type, self.modules))
        return [
            *classes,
            *map(_FORWARD, classes),
            *chain.from_iterable(map(_GET, self.getters, self.states)),
            *chain.from_iterable(self.dicts),  # the keys
            *chain.from_iterable(map(dict.values, self.dicts)),
            *chain.from_iterable(self.lists),
        ]

    def same(self) -> bool:
        """Whether :func:`fingerprint` would give :attr:`key` now, up to the order of a
        module's attributes (false: it may not). Each module's ``__dict__`` has as many names
        as before and holds all of them (the same names, then), with the same values."""
        try:
            return (
                list(map(len, chain(self.states, self.dicts, self.lists))) == self.sizes
                and list(map(id, self._objects())) == self.ids
                and [is_stochastic(m) for m in self.noise] == self.rates
            )
        except KeyError:  # an attribute was deleted (and another one set)
            return False
