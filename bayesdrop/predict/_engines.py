"""The three ways of drawing Monte-Carlo samples: loop, batched, cached.

Every engine's :meth:`sample` returns the selected model outputs of ``k`` samples shaped
``(k, N, ...)`` (a tuple of such tensors for a ``(mean, log_variance)`` pair). ``select`` finds
the prediction in the model's raw output and moves its batch dimension first; the inputs keep
their batch at ``batch_dim`` (0, or 1 for sequence-first models), where the batched engines
repeat them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from bayesdrop._validation import fail
from bayesdrop.nn._noise_calls import functional_noise
from bayesdrop.nn._sampling import noise_scope, sampling
from bayesdrop.nn._selection import noise_selection, samples
from bayesdrop.predict._cached import CachedPlan, CacheUnavailable, build_plan, contains_size
from bayesdrop.predict._io import ModelInputs
from bayesdrop.predict._statekey import Snapshot, fingerprint, value_key

if TYPE_CHECKING:
    from bayesdrop.predict._hooked import HookedEngine

__all__ = [
    "BatchedEngine",
    "CachedEngine",
    "LoopEngine",
    "PlanSource",
    "choose_engine",
    "input_signature",
    "one_per_pass_reason",
    "plan_source",
    "repeat_batch",
    "split_samples",
]

Output = Tensor | tuple[Tensor, ...]
Select = Callable[[object], object]


def repeat_batch(t: Tensor, k: int, dim: int = 0) -> Tensor:
    """``(N, ...) -> (k * N, ...)`` along ``dim``, sample-major: rows ``s*N .. s*N+N-1`` are
    sample ``s``."""
    if k == 1:
        return t
    shape = list(t.shape)
    expanded = t.unsqueeze(dim).expand(*shape[:dim], k, *shape[dim:])
    return expanded.reshape(*shape[:dim], k * shape[dim], *shape[dim + 1 :])


def split_samples(output: object, k: int, n: int) -> Output:
    """``(k * N, ...) -> (k, N, ...)`` for a tensor or each tensor of a tuple."""
    if isinstance(output, (tuple, list)):
        return tuple(_split_one(o, k, n) for o in output)
    return _split_one(output, k, n)


def _split_one(output: object, k: int, n: int) -> Tensor:
    if not isinstance(output, Tensor) or output.dim() == 0 or output.shape[0] != k * n:
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        fail(
            "model",
            f"returning {k} * {n} rows along the batch dimension for {k} repeats of a batch of {n}",
            got,
            "Repeating the batch needs outputs that keep the batch dimension of the inputs "
            "(pass batch_dim=1 for sequence-first models); engine='loop' works for any "
            "output.",
        )
    return output.view(k, n, *output.shape[1:])


def _stack(outputs: list[object]) -> Output:
    first = outputs[0]
    if isinstance(first, (tuple, list)):
        return tuple(torch.stack([o[i] for o in outputs]) for i in range(len(first)))  # type: ignore[index]
    if not isinstance(first, Tensor):
        fail("model", "returning a tensor (or a pair of tensors)", type(first).__name__)
    return torch.stack(outputs)  # type: ignore[arg-type]


class LoopEngine:
    """``k`` forward passes of the whole model."""

    name = "loop"
    replicates = False

    def __init__(
        self, model: nn.Module, inputs: ModelInputs, select: Select, reason: str = ""
    ) -> None:
        self.model, self.inputs, self.select, self.reason = model, inputs, select, reason

    def sample(self, k: int) -> Output:
        return _stack([self.select(self.inputs.call(self.model)) for _ in range(k)])


class BatchedEngine:
    """One forward pass of the batch repeated ``k`` times."""

    name = "batched"
    replicates = True

    def __init__(
        self,
        model: nn.Module,
        inputs: ModelInputs,
        select: Select,
        reason: str = "",
        batch_dim: int = 0,
        plan: CachedPlan | None = None,
    ) -> None:
        self.model, self.inputs, self.select, self.reason = model, inputs, select, reason
        self.batch_dim = batch_dim
        # a trace of the whole model, where one was made: the first-call check reads its draws
        # from the graph instead of recording a pass (predict/_selfcheck.py)
        self.plan = plan

    def sample(self, k: int) -> Output:
        repeated = self.inputs.map(lambda t: repeat_batch(t, k, self.batch_dim))
        return split_samples(self.select(repeated.call(self.model)), k, self.inputs.n)


class CachedEngine:
    """The trunk once at batch ``N``, the head on boundary values repeated ``k`` times (or, with
    ``one_per_pass``, ``k`` head passes on the batch as given)."""

    name = "cached"

    def __init__(
        self,
        model: nn.Module,
        plan: CachedPlan,
        inputs: ModelInputs,
        select: Select,
        reason: str = "",
        validate: bool = True,
        batch_dim: int = 0,
        one_per_pass: bool = False,
    ) -> None:
        self.model, self.plan, self.n, self.reason = model, plan, inputs.n, reason
        self.select, self.batch_dim = select, batch_dim
        self.replicates = not one_per_pass
        try:
            # the first time, with a recorder of random draws: noise the trace cannot see (a
            # wrapped function that calls F.dropout) must not be drawn once and shared
            with functional_noise(record=validate, model=model, force=False) as recorder:
                values = inputs.call(plan.trunk)
        except Exception as exc:  # the model's own errors resurface in the fallback engine
            raise CacheUnavailable(f"the trunk failed ({type(exc).__name__}: {exc})") from exc
        if recorder.draws:
            where = ", ".join(
                sorted({f"`{d.module or '(model)'}` ({d.function})" for d in recorder.draws})
            )
            raise CacheUnavailable(
                f"the part computed once draws random numbers in {where[:200]}, through calls "
                "the trace does not see as noise"
            )
        self.values = values if isinstance(values, tuple) else (values,)
        self.repeat = []
        for name, value in zip(plan.boundary, self.values, strict=True):
            if isinstance(value, Tensor):
                self.repeat.append(value.dim() > batch_dim and value.shape[batch_dim] == self.n)
            elif contains_size(value, self.n):
                raise CacheUnavailable(
                    f"the stochastic part reads `{name}` = {value!r}, a size computed before "
                    "the first dropout (e.g. x.view(n, -1) with n = x.size(0) taken earlier)"
                )
            else:
                self.repeat.append(False)
        if validate:
            self._validate()

    def _inputs(self, k: int) -> list[object]:
        # always a fresh tensor (k = 1 clones): an in-place op in the head must not change the
        # cached trunk values that later chunks read
        pairs = zip(self.values, self.repeat, strict=True)
        return [
            (repeat_batch(v, k, self.batch_dim) if k > 1 else v.clone()) if r else v
            for v, r in pairs
        ]

    def _validate(self) -> None:
        """Without sampling, both halves of a 2-repeat head pass must agree row for row."""
        try:
            with sampling(self.model, enabled=False):
                out = split_samples(self.select(self.plan.head(*self._inputs(2))), 2, self.n)
        except Exception as exc:
            raise CacheUnavailable(
                f"the head failed on a repeated batch ({type(exc).__name__}: {str(exc)[:160]})"
            ) from exc
        for part in out if isinstance(out, tuple) else (out,):
            if not torch.allclose(part[0], part[1], rtol=1e-4, atol=1e-5, equal_nan=True):
                raise CacheUnavailable("the head mixes rows of the repeated batch")

    def sample(self, k: int) -> Output:
        if not self.replicates and k > 1:
            return _stack([self.select(self.plan.head(*self._inputs(1))) for _ in range(k)])
        return split_samples(self.select(self.plan.head(*self._inputs(k))), k, self.n)


class PlanSource:
    """Traces a model once per input signature and remembers the plans (or why there is none),
    and what the first calls found out about the model's noise."""

    def __init__(self, model: nn.Module) -> None:
        # held weakly: a PlanSource is the value of a weak dictionary keyed by the model
        self._model = weakref.ref(model)
        self._plans: dict[tuple, CachedPlan | CacheUnavailable] = {}
        self.validated: set[tuple] = set()
        self.checked = False  # the model passed check_model (it has dropout)
        # why every sample needs a pass of its own (None: the repeats of a pass are independent)
        self.one_per_pass: str | None = one_per_pass_reason(model)
        self.scope_checked = self.one_per_pass is not None  # the run-time check has been done
        self.hooked: dict[tuple, bool | str] = {}  # per signature: validated, or why not
        # per ``noise=`` pattern: the plans of the model with only that noise sampling
        self.selections: dict[str, PlanSource] = {}

    @property
    def model(self) -> nn.Module:
        model = self._model()
        if model is None:  # pragma: no cover - a caller holds the model while it predicts
            raise ReferenceError("the model of this PlanSource was deleted")
        return model

    def get(self, inputs: ModelInputs | None = None) -> CachedPlan:
        key = input_signature(inputs)
        found = self._plans.get(key)
        if found is None:
            try:
                found = build_plan(self.model, inputs)
            except CacheUnavailable as exc:
                # kept without its traceback, whose frames hold the model (and the inputs)
                found = CacheUnavailable(*exc.args)
            self._plans[key] = found
        if isinstance(found, CacheUnavailable):
            # a fresh copy: raising the stored one would attach this call's traceback to it
            raise CacheUnavailable(*found.args)
        return found

    def invalidate(self, error: CacheUnavailable, inputs: ModelInputs | None = None) -> None:
        self._plans[input_signature(inputs)] = CacheUnavailable(*error.args)


