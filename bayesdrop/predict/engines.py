"""The three ways of drawing Monte-Carlo samples: loop, batched, cached.

Every engine's :meth:`sample` returns the model outputs of ``k`` samples shaped ``(k, N, ...)``
(a tuple of such tensors for a model returning a tuple). Inputs and outputs are batch-first:
dimension 0 of ``x`` and of every output is the data dimension.
"""

from __future__ import annotations

import warnings
import weakref

import torch
from torch import Tensor, nn

from bayesdrop._validation import fail
from bayesdrop.nn.sampling import is_stochastic, sampling
from bayesdrop.predict.cached import CachedPlan, CacheUnavailable, build_plan, contains_size

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


def repeat_batch(t: Tensor, k: int) -> Tensor:
    """``(N, ...) -> (k * N, ...)``, sample-major: rows ``s*N .. s*N+N-1`` are sample ``s``."""
    if k == 1:
        return t
    return t.unsqueeze(0).expand(k, *t.shape).reshape(k * t.shape[0], *t.shape[1:])


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
            f"batch-first: an output with {k} * {n} rows for {k} repeats of a batch of {n}",
            got,
            "Repeating the batch needs outputs whose first dimension is the batch; "
            "use engine='loop' for other models.",
        )
    return output.view(k, n, *output.shape[1:])


def _stack(outputs: list[object]) -> Output:
    first = outputs[0]
    if isinstance(first, (tuple, list)):
        return tuple(torch.stack([o[i] for o in outputs]) for i in range(len(first)))  # type: ignore[index]
    return torch.stack(outputs)  # type: ignore[arg-type]


class LoopEngine:
    """``k`` forward passes of the whole model."""

    name = "loop"

    def __init__(self, model: nn.Module, x: Tensor, reason: str = "") -> None:
        self.model, self.x, self.reason = model, x, reason

    def sample(self, k: int) -> Output:
        return _stack([self.model(self.x) for _ in range(k)])


class BatchedEngine:
    """One forward pass of the batch repeated ``k`` times."""

    name = "batched"

    def __init__(self, model: nn.Module, x: Tensor, reason: str = "") -> None:
        self.model, self.x, self.reason = model, x, reason

    def sample(self, k: int) -> Output:
        return split_samples(self.model(repeat_batch(self.x, k)), k, self.x.shape[0])


class CachedEngine:
    """The trunk once at batch ``N``, the head on boundary values repeated ``k`` times."""

    name = "cached"

    def __init__(
        self, model: nn.Module, plan: CachedPlan, x: Tensor, reason: str = "", validate: bool = True
    ) -> None:
        self.model, self.plan, self.n, self.reason = model, plan, x.shape[0], reason
        try:
            values = plan.trunk(x)
        except Exception as exc:  # the model's own errors resurface in the fallback engine
            raise CacheUnavailable(f"the trunk failed ({type(exc).__name__}: {exc})") from exc
        self.values = values if isinstance(values, tuple) else (values,)
        self.repeat = []
        for name, value in zip(plan.boundary, self.values, strict=True):
            if isinstance(value, Tensor):
                self.repeat.append(value.dim() > 0 and value.shape[0] == self.n)
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
        return [(repeat_batch(v, k) if k > 1 else v.clone()) if r else v for v, r in pairs]

    def _validate(self) -> None:
        """Without sampling, both halves of a 2-repeat head pass must agree row for row."""
        try:
            with sampling(self.model, enabled=False):
                out = split_samples(self.plan.head(*self._inputs(2)), 2, self.n)
        except Exception as exc:
            raise CacheUnavailable(
                f"the head failed on a repeated batch ({type(exc).__name__}: {str(exc)[:160]})"
            ) from exc
        for part in out if isinstance(out, tuple) else (out,):
            if not torch.allclose(part[0], part[1], rtol=1e-4, atol=1e-5, equal_nan=True):
                raise CacheUnavailable("the head mixes rows of the repeated batch")

    def sample(self, k: int) -> Output:
        return split_samples(self.plan.head(*self._inputs(k)), k, self.n)


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
    model: nn.Module, x: Tensor, plans: PlanSource, forced: bool
) -> CachedEngine | BatchedEngine:
    try:
        plan = plans.get()
        if plan.trunk_ops == 0 and not forced:
            return BatchedEngine(model, x, "auto: no computation precedes the first dropout")
        reason = "forced" if forced else "auto: the model traces"
        engine = CachedEngine(model, plan, x, reason, validate=not plans.validated)
        plans.validated = True
        return engine
    except CacheUnavailable as exc:
        plans.invalidate(exc)
        reason = f"cached engine unavailable: {exc}"
        if forced:
            warnings.warn(f"bayesdrop: {reason}; falling back to 'batched'.", stacklevel=4)
        return BatchedEngine(model, x, reason)


def choose_engine(
    model: nn.Module, x: Tensor, name: str, plans: PlanSource
) -> LoopEngine | BatchedEngine | CachedEngine:
    """The engine for ``name`` (``"auto"``: cached when it traces and has a trunk, else batched)."""
    if name == "loop":
        return LoopEngine(model, x, "forced")
    if name == "batched":
        return BatchedEngine(model, x, "forced")
    return _cached_or_batched(model, x, plans, forced=name == "cached")
