"""The hooked engine: the blocks before the first stochastic block run once, without torch.fx.

Models that torch.fx cannot trace (Hugging Face transformers 5, PEFT wrappers) are mostly a
chain of blocks: an ``nn.ModuleList`` of layers run in order (``encoder.layer``,
``model.layers``) or an ``nn.Sequential``. The *first stochastic block* is the first member of
such a chain, in execution order, whose subtree holds a noise module (and holds no nested chain
that does: the engine descends to the innermost chain). Everything that runs before it is the
*prefix*.

1. **Capture** (every call, ``N`` rows, sampling on): the model runs under global forward hooks
   until the first stochastic block starts, where a pre-hook stops it. The hooks keep the output
   of every *outermost* module call of the prefix: the calls made directly by the forward code
   of a module still running when the block starts (its call ancestors: the model, the
   encoder, ...), in order. Random draws before the block (a noise module, ``F.dropout`` in a
   helper, LayerDrop's ``torch.rand`` in the encoder's loop: anything that advances the random
   state or that the draw recorder sees) refuse the engine.
2. **Re-entry** (per pass of ``k`` samples): the model is called on the inputs repeated ``k``
   times. Until the block starts, each outermost prefix call returns its captured output
   repeated ``k`` times along the batch (its ``forward`` is replaced, so nothing below it runs);
   the forward code between those calls (attention masks, position ids) runs again on the
   repeated inputs, as in the batched engine. From the block on, everything runs for real on
   ``k * N`` rows. Tensors the prefix hands on to later blocks (hidden states, residual streams,
   masks, rotary embeddings) are thus either replayed cached values or recomputed from the
   repeated inputs; nothing is dropped.
3. **Validation** (the first call for a model and input signature, sampling off): the re-entry
   must replay the captured calls in the same order and call no other module before the block;
   the block must be called once per forward; its arguments must equal the captured ones
   repeated; both halves of a 2-repeat pass must equal a plain forward pass. Any failure, and
   any prefix output that cannot be repeated (a size, an object that is not a tensor or a
   container of tensors), sends ``auto`` back to the batched engine with the reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.modules.module import register_module_forward_pre_hook

from bayesdrop.exceptions import EngineFallbackWarning
from bayesdrop.nn._noise_calls import module_names
from bayesdrop.nn._sampling import sampling
from bayesdrop.predict._cached import CacheUnavailable
from bayesdrop.predict._engines import (
    BatchedEngine,
    LoopEngine,
    PlanSource,
    Select,
    input_signature,
    repeat_batch,
    split_samples,
)
from bayesdrop.predict._io import ModelInputs
from bayesdrop.predict._prefix import (
    OutOfStep,
    Replay,
    capture,
    repeat_value,
    repeatable,
    replaying,
)

__all__ = ["HookedEngine", "fallback", "hooked_engine"]


def _same(now: object, then: object, k: int, n: int, batch_dim: int) -> bool:
    """Whether a block argument of the re-entry equals the captured one repeated ``k`` times."""
    if isinstance(then, Tensor):
        expected = repeat_value(then, k, n, batch_dim)
        assert isinstance(expected, Tensor)
        return (
            isinstance(now, Tensor)
            and now.shape == expected.shape
            and torch.allclose(now, expected, rtol=1e-4, atol=1e-5, equal_nan=True)
        )
    if isinstance(then, (tuple, list)):
        return (
            isinstance(now, (tuple, list))
            and len(now) == len(then)
            and all(_same(a, b, k, n, batch_dim) for a, b in zip(now, then, strict=True))
        )
    if isinstance(then, Mapping):
        return (
            isinstance(now, Mapping)
            and now.keys() == then.keys()
            and all(_same(now[key], then[key], k, n, batch_dim) for key in then)
        )
    if then is None or isinstance(then, (bool, int, float, str)):
        return now == then
    return type(now) is type(then)  # a cache object, a config: the re-entry makes its own


@contextmanager
def _watched(model: nn.Module, allowed: set[int], replay: Replay) -> Iterator[list[str]]:
    """The names of the modules (other than ``allowed``) called before the block started."""
    names = module_names(model)
    extra: list[str] = []

    def enter(module: nn.Module, _args: tuple) -> None:
        if not replay.started and id(module) in names and id(module) not in allowed:
            extra.append(names[id(module)])

    handle = register_module_forward_pre_hook(enter)
    try:
        yield extra
    finally:
        handle.remove()


class HookedEngine:
    """The prefix (every module call before the first stochastic block of a chain) once at
    batch ``N``; the model re-entered on the inputs repeated ``k`` times with the prefix calls
    replayed from the capture (or, with ``one_per_pass``, ``k`` re-entries at batch ``N``)."""

    name = "hooked"

    def __init__(
        self,
        model: nn.Module,
        inputs: ModelInputs,
        select: Select,
        reason: str = "",
        validate: bool = True,
        batch_dim: int = 0,
        one_per_pass: bool = False,
    ) -> None:
        self.model, self.inputs, self.select, self.n = model, inputs, select, inputs.n
        self.batch_dim, self.replicates = batch_dim, not one_per_pass
        self.found = capture(model, inputs, record=validate)
        names = module_names(model)
        for module, output in self.found.calls:
            repeatable(output, self.n, names[id(module)])
        self.reason = (
            f"{reason}; `{self.found.name}` is the first stochastic block, the "
            f"{len(self.found.calls)} module calls before it ran once"
        )
        if validate:
            self._validate()
        self.found.args, self.found.kwargs = (), {}  # only the validation compares them

    def _run(self, k: int) -> object:
        repeated = self.inputs.map(lambda t: repeat_batch(t, k, self.batch_dim))
        with replaying(self.found, k, self.n, self.batch_dim):
            try:
                return repeated.call(self.model)
            except OutOfStep as exc:
                raise RuntimeError(
                    f"bayesdrop: the hooked engine's replay went out of step ({exc}); "
                    "pass engine='batched'"
                ) from exc

    def _validate(self) -> None:
        """Without sampling: the re-entry replays the captured calls in order and calls
        nothing else before the block, which runs once on the captured arguments repeated,
        and both halves of a 2-repeat pass equal a plain forward pass."""
        found, n = self.found, self.n
        allowed = {id(m) for m in (*found.ancestors, found.block)} | {id(m) for m, _ in found.calls}
        try:
            with sampling(self.model, enabled=False):
                plain = split_samples(self.select(self.inputs.call(self.model)), 1, n)
                with replaying(found, 2, n, self.batch_dim) as replay:
                    with _watched(self.model, allowed, replay) as extra:
                        raw = self.inputs.map(lambda t: repeat_batch(t, 2, self.batch_dim))
                        out = split_samples(self.select(raw.call(self.model)), 2, n)
        except OutOfStep as exc:
            raise CacheUnavailable(f"the re-entry did not replay the prefix: {exc}") from exc
        except Exception as exc:
            raise CacheUnavailable(
                f"the re-entry failed ({type(exc).__name__}: {str(exc)[:160]})"
            ) from exc
        if extra:
            raise CacheUnavailable(
                f"the re-entry called `{extra[0]}` before `{found.name}`, which the capture "
                "did not (control flow that depends on the batch)"
            )
        if replay.started != 1:
            raise CacheUnavailable(
                f"`{found.name}` is called {replay.started} times per forward pass (a shared "
                "block): the chain assumption does not hold"
            )
        args, kwargs = replay.block_args or ((), {})
        if not _same((args, kwargs), (found.args, found.kwargs), 2, n, self.batch_dim):
            raise CacheUnavailable(
                f"the arguments of `{found.name}` in the re-entry are not the captured ones "
                "repeated"
            )
        pairs = zip(
            out if isinstance(out, tuple) else (out,),
            plain if isinstance(plain, tuple) else (plain,),
            strict=True,
        )
        for part, ref in pairs:
            for half in part:
                if not torch.allclose(half, ref[0], rtol=1e-4, atol=1e-5, equal_nan=True):
                    raise CacheUnavailable("the re-entry's output differs from a plain forward")

    def sample(self, k: int) -> object:
        if not self.replicates and k > 1:
            parts = [split_samples(self.select(self._run(1)), 1, self.n) for _ in range(k)]
            if isinstance(parts[0], tuple):
                return tuple(torch.cat([p[i] for p in parts]) for i in range(len(parts[0])))
            return torch.cat(parts)  # type: ignore[arg-type]
        return split_samples(self.select(self._run(k)), k, self.n)


def hooked_engine(
    model: nn.Module,
    inputs: ModelInputs,
    select: Select,
    plans: PlanSource,
    reason: str,
    batch_dim: int = 0,
) -> HookedEngine | str:
    """The hooked engine for ``inputs``, or why there is none (remembered per input
    signature in ``plans``: the capture runs on every call, the validation on the first)."""
    key = input_signature(inputs)
    known = plans.hooked.get(key)
    if isinstance(known, str):
        return known
    one = plans.one_per_pass
    if one is not None:
        reason += f"; one sample per pass: {one}"
    try:
        engine = HookedEngine(
            model, inputs, select, reason, known is None, batch_dim, one is not None
        )
    except CacheUnavailable as exc:
        plans.hooked[key] = str(exc)
        return str(exc)
    plans.hooked[key] = True
    return engine


def fallback(
    model: nn.Module,
    inputs: ModelInputs,
    select: Select,
    plans: PlanSource,
    reason: str,
    forced: bool,
    batch_dim: int = 0,
) -> HookedEngine | BatchedEngine | LoopEngine:
    """The hooked engine, else the batched engine (the loop where every sample needs a pass
    of its own), for a model the cached engine cannot split (``reason``: why; empty for
    ``engine="hooked"``); ``forced``: an engine was asked for, and a warning says what ran
    instead of it."""
    depth = 6 if reason else 5  # the warning points at mc_predict's call of predict_batch
    found = hooked_engine(model, inputs, select, plans, reason or "forced", batch_dim)
    if not isinstance(found, str):
        if forced and reason:
            found.reason = f"forced 'cached': {found.reason}"
            _warn(f"{reason}; running 'hooked'", stacklevel=depth)
        elif not forced:
            found.reason = f"auto: {found.reason}"
        return found
    reason = f"{reason}; " if reason else ""
    reason += f"hooked engine unavailable: {found}"
    one = plans.one_per_pass
    engine: BatchedEngine | LoopEngine
    if one is not None:
        engine = LoopEngine(model, inputs, select, f"{reason}; one sample per pass: {one}")
    else:
        engine = BatchedEngine(model, inputs, select, reason, batch_dim)
    if forced:
        _warn(f"{reason}; falling back to '{engine.name}'", stacklevel=depth)
    return engine


def _warn(message: str, stacklevel: int) -> None:
    warnings.warn(f"bayesdrop: {message}.", EngineFallbackWarning, stacklevel=stacklevel)
