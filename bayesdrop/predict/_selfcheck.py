"""The engines' first-call check: are the repeats of one pass independent samples?

A batched or cached pass holds ``k`` samples in one call of the model. That is right only for
noise drawn per element or per row of the batch. Noise drawn once per call (Hugging Face
LayerDrop's ``torch.rand([])``, ``StochasticDepth(mode="batch")``, dropout on a weight) would be
shared by the ``k`` samples. Known kinds carry their scope (:func:`bayesdrop.nn.noise_scope`);
the rest is found here, on the first call for a model: the pass of ``k`` samples runs under a
recorder of random draws (:mod:`bayesdrop.nn._noise_calls`); draws known to be per row need
nothing more (made inside noise modules whose scope is known by construction, such as torch's
dropout modules and timm's ``DropPath``, or by ``F.dropout`` and its kin, on the rows of the
repeated batch and not on a weight), and for any other draw a dropped pass of one sample is
recorded too, and

* a draw whose size does not grow with the number of repeats is drawn once per call, and
* ``k`` repeats that come out identical share their noise.

Either sends ``auto`` to one sample per pass, with the reason in ``engine_reason``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bayesdrop.nn._noise_calls import PER_ELEMENT_FUNCTIONS, Draw, draw_rows, functional_noise
from bayesdrop.nn._sampling import scope_is_built_in

__all__ = ["ScopeCheck", "check_scope", "scope_check_skipped", "shared_draws", "skip_scope_check"]

_SKIPPED = [0]


@contextmanager
def skip_scope_check() -> Iterator[None]:
    """No first-call check inside the block: for noise whose per-sample draws are known by
    construction (the mask banks of :func:`bayesdrop.active._masks.consistent_masks`, whose
    sample counter the check's extra pass would advance)."""
    _SKIPPED[0] += 1
    try:
        yield
    finally:
        _SKIPPED[0] -= 1


def scope_check_skipped() -> bool:
    """Whether a :func:`skip_scope_check` block is open."""
    return _SKIPPED[0] > 0


@dataclass(frozen=True)
class ScopeCheck:
    """The output of the checked pass of ``k`` samples and, when its repeats are not
    independent samples, why."""

    output: object
    reason: str | None


def shared_draws(single: list[Draw], repeated: list[Draw], k: int) -> list[tuple[str, str]]:
    """``(module, function)`` of draws whose size is the same in a pass of one sample and in a
    pass of ``k`` samples (a per-row draw grows ``k``-fold)."""
    one: dict[tuple[str, str], set[int]] = defaultdict(set)
    many: dict[tuple[str, str], set[int]] = defaultdict(set)
    for d in single:
        one[(d.module, d.function)].add(d.numel)
    for d in repeated:
        many[(d.module, d.function)].add(d.numel)
    found = []
    for key, sizes in many.items():
        base = one.get(key, set())
        for size in sizes & base:
            scaled = size % k == 0 and size // k in base and size * k in sizes
            if not scaled:
                found.append(key)
                break
    return found


def _identical(output: object, k: int) -> bool:
    """Whether every one of the ``k`` samples (the leading dimension) equals the first, in one
    comparison per output tensor."""
    parts = output if isinstance(output, tuple) else (output,)
    with torch._C.DisableTorchFunction():  # plain comparisons: not through sampling's mode
        return all(
            isinstance(p, Tensor) and p.shape[0] == k and torch.equal(p, p[:1].expand_as(p))
            for p in parts
        )


def _unchecked_draws(draws: list[Draw], rows: int) -> list[Draw]:
    """The draws whose scope the check must measure. Known to be per row: a draw made inside a
    noise module whose per-row scope is known by construction (``nn.Dropout``, timm's
    ``DropPath``, ...) or by a function that draws per element of its input (``F.dropout``
    and its kin, attention dropout in ``scaled_dot_product_attention``), whose result has a
    dimension of a multiple of ``rows`` (the rows of the repeated batch) and whose input is not
    one of the model's parameters or buffers. Dropout applied to a weight fails the last two
    and is measured."""
    known: dict[type | None, bool] = {None: False}
    for d in draws:
        if d.owner is not None and d.owner not in known:
            known[d.owner] = scope_is_built_in(d.owner)

    def per_row(d: Draw) -> bool:
        if d.on_state or rows < 2 or not any(s and s % rows == 0 for s in d.shape):
            return False
        return known[d.owner] or d.function in PER_ELEMENT_FUNCTIONS

    return [d for d in draws if not per_row(d)]


def _draws_known_per_row(engine) -> bool:
    """Whether every random draw of an engine's pass is known from a graph to be made by
    noise modules of known scope, per element of what they are given (else the pass is
    recorded). The graph is the cached engine's head, or the trace of the whole model that a
    batched engine was chosen after (no trunk before the first noise; its trunk graph counts
    too); each half was read when its plan was built
    (:func:`bayesdrop.predict._cached.draws_known`).
    Global module hooks (user code around every module call) send the pass to the recorder.
    Whether each draw has the rows of the repeated batch is confirmed when the pass runs
    (:func:`bayesdrop.nn._noise_calls.draw_rows`)."""
    plan = getattr(engine, "plan", None)
    if plan is None:
        return False
    hooks = nn.modules.module
    if hooks._global_forward_hooks or hooks._global_forward_pre_hooks:
        return False
    return plan.head_draws_known and (engine.name == "cached" or plan.trunk_draws_known)


def check_scope(model: nn.Module, engine, k: int, n: int, fork) -> ScopeCheck:
    """Run ``engine.sample(k)`` under the draw recorder and, when some draws come from outside
    the noise modules whose scope is known, ``engine.sample(1)`` on a forked random stream
    (``fork()``, its output dropped, so that the samples drawn do not depend on whether the
    check ran) to compare their sizes; ``n`` is the number of rows of the batch. A pass whose
    draws are all known from a graph to come from noise modules given the batch
    (:func:`_draws_known_per_row`) is not recorded: the sampling mode confirms that
    each output has the repeated batch's rows, and the repeats are compared."""
    identical = f"the {k} repeats of one pass came out identical (their noise is shared)"
    many: object = None
    if _draws_known_per_row(engine):
        with draw_rows(k * n) as rows:
            many = engine.sample(k)
        if all(rows):  # every draw on a tensor with the repeated batch's rows
            return ScopeCheck(output=many, reason=identical if _identical(many, k) else None)
    if many is None:
        with functional_noise(record=True, model=model, force=False) as reck:
            many = engine.sample(k)
    else:  # the watched pass gave the samples; the same pass again, recorded, on a fork
        with fork(), functional_noise(record=True, model=model, force=False) as reck:
            engine.sample(k)
    unchecked = _unchecked_draws(reck.draws, k * n)
    shared: list[tuple[str, str]] = []
    if unchecked:
        with fork(), functional_noise(record=True, model=model, force=False) as rec1:
            engine.sample(1)
        shared = shared_draws(rec1.draws, unchecked, k)
    reason = None
    if shared:
        names = ", ".join(f"`{m}` ({f})" for m, f in shared[:4])
        reason = (
            f"the {k} repeats of one pass shared the draws of {names}: noise drawn once per "
            "call (LayerDrop, batch-mode stochastic depth, dropout on a weight)"
        )
    elif _identical(many, k):
        reason = identical
    return ScopeCheck(output=many, reason=reason)
