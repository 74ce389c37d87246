"""Monte-Carlo prediction inside a ``torch.distributed`` job (``torchrun``, DDP; gloo or NCCL).

Two ways of sharing the work, both with PyTorch's own collectives:

* data-parallel over a data set: each rank predicts the shard its ``DistributedSampler`` gives
  it (:meth:`bayesdrop.MCPredictor.predict`), and the shards are gathered back into data-set
  order, without the rows the sampler repeats to even out the shards;
* sample-parallel over one batch: the ``S`` samples are split across ranks
  (:func:`mc_predict_distributed`), each rank drawing its share from its own random stream.

Random streams: with ``seed=s`` rank ``r`` draws from a stream seeded with a hash of ``(s, r)``,
so the result is reproducible for a given seed and world size, and no rank repeats another
rank's masks. Before any data moves, the ranks exchange their options and their status, so a
mismatch (``num_samples``, ``seed``, ...) or a rank whose model raised is reported on every rank
instead of leaving the others waiting in a collective.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch import Tensor

from bayesdrop._distributed import (
    DistributedContext,
    check_same_options,
    context,
    gather_tensor,
    run_on_every_rank,
)
from bayesdrop._random import derive_seed
from bayesdrop._validation import fail
from bayesdrop.exceptions import UnshardedDataWarning

__all__ = ["mc_predict_distributed", "rank_seed"]


def rank_seed(seed: int, rank: int) -> int:
    """A seed for rank ``rank`` derived from ``seed`` (``numpy.random.SeedSequence``; the one
    seeding scheme, see :ref:`seeding`).

    Examples
    --------
    >>> from bayesdrop.predict.distributed import rank_seed
    >>> rank_seed(0, 0) == rank_seed(0, 0), rank_seed(0, 0) == rank_seed(0, 1)
    (True, False)
    """
    return derive_seed(seed, rank)


def _distributed_sampler(data: object) -> Any:
    from torch.utils.data.distributed import DistributedSampler

    for sampler in (getattr(data, "sampler", None), getattr(data, "batch_sampler", None)):
        sampler = getattr(sampler, "sampler", sampler)  # a BatchSampler wraps the sampler
        if isinstance(sampler, DistributedSampler):
            return sampler
    return None


def local_positions(data: object, ctx: DistributedContext) -> tuple[Tensor, Tensor] | None:
    """Data-set indices of this rank's rows in loader order, and which rows are padding.

    ``DistributedSampler`` lays the (shuffled) indices out, repeats the first ones to make the
    total divisible by the world size, and gives rank ``r`` the positions ``r, r + W, ...``:
    a row is padding when its position is at or past the data-set size. ``None`` when the
    loader has no ``DistributedSampler`` (a warning says every rank then predicts everything).
    """
    sampler = _distributed_sampler(data)
    if sampler is None:
        warnings.warn(
            "bayesdrop: MCPredictor.predict runs in a distributed job but the data has no "
            "DistributedSampler, so every rank predicts every batch. Pass "
            "DataLoader(..., sampler=DistributedSampler(dataset)) to shard the data.",
            UnshardedDataWarning,
            stacklevel=3,
        )
        return None
    indices = torch.tensor(list(iter(sampler)), dtype=torch.long)
    positions = sampler.rank + sampler.num_replicas * torch.arange(len(indices))
    return indices, positions >= len(sampler.dataset)  # type: ignore[arg-type]


def _data_fields(pred: object) -> list[tuple[str, int]]:
    """(field, data dimension) of the per-point tensors of a prediction."""
    out = []
    for f in dataclasses.fields(pred):  # type: ignore[arg-type]
        value = getattr(pred, f.name)
        if isinstance(value, Tensor) and value.dim() > 0:
            out.append((f.name, 1 if f.name in ("samples", "log_variance_samples") else 0))
    return out


def gather_prediction(
    pred: Any, ctx: DistributedContext, positions: tuple[Tensor, Tensor], to_all: bool
) -> Any:
    """The ranks' predictions without the sampler's padding, joined in data-set order on every
    rank (``to_all``) or on rank 0 (None elsewhere)."""
    index, pad = (p[: _leading(pred).shape[0]] for p in positions)
    local = drop_padding(pred, positions)
    device = _leading(pred).device
    order = torch.cat(gather_tensor(ctx, index[~pad].to(device), 0, to_all)).argsort()
    fields = {}
    for name, dim in _data_fields(local):
        joined = torch.cat(gather_tensor(ctx, getattr(local, name), dim, to_all), dim)
        fields[name] = joined.index_select(dim, order.to(joined.device))
    if not to_all and ctx.rank != 0:
        return None
    return dataclasses.replace(local, **fields)


def _leading(pred: Any) -> Tensor:
    """The per-point tensor every prediction has: ``probs`` or ``mean``."""
    probs = getattr(pred, "probs", None)
    return probs if probs is not None else pred.mean


def drop_padding(pred: Any, positions: tuple[Tensor, Tensor] | None) -> Any:
    """This rank's prediction without the rows ``DistributedSampler`` repeated."""
    if positions is None:
        return pred
    keep = (~positions[1][: _leading(pred).shape[0]]).nonzero()[:, 0]
    fields = {}
    for name, dim in _data_fields(pred):
        value = getattr(pred, name)
        fields[name] = value.index_select(dim, keep.to(value.device))
    return dataclasses.replace(pred, **fields)