def one_per_pass_reason(model: nn.Module) -> str | None:
    """Why the samples of ``model`` may not share a pass: a noise module whose scope is
    ``"call"`` or ``"batch"`` (see :func:`bayesdrop.nn.register_stochastic_module`)."""
    for name, module in model.named_modules():
        if not samples(module):
            continue
        scope = noise_scope(module)
        what = f"`{name or '(model)'}` ({type(module).__name__})"
        if scope == "call":
            return f"{what} draws its noise once per call"
        if scope == "batch":
            return f"{what} couples its noise across the batch"
    return None


_PLAN_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def input_signature(inputs: ModelInputs | None) -> tuple:
    """The arguments a trace depends on: which are tensors, and the values of the others."""
    if inputs is None:
        return ()

    def one(value: object) -> object:
        return "<tensor>" if isinstance(value, Tensor) else value_key(value)

    return (
        tuple(one(a) for a in inputs.args),
        tuple((k, one(v)) for k, v in inputs.kwargs.items()),
    )


def plan_source(model: nn.Module, noise: str | None = None) -> PlanSource:
    """The model's :class:`PlanSource`, reused while its :func:`fingerprint
    <bayesdrop.predict._statekey.fingerprint>` stays the same (checked on every call: first by
    identity against a :class:`~bayesdrop.predict._statekey.Snapshot` of what it read, and where
    some object was replaced, by building the fingerprint again). With ``noise`` (the
    ``noise=`` option), the plans of the model with only the noise it selects sampling: the
    noise switched off is deterministic, so it is part of the trunk (built inside
    :func:`bayesdrop.nn._selection.noise_selection`)."""
    cached = _PLAN_SOURCES.get(model)
    if cached is not None and cached[0].same(model):
        source = cached[1]
    else:
        key = fingerprint(model)  # the old snapshot still holds the objects whose ids it has
        source = cached[1] if cached is not None and cached[0].key == key else PlanSource(model)
        _PLAN_SOURCES[model] = (Snapshot(model, key), source)
    if noise is None:
        return source
    child = source.selections.get(noise)
    if child is None:
        with noise_selection(model, noise):
            child = PlanSource(model)
        source.selections[noise] = child
    return child


