r"""Choosing a batch from per-point scores: top-k and stochastic batch acquisition.

Stochastic batch acquisition (Kirsch, Farquhar, Atighehchian, Jesson, Branchaud-Charron & Gal
2023) draws ``k`` points without replacement with probabilities that grow with the score, at
temperature :math:`T = 1/\beta`, with :math:`r_i` the rank of point :math:`i` (1 = highest):

.. math::

    \text{softmax: } p_i \propto e^{s_i / T}, \qquad
    \text{power: } p_i \propto s_i^{1/T}, \qquad
    \text{softrank: } p_i \propto r_i^{-1/T} .

The draw uses the Gumbel-top-k trick: the ``k`` largest :math:`\log p_i + G_i`,
:math:`G_i \sim \text{Gumbel}(0, 1)`, are a sample without replacement.

Points of weight zero (a score of 0 with ``mode="power"``, ``-inf`` with ``"softmax"``) are
drawn only once every point of positive weight is in the batch, and then uniformly at random
among themselves (never in index order): the limit of giving them a vanishing equal weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from bayesdrop._random import base_seed, generator
from bayesdrop._validation import (
    check_choice,
    check_positive,
    check_positive_int,
    check_tensor,
    fail,
)

__all__ = ["STOCHASTIC_MODES", "Acquisition", "check_k", "stochastic_batch", "top_k"]

#: The stochastic batch acquisitions of :func:`stochastic_batch` (Kirsch et al., 2023).
STOCHASTIC_MODES: tuple[str, ...] = ("power", "softmax", "softrank")


@dataclass(frozen=True, eq=False)
class Acquisition:
    """The points chosen for labelling, in the order they were chosen.

    Attributes
    ----------
    indices : LongTensor (k,)
        Positions in the pool.
    scores : Tensor (k,)
        The score of each pick: the point's own score for top-k and stochastic acquisition;
        for BatchBALD the joint mutual information of the batch up to and including it.
    method : str
        What chose them, e.g. ``"bald"`` or ``"batchbald"``.
    """

    indices: Tensor
    scores: Tensor
    method: str = ""


def check_k(k: object, num_points: int) -> int:
    """A batch size in ``1..num_points``."""
    k = check_positive_int("k", k)
    if k > num_points:
        fail(
            "k",
            f"at most the pool size ({num_points})",
            k,
            "Acquire fewer points, or stop: the pool is almost exhausted.",
        )
    return k


def check_scores(scores: object) -> Tensor:
    scores = check_tensor("scores", scores)
    if scores.dim() != 1 or not scores.is_floating_point():
        fail(
            "scores",
            "a floating tensor of shape (N,)",
            f"shape {tuple(scores.shape)} and dtype {scores.dtype}",
        )
    if bool(torch.isnan(scores).any()):
        fail("scores", "free of NaN", f"{int(torch.isnan(scores).sum())} NaN value(s)")
    return scores


def _generator(seed: int | None) -> torch.Generator:
    """The call's private stream (see :ref:`seeding`): seeded with ``seed``, or with one draw
    from PyTorch's global generator for None."""
    return generator(base_seed(seed))


def top_k(scores: Tensor, k: int, *, seed: int | None = None) -> Acquisition:
    """The ``k`` highest scores; ties broken at random (``seed``) or by position (None).

    Parameters
    ----------
    scores : Tensor (N,)
    k : int
        In ``1..N``.
    seed : int, optional
        Breaks ties (frequent for the variation ratio, whose values are multiples of
        :math:`1/S`) in a random order; None keeps the lower position first.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.active import top_k
    >>> top_k(torch.tensor([0.1, 0.9, 0.5, 0.7]), 2).indices
    tensor([1, 3])
    """
    scores = check_scores(scores)
    k = check_k(k, scores.shape[0])
    order = torch.arange(scores.shape[0])
    if seed is not None:
        order = torch.randperm(scores.shape[0], generator=_generator(seed))
    ranked = torch.sort(scores.cpu()[order], descending=True, stable=True).indices[:k]
    indices = order[ranked]
    return Acquisition(indices=indices, scores=scores.cpu()[indices], method="top_k")


