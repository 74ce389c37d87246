"""Capture and replay of the prefix of a chain of blocks, for the hooked engine.

:func:`capture` runs a model until the first stochastic block of a chain (see
:func:`first_blocks`) starts and keeps the outputs of the outermost module calls before it;
:func:`replaying` makes those calls return their captured outputs repeated ``k`` times until the
block starts again. :mod:`bayesdrop.predict._hooked` builds the engine and its checks on them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from bayesdrop.nn._noise_calls import functional_noise, module_names
from bayesdrop.nn._selection import samples
from bayesdrop.predict._cached import CacheUnavailable
from bayesdrop.predict._engines import repeat_batch
from bayesdrop.predict._io import ModelInputs

__all__ = [
    "Capture",
    "OutOfStep",
    "capture",
    "first_blocks",
    "repeat_value",
    "repeatable",
    "replaying",
]

_CHAINS = (nn.ModuleList, nn.Sequential)
_MISSING = object()


class _Reached(BaseException):
    """The capture pass reached the first stochastic block (a BaseException, so that no
    ``except Exception`` in the model's code swallows it)."""


class OutOfStep(Exception):
    """The re-entry did not replay the captured prefix calls in order."""


def _holds_noise(module: nn.Module) -> bool:
    return any(samples(m) for m in module.modules())


def first_blocks(model: nn.Module) -> set[int]:
    """The ids of the modules that may be the first stochastic block: members of an
    ``nn.ModuleList`` or ``nn.Sequential`` that hold noise and hold no nested chain that does."""
    found = set()
    for chain in model.modules():
        if not isinstance(chain, _CHAINS):
            continue
        for block in chain.children():
            nested = (m for m in block.modules() if m is not block and isinstance(m, _CHAINS))
            if _holds_noise(block) and not any(_holds_noise(m) for m in nested):
                found.add(id(block))
    return found


@dataclass
class _Frame:
    module: nn.Module
    calls: list[tuple[nn.Module, object]] = field(default_factory=list)


@dataclass
class Capture:
    """What the capture pass found: the first stochastic block and its name, its arguments
    (for the validation), its call ancestors, and the outermost prefix calls with their
    outputs, in order."""

    block: nn.Module
    name: str
    args: tuple
    kwargs: dict
    ancestors: tuple[nn.Module, ...]
    calls: list[tuple[nn.Module, object]]


def _rng_states(device: torch.device) -> list[Tensor]:
    states = [torch.get_rng_state()]
    if device.type not in ("cpu", "meta"):
        states.append(torch.get_device_module(device).get_rng_state(device))
    return states


def _rng_moved(device: torch.device, states: list[Tensor]) -> bool:
    """Whether the random state moved since ``states``; if so it is put back (a refused
    capture leaves the stream as it found it, for the engine that runs instead)."""
    if all(torch.equal(a, b) for a, b in zip(states, _rng_states(device), strict=True)):
        return False
    torch.set_rng_state(states[0])
    if len(states) > 1:
        torch.get_device_module(device).set_rng_state(states[1], device)
    return True


def capture(model: nn.Module, inputs: ModelInputs, record: bool) -> Capture:
    """Run ``model`` on ``inputs`` until its first stochastic block; raise
    :class:`CacheUnavailable` where the prefix draws random numbers or no block is found."""
    names = module_names(model)
    blocks = first_blocks(model)
    if not blocks:
        raise CacheUnavailable(
            "no member of an nn.ModuleList or nn.Sequential holds a noise module"
        )
    stack: list[_Frame] = []
    early: list[str] = []
    seen: list[tuple[nn.Module, tuple, dict]] = []

    def enter(module: nn.Module, _args: tuple) -> None:
        if id(module) in names and id(module) not in blocks:
            if samples(module):
                early.append(names[id(module)] or "(model)")
            stack.append(_Frame(module))

    def leave(module: nn.Module, _args: tuple, output: object) -> None:
        if stack and stack[-1].module is module:
            stack.pop()
            if stack:
                stack[-1].calls.append((module, output))

    def reach(module: nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append((module, args, kwargs))
        raise _Reached

    device = inputs.tensors()[0].device if inputs.tensors() else torch.device("cpu")
    states = _rng_states(device)
    # the global pre-hook runs before the blocks' own: a block never enters the stack
    handles = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave)]
    for module in model.modules():
        if id(module) in blocks:
            handles.append(module.register_forward_pre_hook(reach, with_kwargs=True, prepend=True))
    try:
        with functional_noise(True, model, False) if record else nullcontext() as recorder:
            try:
                inputs.call(model)
            except _Reached:
                pass
    except Exception as exc:  # the model's own errors resurface in the fallback engine
        raise CacheUnavailable(f"the capture pass failed ({type(exc).__name__}: {exc})") from exc
    finally:
        for handle in handles:
            handle.remove()
    moved = _rng_moved(device, states)
    around = [names[id(f.module)] for f in stack if samples(f.module)]
    if around:
        raise CacheUnavailable(
            f"`{around[0]}` is a noise module running around the first stochastic block: its "
            "own noise (LayerDrop's draw in its loop, say) may come before the block"
        )
    found = recorder.draws if recorder is not None else []
    draws = sorted({f"`{d.module or '(model)'}` ({d.function})" for d in found})
    if early or draws:
        where = ", ".join(f"`{e}`" for e in early) or ", ".join(draws)
        raise CacheUnavailable(f"noise before the first stochastic block, in {where[:200]}")
    if not seen:
        raise CacheUnavailable("no block of a chain that holds noise ran in the forward pass")
    if moved:
        raise CacheUnavailable(
            "the code before the first stochastic block draws random numbers (the random "
            "state moved: LayerDrop, or a draw the recorder does not see)"
        )
    block, args, kwargs = seen[0]
    calls = [c for frame in stack for c in frame.calls]
    if not calls:
        raise CacheUnavailable(
            f"no module runs before the first stochastic block `{names[id(block)]}`: "
            "nothing to compute once"
        )
    ancestors = tuple(frame.module for frame in stack)
    return Capture(block, names[id(block)], args, kwargs, ancestors, calls)


