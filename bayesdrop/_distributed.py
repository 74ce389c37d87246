"""The one private layer between bayesdrop and ``torch.distributed``.

The predictor, the streaming metrics, the reports and conformal calibration all talk to a
process group through these helpers: the context (rank, world size, group), the exchange of
options and of every rank's status before data moves (so a mismatch, or a rank that raised, is
reported on every rank instead of leaving the others waiting in a collective), gathers of
tensors whose lengths differ across ranks, and sum reductions. Nothing here knows about
Monte-Carlo prediction or calibration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from bayesdrop._validation import fail
from bayesdrop.exceptions import BayesdropError

__all__ = [
    "DistributedContext",
    "all_gather_object",
    "all_reduce_sum",
    "check_same_options",
    "context",
    "gather_tensor",
    "run_on_every_rank",
]


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """The process group this process predicts in (``world_size == 1``: not distributed).

    Attributes
    ----------
    rank : int
        This process's rank in ``group``.
    world_size : int
        Number of processes in ``group``.
    group : ProcessGroup or None
        The ``torch.distributed`` process group (None: the default group).
    """

    rank: int = 0
    world_size: int = 1
    group: Any = None

    @property
    def active(self) -> bool:
        return self.world_size > 1


def context(group: Any = None) -> DistributedContext:
    """The current ``torch.distributed`` process group, or a single-process context."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedContext()
    return DistributedContext(dist.get_rank(group=group), dist.get_world_size(group=group), group)


def all_gather_object(ctx: DistributedContext, value: object) -> list[object]:
    out: list[object] = [None] * ctx.world_size
    torch.distributed.all_gather_object(out, value, group=ctx.group)
    return out


def check_same_options(ctx: DistributedContext, options: dict[str, object]) -> None:
    """Every rank must predict with the same options; a mismatch raises on every rank."""
    every = all_gather_object(ctx, options)
    for key in options:
        values = [o[key] for o in every]  # type: ignore[index]
        if any(v != values[0] for v in values):
            listing = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
            fail(
                key,
                "the same on every rank of the distributed job",
                listing,
                "Pass the same options (and seed) on every rank.",
            )


def run_on_every_rank(ctx: DistributedContext, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` here, then tell every rank whether every rank succeeded.

    A rank whose ``fn`` raised re-raises its own exception; the others raise a
    :class:`bayesdrop.BayesdropError` naming it, instead of waiting for it in the next
    collective.
    """
    try:
        result, error = fn(), None
    except Exception as exc:  # reported to the other ranks, then re-raised
        result, error = None, exc
    status = None if error is None else f"{type(error).__name__}: {str(error)[:300]}"
    every = all_gather_object(ctx, status)
    if error is not None:
        raise error
    failed = [(r, s) for r, s in enumerate(every) if s is not None]
    if failed:
        listing = "; ".join(f"rank {r} raised {s}" for r, s in failed)
        raise BayesdropError(f"bayesdrop: the distributed prediction failed: {listing}")
    return result


def gather_tensor(ctx: DistributedContext, t: Tensor, dim: int, to_all: bool) -> list[Tensor]:
    """Every rank's ``t`` (rows along ``dim`` may differ: padded to the longest, then cut)."""
    rows = torch.tensor([t.shape[dim]], device=t.device)
    counts = [torch.zeros_like(rows) for _ in range(ctx.world_size)]
    torch.distributed.all_gather(counts, rows, group=ctx.group)
    longest = int(max(int(c) for c in counts))
    pad = [0, 0] * (t.dim() - dim - 1) + [0, longest - t.shape[dim]]
    padded = torch.nn.functional.pad(t, pad).contiguous() if longest > t.shape[dim] else t
    parts = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    if to_all:
        torch.distributed.all_gather(parts, padded.contiguous(), group=ctx.group)
    else:
        dst = torch.distributed.get_global_rank(ctx.group, 0) if ctx.group is not None else 0
        gather_list = parts if ctx.rank == 0 else None
        torch.distributed.gather(padded.contiguous(), gather_list, dst=dst, group=ctx.group)
    return [p.narrow(dim, 0, int(c)) for p, c in zip(parts, counts, strict=True)]


def all_reduce_sum(ctx: DistributedContext, *tensors: Tensor) -> None:
    """Sum each tensor over the ranks of ``ctx``, in place (nothing outside a distributed
    job)."""
    if not ctx.active:
        return
    for t in tensors:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM, group=ctx.group)