def _split_count(total: int, ctx: DistributedContext) -> int:
    return total // ctx.world_size + (1 if ctx.rank < total % ctx.world_size else 0)


def mc_predict_distributed(
    model: torch.nn.Module,
    x: Any,
    *,
    num_samples: int = 50,
    seed: int | None = None,
    group: Any = None,
    **options: Any,
) -> Any:
    r"""Monte-Carlo prediction of one batch with the samples split across the ranks.

    Rank :math:`r` of :math:`W` draws :math:`S_r = \lfloor S/W \rfloor` samples (one more for
    the first :math:`S \bmod W` ranks) from its own stream, and the sampled outputs are
    gathered with ``torch.distributed.all_gather``, so every rank returns the same prediction
    from all :math:`S` samples: the same read-outs as :func:`bayesdrop.mc_predict` with
    ``num_samples=S`` (equal in distribution; the masks come from other streams). Useful when
    :math:`S` is large and the batch small. Outside a distributed job it is
    :func:`bayesdrop.mc_predict`.

    Parameters
    ----------
    model, x
        As in :func:`bayesdrop.mc_predict`; every rank passes the same ``x``.
    num_samples : int
        :math:`S`, the total over all ranks (a fixed number: ``"auto"`` is not supported).
    seed : int, optional
        The job's seed; rank :math:`r` uses :func:`rank_seed` ``(seed, r)``.
    group : ProcessGroup, optional
        The ``torch.distributed`` group (default: the world).
    **options
        ``task``, ``tau``, ``engine``, ``chunk_size``, ``max_memory``, ``autocast``,
        ``output``, ``class_dim``, ``batch_dim`` as in :func:`bayesdrop.mc_predict`.

    Returns
    -------
    ClassificationPrediction or RegressionPrediction
        Without the samples unless ``return_samples=True``.

    Examples
    --------
    Outside a distributed job this is ``mc_predict``:

    >>> import torch
    >>> from torch import nn
    >>> from bayesdrop.predict.distributed import mc_predict_distributed
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    >>> pred = mc_predict_distributed(model, torch.randn(5, 4), num_samples=10, seed=0)
    >>> pred.num_samples, tuple(pred.probs.shape)
    (10, (5, 3))
    """
    from bayesdrop.predict._api import mc_predict
    from bayesdrop.predict._results import ClassificationPrediction, RegressionPrediction

    ctx = context(group)
    if not ctx.active:
        return mc_predict(model, x, num_samples=num_samples, seed=seed, **options)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        fail("num_samples", "a positive integer (the total over all ranks)", repr(num_samples))
    keep = bool(options.pop("return_samples", False))
    check_same_options(ctx, {"num_samples": num_samples, "seed": seed, "options": repr(options)})
    base = seed if seed is not None else int(torch.randint(0, 2**62, ()))
    count = max(1, _split_count(num_samples, ctx))  # S < W: every rank draws one at least

    def local() -> Any:
        return mc_predict(
            model,
            x,
            num_samples=count,
            seed=rank_seed(base, ctx.rank),
            return_samples=True,
            **options,
        )

    pred = run_on_every_rank(ctx, local)
    samples = torch.cat(gather_tensor(ctx, pred.samples, 0, True))
    meta = {"engine": pred.engine, "engine_reason": pred.engine_reason}
    joined: Any
    if isinstance(pred, ClassificationPrediction):
        joined = ClassificationPrediction.from_samples(samples)
    else:
        log_var = pred.log_variance_samples
        if log_var is not None:
            log_var = torch.cat(gather_tensor(ctx, log_var, 0, True))
        joined = RegressionPrediction.from_samples(
            samples, tau=pred.tau, log_variance_samples=log_var
        )
    joined = dataclasses.replace(joined, **meta)
    if not keep:
        joined = dataclasses.replace(joined, samples=None)
        if isinstance(joined, RegressionPrediction):
            joined = dataclasses.replace(joined, log_variance_samples=None)
    return joined
