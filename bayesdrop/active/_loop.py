"""The labelled / pool split and a loop helper that leaves training to the caller."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from bayesdrop._random import derive_seed
from bayesdrop._validation import check_indices, check_positive_int, check_tensor, fail
from bayesdrop.active._pool import acquire

__all__ = ["ActiveSplit", "LearningCurve", "run_active_learning"]


class ActiveSplit:
    """Which points of a data set of ``num_points`` are labelled; the others form the pool.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.active import ActiveSplit
    >>> split = ActiveSplit.balanced(torch.tensor([0, 0, 1, 1, 2, 2]), per_class=1, seed=0)
    >>> split.num_labelled, split.num_pool
    (3, 3)
    >>> new = split.label_pool_positions(torch.tensor([0]))  # first pool point
    >>> split.num_labelled, int(new[0]) in split.labelled.tolist()
    (4, True)
    """

    def __init__(self, num_points: int, labelled: Sequence[int] | Tensor = ()) -> None:
        self.num_points = check_positive_int("num_points", num_points)
        self._mask = torch.zeros(self.num_points, dtype=torch.bool)
        self._order: list[int] = []
        self._label(labelled, "labelled")

    @classmethod
    def balanced(cls, targets: Tensor, *, per_class: int, seed: int = 0) -> ActiveSplit:
        """Start with ``per_class`` random labelled points of every class of ``targets``."""
        targets = check_tensor("targets", targets)
        per_class = check_positive_int("per_class", per_class)
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for c in torch.unique(targets):
            members = torch.nonzero(targets == c).flatten()
            if len(members) < per_class:
                fail("per_class", f"at most {len(members)} (class {int(c)})", per_class)
            chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
        return cls(len(targets), torch.cat(chosen))

    @property
    def labelled(self) -> Tensor:
        """Labelled indices, in the order they were labelled."""
        return torch.tensor(self._order, dtype=torch.long)

    @property
    def pool(self) -> Tensor:
        """Unlabelled indices, ascending."""
        return torch.nonzero(~self._mask).flatten()

    @property
    def num_labelled(self) -> int:
        return len(self._order)

    @property
    def num_pool(self) -> int:
        return self.num_points - len(self._order)

    def label(self, indices: Sequence[int] | Tensor) -> Tensor:
        """Move data-set ``indices`` from the pool to the labelled set; returns them.

        Indices are integers in ``[0, num_points)``: a float (even ``2.0``) is an error, not
        truncated, and a negative index is an error, not counted from the end.
        """
        return self._label(indices, "indices")

    def _label(self, indices: Sequence[int] | Tensor, name: str) -> Tensor:
        indices = check_indices(name, indices, self.num_points)
        if len(torch.unique(indices)) != len(indices) or bool(self._mask[indices].any()):
            fail(name, "distinct pool indices (not yet labelled)", indices.tolist()[:8])
        self._mask[indices] = True
        self._order.extend(indices.tolist())
        return indices

    def label_pool_positions(self, positions: Sequence[int] | Tensor) -> Tensor:
        """Label the points at ``positions`` of :attr:`pool`; returns their data-set indices.

        Positions are integers in ``[0, num_pool)``, as for :meth:`label`.
        """
        return self.label(self.pool[check_indices("positions", positions, self.num_pool)])


@dataclass(frozen=True, eq=False)
class LearningCurve:
    """Evaluation after every round: ``values[i]`` with ``num_labelled[i]`` labels.

    Attributes
    ----------
    num_labelled : tuple of int
        The labelled-set size at each evaluation (the first is the initial set).
    values : tuple of float
        What ``evaluate`` returned at each evaluation (e.g. test accuracy).
    acquired : tuple of Tensor
        ``acquired[i]``: the data-set indices added in round ``i + 1``.
    acquire_seconds : tuple of float
        The time spent scoring and selecting in each round.
    """

    num_labelled: tuple[int, ...]
    values: tuple[float, ...]
    acquired: tuple[Tensor, ...]
    acquire_seconds: tuple[float, ...]

    def first_reaching(self, threshold: float) -> int | None:
        """The smallest labelled-set size whose value is at least ``threshold`` (or None)."""
        for n, v in zip(self.num_labelled, self.values, strict=True):
            if v >= threshold:
                return n
        return None


def run_active_learning(
    split: ActiveSplit,
    inputs: Tensor | Dataset,
    train: Callable[[Tensor, Tensor], nn.Module],
    evaluate: Callable[[nn.Module], float],
    *,
    k: int,
    rounds: int,
    method: str = "bald",
    seed: int = 0,
    **options: Any,
) -> LearningCurve:
    """Train, evaluate, acquire ``k`` points, repeat ``rounds`` times; you own training.

    Parameters
    ----------
    split : ActiveSplit
        Updated in place.
    inputs : Tensor (N, ...) or Dataset
        Every point's input, indexed like ``split`` (labels are never read here).
    train : callable ``(labelled, new) -> model``
        Gets all labelled indices and those just added (the initial set in the first call);
        returns the model to evaluate and to score the pool with (retrained or fine-tuned).
    evaluate : callable ``model -> float``
        E.g. test accuracy.
    k, rounds : int
        Points per acquisition and number of acquisitions.
    method, seed, **options
        Passed to :func:`bayesdrop.active.acquire` (round ``r`` uses
        ``derive_seed(seed, r)``, see :ref:`seeding`).

    Returns
    -------
    LearningCurve
        ``rounds + 1`` evaluations.
    """
    rounds = check_positive_int("rounds", rounds, allow_zero=True)
    model = train(split.labelled, split.labelled)
    sizes, values = [split.num_labelled], [float(evaluate(model))]
    acquired: list[Tensor] = []
    seconds: list[float] = []
    for r in range(rounds):
        start = time.perf_counter()
        pool = split.pool
        pool_inputs = inputs[pool] if isinstance(inputs, Tensor) else Subset(inputs, pool.tolist())
        chosen = acquire(model, pool_inputs, k, method=method, seed=derive_seed(seed, r), **options)  # type: ignore[arg-type]
        seconds.append(time.perf_counter() - start)
        new = split.label_pool_positions(chosen.indices)
        acquired.append(new)
        model = train(split.labelled, new)
        sizes.append(split.num_labelled)
        values.append(float(evaluate(model)))
    return LearningCurve(tuple(sizes), tuple(values), tuple(acquired), tuple(seconds))
