"""Scoring a pool through :class:`bayesdrop.MCPredictor` and acquiring from it: :func:`acquire`.

The pool streams in batches; per-point methods keep one score per point (the sampled
probabilities of a batch are reduced and dropped at once), BatchBALD keeps the sampled
probabilities ``(S, N, C)`` it needs, drawn with consistent masks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bayesdrop._random import base_seed, derive_seed
from bayesdrop._validation import check_choice, check_positive_int, fail
from bayesdrop.active._batch import Acquisition, check_k, stochastic_batch, top_k
from bayesdrop.active._batchbald import batchbald
from bayesdrop.active._masks import consistent_masks
from bayesdrop.active._scores import SCORES, margin_from_probs, mean_std, random_scores
from bayesdrop.predict import ClassificationPrediction, MCPredictor

__all__ = ["METHODS", "SELECTIONS", "PoolScores", "acquire", "score_pool"]

#: The acquisition methods of :func:`score_pool` and :func:`acquire`: the per-point scores
#: (:data:`SCORES`) and ``"batchbald"``.
METHODS: tuple[str, ...] = (*SCORES, "batchbald")
#: How :func:`acquire` picks a batch from the scores: the top ``k`` or a stochastic batch.
SELECTIONS: tuple[str, ...] = ("top_k", "power", "softmax", "softrank")
Method = Literal[
    "bald", "max_entropy", "variation_ratio", "mean_std", "margin", "random", "batchbald"
]


@dataclass(frozen=True, eq=False)
class PoolScores:
    """What a pass over the pool kept.

    Attributes
    ----------
    method : str
    scores : Tensor (N,) or None
        Per-point scores (None for ``"batchbald"``).
    samples : Tensor (S, N, C) or None
        Sampled probabilities, kept for ``"batchbald"`` only.
    seconds : float
        Wall time of the pass.
    """

    method: str
    scores: Tensor | None
    samples: Tensor | None
    seconds: float


def pool_size(pool: object) -> int:
    if isinstance(pool, Tensor):
        if pool.dim() < 1:
            fail("pool", "a tensor with a batch dimension", "a 0-d tensor")
        return pool.shape[0]
    if isinstance(pool, Dataset) and hasattr(pool, "__len__"):
        return len(pool)
    fail("pool", "a tensor (N, ...) or a sized Dataset", type(pool).__name__, type_error=True)
    raise AssertionError  # unreachable


def _batches(pool: Tensor | Dataset, batch_size: int) -> Iterator[Tensor]:
    if isinstance(pool, Tensor):
        yield from pool.split(batch_size)
        return
    for batch in DataLoader(pool, batch_size=batch_size, shuffle=False):
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def _reduce(pred: ClassificationPrediction, method: str) -> Tensor:
    if method == "bald":
        return pred.mutual_information
    if method == "max_entropy":
        return pred.predictive_entropy
    if method == "variation_ratio":
        return pred.variation_ratio
    if method == "margin":
        return margin_from_probs(pred.probs)
    assert pred.samples is not None
    return mean_std(pred.samples)


def score_pool(
    model: nn.Module | None,
    pool: Tensor | Dataset,
    *,
    method: Method = "bald",
    num_samples: int = 20,
    batch_size: int = 256,
    seed: int | None = None,
    engine: Literal["auto", "loop", "batched", "cached", "hooked"] = "auto",
    consistent: bool = True,
    progress: bool = True,
) -> PoolScores:
    """Stream ``pool`` through :class:`bayesdrop.MCPredictor` and keep what ``method`` needs.

    Parameters
    ----------
    model : nn.Module
        A classifier with dropout, returning logits. Not used (may be None) for ``"random"``.
    pool : Tensor (N, ...) or Dataset
        The unlabelled inputs (a Dataset's items may be ``(x, y, ...)``; only ``x`` is used).
    method : str
        One of ``bayesdrop.active.METHODS``: ``"bald"``, ``"max_entropy"``,
        ``"variation_ratio"``, ``"mean_std"``, ``"margin"``, ``"random"``, ``"batchbald"``.
    num_samples, engine : int, str
        As in :func:`bayesdrop.mc_predict` (``"auto"`` runs the layers before the first dropout
        once per batch when the model traces).
    batch_size : int, default 256
        Points per forward batch; memory grows with ``batch_size * num_samples`` rows.
    seed : int, optional
        The call's seed: batch ``b`` samples from its own stream,
        ``derive_seed(seed, 0, b)``, and the consistent masks from ``derive_seed(seed, 1)``
        (see :ref:`seeding`); None draws the call's seed from PyTorch's global generator.
    consistent : bool, default True
        For ``"batchbald"``: draw the same dropout mask for every point of a sample
        (:func:`bayesdrop.active.consistent_masks`), as BatchBALD requires.
    progress : bool, default True
        A tqdm bar over the pool's batches.
    """
    check_choice("method", method, METHODS)
    batch_size = check_positive_int("batch_size", batch_size)
    num_points, start = pool_size(pool), time.perf_counter()
    if method == "random":
        return PoolScores(method, random_scores(num_points, seed=seed), None, 0.0)
    keep = method in ("batchbald", "mean_std")
    predictor = MCPredictor(
        model,  # type: ignore[arg-type]
        num_samples=num_samples,
        engine=engine,
        return_samples=keep,
        progress=False,
    )
    base = base_seed(seed)
    masks = (
        consistent_masks(predictor.model, num_samples=num_samples, seed=derive_seed(base, 1))
        if method == "batchbald" and consistent
        else nullcontext()
    )
    scores, samples = [], []
    total = -(-num_points // batch_size)
    bar = tqdm(_batches(pool, batch_size), total=total, disable=not progress, desc=method)
    with masks as bank:
        for b, x in enumerate(bar):
            predictor.seed = derive_seed(base, 0, b)
            if bank is not None:
                bank.start_batch(x.shape[0])
            pred = predictor.predict(x)
            assert isinstance(pred, ClassificationPrediction)
            if method == "batchbald":
                samples.append(pred.samples.cpu())  # type: ignore[union-attr]
            else:
                scores.append(_reduce(pred, method).cpu())
    seconds = time.perf_counter() - start
    if method == "batchbald":
        return PoolScores(method, None, torch.cat(samples, 1), seconds)
    return PoolScores(method, torch.cat(scores), None, seconds)


def acquire(
    model: nn.Module | None,
    pool: Tensor | Dataset,
    k: int,
    *,
    method: Method = "bald",
    selection: Literal["top_k", "power", "softmax", "softrank"] = "top_k",
    temperature: float = 1.0,
    num_samples: int = 20,
    num_configs: int = 1000,
    batch_size: int = 256,
    seed: int | None = None,
    engine: Literal["auto", "loop", "batched", "cached", "hooked"] = "auto",
    consistent: bool = True,
    progress: bool = True,
) -> Acquisition:
    """Choose ``k`` points of ``pool`` to label next: the one front door.

    Scores the pool with :func:`score_pool`, then selects: ``"batchbald"`` greedily by the
    joint mutual information (:func:`bayesdrop.active.batchbald`); per-point scores by
    ``selection`` -- ``"top_k"`` (ties broken at random with ``seed``) or a stochastic draw
    (``"power"``, ``"softmax"``, ``"softrank"`` at ``temperature``; see
    :func:`bayesdrop.active.stochastic_batch`).

    Returns
    -------
    Acquisition
        ``indices`` are positions in ``pool``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from bayesdrop.active import acquire
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))
    >>> pool = torch.randn(100, 4)
    >>> chosen = acquire(model, pool, 5, method="batchbald", seed=0, progress=False)
    >>> chosen.indices.shape, chosen.method
    (torch.Size([5]), 'batchbald')
    """
    check_choice("method", method, METHODS)
    check_choice("selection", selection, SELECTIONS)
    k = check_k(k, pool_size(pool))
    if method == "batchbald" and selection != "top_k":
        fail("selection", "'top_k' for method='batchbald'", repr(selection))
    # one seed, independent streams for the scoring and the selection (see :ref:`seeding`)
    seed = None if seed is None else base_seed(seed)
    scoring = None if seed is None else derive_seed(seed, 0)
    selecting = None if seed is None else derive_seed(seed, 1)
    scored = score_pool(
        model,
        pool,
        method=method,
        num_samples=num_samples,
        batch_size=batch_size,
        seed=scoring,
        engine=engine,
        consistent=consistent,
        progress=progress,
    )
    if scored.samples is not None:
        return batchbald(scored.samples, k, num_configs=num_configs, seed=selecting)
    assert scored.scores is not None
    if selection == "top_k":
        result = top_k(scored.scores, k, seed=selecting)
    else:
        result = stochastic_batch(
            scored.scores, k, mode=selection, temperature=temperature, seed=selecting
        )
    return Acquisition(
        result.indices, result.scores, method if selection == "top_k" else f"{method}+{selection}"
    )