def _refuse_batched(reason: str) -> None:
    fail(
        "engine",
        "an engine that gives every sample its own draw of the model's noise",
        "'batched'",
        f"{reason}, so the repeats of one batched pass would share it (or see a batch of "
        "another size). Use engine='auto' (it picks a right engine), 'loop' or 'cached'.",
    )


def _cached_or_fallback(
    model: nn.Module,
    inputs: ModelInputs,
    select: Select,
    plans: PlanSource,
    forced: bool,
    batch_dim: int,
) -> CachedEngine | HookedEngine | BatchedEngine | LoopEngine:
    one = plans.one_per_pass
    try:
        plan = plans.get(inputs)
        if plan.trunk_ops == 0 and not forced:
            if one is not None:
                return LoopEngine(model, inputs, select, f"auto: one sample per pass: {one}")
            why = "auto: no computation precedes the first dropout"
            return BatchedEngine(model, inputs, select, why, batch_dim, plan=plan)
        reason = "forced" if forced else "auto: the model traces"
        if one is not None:
            reason += f"; one sample per head pass: {one}"
        key = input_signature(inputs)
        engine = CachedEngine(
            model,
            plan,
            inputs,
            select,
            reason,
            validate=key not in plans.validated,
            batch_dim=batch_dim,
            one_per_pass=one is not None,
        )
        plans.validated.add(key)
        return engine
    except CacheUnavailable as exc:
        plans.invalidate(exc, inputs)
        from bayesdrop.predict._hooked import fallback  # it builds on this module

        reason = f"cached engine unavailable: {exc}"
        return fallback(model, inputs, select, plans, reason, forced, batch_dim)


def choose_engine(
    model: nn.Module,
    inputs: ModelInputs,
    name: str,
    plans: PlanSource,
    select: Select,
    batch_dim: int = 0,
) -> LoopEngine | BatchedEngine | CachedEngine | HookedEngine:
    """The engine for ``name`` (``"auto"``: cached when it traces and has a trunk, else hooked
    when a chain of blocks is found, else batched; one sample per pass where the model's noise
    may not be shared by the repeats of a pass)."""
    if name == "hooked":
        from bayesdrop.predict._hooked import fallback

        return fallback(model, inputs, select, plans, "", True, batch_dim)
    if name == "loop":
        return LoopEngine(model, inputs, select, "forced")
    if name == "batched":
        if plans.one_per_pass is not None:
            _refuse_batched(plans.one_per_pass)
        return BatchedEngine(model, inputs, select, "forced", batch_dim)
    return _cached_or_fallback(model, inputs, select, plans, name == "cached", batch_dim)