def repeatable(value: object, n: int, where: str) -> None:
    """Raise :class:`CacheUnavailable` unless ``value`` (a prefix output) can be repeated:
    tensors, ``None``, scalars other than the batch size, and tuples, lists and mappings
    (Hugging Face's ``ModelOutput``) of them."""
    if value is None or isinstance(value, (Tensor, bool, float, str, torch.dtype)):
        return
    if isinstance(value, int):
        if value == n:
            raise CacheUnavailable(
                f"`{where}` returns {value}, the batch size (a size computed before the first "
                "stochastic block would be wrong on the repeated batch)"
            )
        return
    if isinstance(value, (tuple, list, Mapping)):
        for v in value.values() if isinstance(value, Mapping) else value:
            repeatable(v, n, where)
        return
    raise CacheUnavailable(f"`{where}` returns a {type(value).__name__}, which cannot be repeated")


def repeat_value(value: object, k: int, n: int, batch_dim: int) -> object:
    """A fresh copy of ``value`` with every tensor that has ``n`` rows along ``batch_dim``
    repeated ``k`` times, sample-major (the others cloned: the model may change them in place,
    and later passes read the captured values)."""
    if isinstance(value, Tensor):
        if k > 1 and value.dim() > batch_dim and value.shape[batch_dim] == n:
            return repeat_batch(value, k, batch_dim)
        return value.clone()
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return type(value)(*(repeat_value(v, k, n, batch_dim) for v in value))  # type: ignore[arg-type]
    if isinstance(value, (tuple, list)):
        return type(value)([repeat_value(v, k, n, batch_dim) for v in value])
    if isinstance(value, Mapping):
        out = copy.copy(value)
        for key, v in value.items():
            out[key] = repeat_value(v, k, n, batch_dim)  # type: ignore[index]
        return out
    return value


@dataclass
class Replay:
    """The state of one re-entry: the next captured call to replay, whether the block has
    started, and (for the validation) how often it ran and which other calls came first."""

    calls: list[tuple[nn.Module, object]]
    k: int
    n: int
    batch_dim: int
    cursor: int = 0
    started: int = 0
    block_args: tuple | None = None

    def forward_of(self, module: nn.Module, original):
        def forward(*args, **kwargs):
            if self.started:
                return original(*args, **kwargs)
            if self.cursor >= len(self.calls) or self.calls[self.cursor][0] is not module:
                raise OutOfStep(f"`{type(module).__name__}` was called out of the captured order")
            self.cursor += 1
            return repeat_value(self.calls[self.cursor - 1][1], self.k, self.n, self.batch_dim)

        return forward

    def start(self, _module: nn.Module, args: tuple, kwargs: dict) -> None:
        if not self.started:
            if self.cursor != len(self.calls):
                raise OutOfStep(
                    f"the block started after {self.cursor} of the {len(self.calls)} captured calls"
                )
            self.block_args = (args, kwargs)
        self.started += 1


@contextmanager
def replaying(found: Capture, k: int, n: int, batch_dim: int) -> Iterator[Replay]:
    """The prefix calls of ``found`` replaced by their outputs repeated ``k`` times until the
    first stochastic block starts; every replacement and hook removed on leaving (also on
    errors)."""
    replay = Replay(found.calls, k, n, batch_dim)
    patched: list[tuple[nn.Module, object]] = []
    handle = found.block.register_forward_pre_hook(replay.start, with_kwargs=True, prepend=True)
    try:
        for module in {id(m): m for m, _ in found.calls}.values():
            saved = module.__dict__.get("forward", _MISSING)
            patched.append((module, saved))
            module.__dict__["forward"] = replay.forward_of(module, module.forward)
        yield replay
    finally:
        handle.remove()
        for module, saved in patched:
            if saved is _MISSING:
                del module.__dict__["forward"]
            else:
                module.__dict__["forward"] = saved
