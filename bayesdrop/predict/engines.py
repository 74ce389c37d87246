"""The three ways of drawing Monte-Carlo samples: loop, batched, cached.

Every engine's :meth:`sample` returns the selected model outputs of ``k`` samples shaped
``(k, N, ...)`` (a tuple of such tensors for a ``(mean, log_variance)`` pair). ``select`` finds
the prediction in the model's raw output and moves its batch dimension first; the inputs keep
their batch at ``batch_dim`` (0, or 1 for sequence-first models), where the batched engines
repeat them.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from bayesdrop._validation import fail
from bayesdrop.nn.sampling import is_stochastic, sampling
from bayesdrop.predict.cached import CachedPlan, CacheUnavailable, build_plan, contains_size
from bayesdrop.predict.io import ModelInputs

__all__ = [
    "BatchedEngine",
    "CachedEngine",
    "LoopEngine",
    "PlanSource",
    "choose_engine",
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

    def __init__(
        self, model: nn.Module, inputs: ModelInputs, select: Select, reason: str = ""
    ) -> None:
        self.model, self.inputs, self.select, self.reason = model, inputs, select, reason

    def sample(self, k: int) -> Output:
        return _stack([self.select(self.inputs.call(self.model)) for _ in range(k)])


class BatchedEngine:
    """One forward pass of the batch repeated ``k`` times."""

    name = "batched"

    def __init__(
        self,
        model: nn.Module,
        inputs: ModelInputs,
        select: Select,
        reason: str = "",
        batch_dim: int = 0,
    ) -> None:
        self.model, self.inputs, self.select, self.reason = model, inputs, select, reason
        self.batch_dim = batch_dim

    def sample(self, k: int) -> Output:
        repeated = self.inputs.map(lambda t: repeat_batch(t, k, self.batch_dim))
        return split_samples(self.select(repeated.call(self.model)), k, self.inputs.n)


class CachedEngine:
    """The trunk once at batch ``N``, the head on boundary values repeated ``k`` times."""

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
    ) -> None:
        self.model, self.plan, self.n, self.reason = model, plan, inputs.n, reason
        self.select, self.batch_dim = select, batch_dim
        try:
            values = inputs.call(plan.trunk)
        except Exception as exc:  # the model's own errors resurface in the fallback engine
            raise CacheUnavailable(f"the trunk failed ({type(exc).__name__}: {exc})") from exc
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
        return split_samples(self.select(self.plan.head(*self._inputs(k))), k, self.n)


class PlanSource:
    """Traces a model once and remembers the plan (or why there is none)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._plan: CachedPlan | None = None
        self._error: CacheUnavailable | None = None
        self.validated = False
        self.checked = False  # the model passed check_model (it has dropout)

    def get(self) -> CachedPlan:
        if self._plan is None and self._error is None:
            try:
                self._plan = build_plan(self.model)
            except CacheUnavailable as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._plan  # type: ignore[return-value]

    def invalidate(self, error: CacheUnavailable) -> None:
        self._plan, self._error = None, error


_PLAN_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fingerprint(model: nn.Module) -> tuple:
    # a module that starts or stops being stochastic (attention dropout set to 0) changes the
    # split, so it is part of the key
    return tuple(
        (name, id(m), type(m).forward, is_stochastic(m)) for name, m in model.named_modules()
    )


def plan_source(model: nn.Module) -> PlanSource:
    """The model's :class:`PlanSource`, reused while its modules stay the same objects."""
    key = _fingerprint(model)
    cached = _PLAN_SOURCES.get(model)
    if cached is None or cached[0] != key:
        cached = (key, PlanSource(model))
        _PLAN_SOURCES[model] = cached
    return cached[1]


def _cached_or_batched(
    model: nn.Module,
    inputs: ModelInputs,
    select: Select,
    plans: PlanSource,
    forced: bool,
    batch_dim: int,
) -> CachedEngine | BatchedEngine:
    try:
        plan = plans.get()
        if plan.trunk_ops == 0 and not forced:
            return BatchedEngine(
                model, inputs, select, "auto: no computation precedes the first dropout", batch_dim
            )
        reason = "forced" if forced else "auto: the model traces"
        engine = CachedEngine(
            model, plan, inputs, select, reason, validate=not plans.validated, batch_dim=batch_dim
        )
        plans.validated = True
        return engine
    except CacheUnavailable as exc:
        plans.invalidate(exc)
        reason = f"cached engine unavailable: {exc}"
        if forced:
            warnings.warn(f"bayesdrop: {reason}; falling back to 'batched'.", stacklevel=4)
        return BatchedEngine(model, inputs, select, reason, batch_dim)


def choose_engine(
    model: nn.Module,
    inputs: ModelInputs,
    name: str,
    plans: PlanSource,
    select: Select,
    batch_dim: int = 0,
) -> LoopEngine | BatchedEngine | CachedEngine:
    """The engine for ``name`` (``"auto"``: cached when it traces and has a trunk, else batched)."""
    if name == "loop":
        return LoopEngine(model, inputs, select, "forced")
    if name == "batched":
        return BatchedEngine(model, inputs, select, "forced", batch_dim)
    return _cached_or_batched(model, inputs, select, plans, name == "cached", batch_dim)