def _log_weights(scores: Tensor, mode: str) -> Tensor:
    """Log-weights at temperature 1 up to a constant, at most 0 (shifted by the largest)."""
    scores = scores.double()
    if mode in ("softmax", "power") and bool(torch.isposinf(scores).any()):
        fail(
            "scores",
            f"below +inf for mode={mode!r} (an infinite weight is no distribution)",
            f"{int(torch.isposinf(scores).sum())} +inf value(s)",
            "Use mode='softrank', or top_k.",
        )
    if mode == "softmax":
        top = scores.max()
        return scores - top if bool(torch.isfinite(top)) else scores
    if mode == "power":
        if bool((scores < 0).any()):
            fail(
                "scores",
                "non-negative for mode='power'",
                f"a minimum of {scores.min().item():.3g}",
                "Use mode='softmax' or 'softrank' for signed scores.",
            )
        log_s = torch.log(scores)
        top = log_s.max()
        return log_s - top if bool(torch.isfinite(top)) else log_s
    ranks = torch.empty_like(scores)
    ranks[torch.argsort(scores, descending=True, stable=True)] = torch.arange(
        1, scores.shape[0] + 1, dtype=scores.dtype
    )
    return -torch.log(ranks)


def stochastic_batch(
    scores: Tensor,
    k: int,
    *,
    mode: Literal["power", "softmax", "softrank"] = "power",
    temperature: float = 1.0,
    seed: int | None = None,
) -> Acquisition:
    r"""Draw ``k`` points without replacement, more likely the higher their score.

    Parameters
    ----------
    scores : Tensor (N,)
        Per-point scores, e.g. :func:`bald` (``mode="power"`` needs them non-negative).
    k : int
        In ``1..N``. When fewer than ``k`` points have positive weight, the batch is every one of
        them and the rest drawn uniformly from the weightless points (module docstring).
    mode : {"power", "softmax", "softrank"}, default "power"
        The sampling distribution (module docstring); the paper recommends power for BALD.
    temperature : float, default 1.0
        :math:`T = 1/\beta`; towards 0 the draw approaches top-k, large values approach
        uniform random acquisition.
    seed : int, optional
        Seeds the draw (the global random state is not used).

    References
    ----------
    Kirsch et al. (2023), "Stochastic Batch Acquisition: A Simple Baseline for Deep Active
    Learning", TMLR.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.active import stochastic_batch
    >>> scores = torch.tensor([0.0, 0.0, 5.0, 0.0])
    >>> stochastic_batch(scores, 1, mode="power", seed=0).indices  # only point 2 has weight
    tensor([2])
    >>> stochastic_batch(scores, 3, mode="power", seed=0).indices  # then two weightless at random
    tensor([2, 0, 3])
    >>> s = torch.linspace(0.0, 1.0, 100)
    >>> a = stochastic_batch(s, 5, mode="softrank", seed=3)
    >>> b = stochastic_batch(s, 5, mode="softrank", seed=3)
    >>> torch.equal(a.indices, b.indices), len(set(a.indices.tolist()))
    (True, 5)
    """
    scores = check_scores(scores).cpu()
    k = check_k(k, scores.shape[0])
    check_choice("mode", mode, STOCHASTIC_MODES)
    temperature = check_positive("temperature", temperature)
    log_w = _log_weights(scores, mode)
    uniform = torch.rand(scores.shape[0], generator=_generator(seed), dtype=torch.float64)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-300, 1.0 - 1e-16)))
    weightless = torch.isneginf(log_w)
    # log_w / T + G, or T times it for T < 1 (same order): neither term overflows
    keys = log_w / temperature + gumbel if temperature >= 1 else log_w + temperature * gumbel
    # positive weights by Gumbel-top-k first, then the weightless ones in a random order
    keys = torch.where(weightless, gumbel, keys)
    order = torch.sort(keys, descending=True, stable=True).indices
    order = order[torch.sort(weightless[order].to(torch.uint8), stable=True).indices]
    indices = order[:k]
    return Acquisition(indices=indices, scores=scores[indices], method=f"stochastic_{mode}")
