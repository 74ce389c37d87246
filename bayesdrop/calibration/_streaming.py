"""Streaming calibration metrics: ``update`` on batches, ``compute`` once, ``merge`` or ``sync``.

Their state is a handful of sums (per-bin counts and sums for the calibration errors), so memory
does not grow with the data, two metrics over disjoint data merge by adding their states, and
``sync()`` sums the states of all processes with ``torch.distributed.all_reduce``: a data set
sharded over processes gives exactly the single-process numbers (up to float64 summation order).
Only equal-width bins stream; equal-mass edges need every confidence at once.

An empty batch is a no-op; a batch with another number of classes than the earlier ones is an
error. ``state_dict()`` / ``load_state_dict()`` checkpoint a metric (options, class count and
sums); ``sync()`` first checks that every process has the same options and class count, so a
mismatch fails with a message on every rank instead of inside the collective.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from bayesdrop._distributed import (
    DistributedContext,
    all_gather_object,
    all_reduce_sum,
    context,
)
from bayesdrop._validation import check_choice, fail
from bayesdrop.calibration._binning import BinStatistics, accumulator_dtype, check_num_bins
from bayesdrop.calibration._inputs import (
    Layout,
    as_points,
    check_classification,
    top_label,
    true_class_probability,
)
from bayesdrop.calibration._metrics import (
    ClassificationMetrics,
    Norm,
    _top_label_sums,
    brier_per_row,
    calibration_error_from_statistics,
)

__all__ = [
    "Accuracy",
    "BrierScore",
    "CalibrationError",
    "CalibrationMetrics",
    "NegativeLogLikelihood",
    "StreamingMetric",
]


class StreamingMetric:
    """Base class: a state of named tensors that add up over batches and processes."""

    _state: dict[str, Tensor]
    _num_classes: int | None

    def __init__(self) -> None:
        self.reset()

    def _config(self) -> tuple:
        return ()

    def _empty_state(self, device: Any = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def _batch_state(self, probs: Any, target: Any) -> dict[str, Tensor]:
        """Validate a raw batch and reduce it to the sums of the state."""
        raise NotImplementedError

    def _compute(self) -> Any:
        raise NotImplementedError

    def reset(self):
        """Forget all data seen so far (and the class count); returns ``self``."""
        self._state = self._empty_state()
        self._num_classes = None
        return self

    def update(
        self,
        probs: Tensor,
        target: Tensor,
        *,
        layout: Layout | None = None,
        ignore_index: int | None = None,
    ):
        """Add a batch; returns ``self``.

        ``probs`` is any input of :func:`~bayesdrop.calibration.as_points` (``(N, C)``, dense
        ``(N, ..., C)`` with ``layout="probs"``, MC samples with ``layout="samples"``, a
        prediction result) and ``target (N, ...)`` its labels; ``ignore_index`` drops the points
        of one label. A batch of no point changes nothing. Every batch must have the class
        count of the first one.
        """
        points = as_points(
            probs,
            target,
            layout=layout,
            ignore_index=ignore_index,
            check_values=False,
            allow_empty=True,
        )
        self._check_num_classes(points.num_classes, "probs")
        if points.probs.shape[0] == 0:
            return self
        batch = self._batch_state(points.probs, points.target)
        self._state = {k: v.to(batch[k].device) + batch[k] for k, v in self._state.items()}
        self._num_classes = points.num_classes
        return self

    def _check_num_classes(self, num_classes: int | None, name: str) -> None:
        if None not in (num_classes, self._num_classes) and num_classes != self._num_classes:
            fail(
                name,
                f"predictions over {self._num_classes} classes, as the earlier batches",
                f"{num_classes} classes",
                "Call reset() before streaming a problem with another class count.",
            )

    def merge(self, other: StreamingMetric):
        """Add the state of ``other`` (same class and options) in place; returns ``self``."""
        if type(other) is not type(self) or other._config() != self._config():
            fail("other", f"a {type(self).__name__} with options {self._config()}", repr(other))
        self._check_num_classes(other._num_classes, "other")
        self._state = {k: v + other._state[k].to(v.device) for k, v in self._state.items()}
        if self._num_classes is None:
            self._num_classes = other._num_classes
        return self

    def sync(self, group: Any = None):
        """A copy whose state is summed over all processes of ``group`` (``self`` unchanged).

        Without an initialised default process group this is a plain copy. Every process must
        hold the same metric with the same options (``num_bins``) and, where it has seen data,
        the same class count; otherwise every process raises the same error. The exchange goes
        through bayesdrop's one distributed layer, as the predictor's and the reports' do.
        """
        synced = copy.deepcopy(self)
        ctx = context(group)
        if ctx.active:
            self._check_same_on_all_ranks(ctx)
            all_reduce_sum(ctx, *synced._state.values())
        return synced

    def _check_same_on_all_ranks(self, ctx: DistributedContext) -> None:
        """Every rank's (metric, options, state sizes, class count), compared on every rank."""
        sizes = tuple(v.numel() for v in self._state.values())
        every = all_gather_object(ctx, (type(self).__name__, self._config(), sizes))
        if any(e != every[0] for e in every):
            listing = ", ".join(f"rank {r}: {e[0]}{e[1]}" for r, e in enumerate(every))  # type: ignore[index]
            size_name = "num_bins" if hasattr(self, "num_bins") else "the metric"
            fail(
                size_name,
                "the same on every process",
                listing,
                f"Create the {type(self).__name__} with the same options on every rank.",
            )
        classes = all_gather_object(ctx, self._num_classes)
        seen = {c for c in classes if c is not None}
        if len(seen) > 1:
            listing = ", ".join(f"rank {r}: {c}" for r, c in enumerate(classes))
            fail("probs", "over the same number of classes on every process", listing)

    def state_dict(self) -> dict[str, Any]:
        """The metric's options, class count and sums (tensors are copies), for checkpoints."""
        return {
            "metric": type(self).__name__,
            "options": self._config(),
            "num_classes": self._num_classes,
            "state": {k: v.detach().clone() for k, v in self._state.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]):
        """Restore what :meth:`state_dict` saved (same metric and options); returns ``self``."""
        expected = {"metric": type(self).__name__, "options": self._config()}
        got = {k: state_dict.get(k) for k in expected} if isinstance(state_dict, dict) else None
        state = state_dict.get("state") if isinstance(state_dict, dict) else None
        if (
            got is None
            or (got["metric"], tuple(got["options"] or ())) != tuple(expected.values())
            or not isinstance(state, dict)
            or set(state) != set(self._state)
            or any(tuple(state[k].shape) != tuple(v.shape) for k, v in self._state.items())
        ):
            fail(
                "state_dict",
                f"the state_dict() of a {type(self).__name__} with options {self._config()}",
                _describe(state_dict),
            )
        self._state = {k: state[k].detach().clone().to(v) for k, v in self._state.items()}
        self._num_classes = state_dict.get("num_classes")
        return self

    def compute(self) -> Any:
        """The metric over all data added so far (this process only; see :meth:`sync`)."""
        if self._state["count"].sum().item() == 0:
            fail("update", "called with data before compute()", "no data", "Call update first.")
        return self._compute()

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._config()}"


def _describe(state_dict: Any) -> str:
    if not isinstance(state_dict, dict):
        return type(state_dict).__name__
    return f"one of a {state_dict.get('metric')} with options {state_dict.get('options')}"


def _nll(probs: Tensor, target: Tensor) -> Tensor:
    return -true_class_probability(probs, target).clamp_min(torch.finfo(probs.dtype).tiny).log()


def _bin_state(stats: BinStatistics) -> dict[str, Tensor]:
    return {
        "count": stats.counts,
        "confidence": stats.confidence_sum,
        "accuracy": stats.accuracy_sum,
    }


def _zeros(size: int, device: Any = None) -> Tensor:
    device = torch.device("cpu") if device is None else device
    return torch.zeros(size, dtype=accumulator_dtype(device), device=device)


class _MeanMetric(StreamingMetric):
    def _empty_state(self, device: Any = None) -> dict[str, Tensor]:
        return {"total": _zeros(1, device), "count": _zeros(1, device)}

    def _per_point(self, probs: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def _batch_state(self, probs: Any, target: Any) -> dict[str, Tensor]:
        probs, target = check_classification(probs, target)
        values = self._per_point(probs, target).to(accumulator_dtype(probs.device))
        return {"total": values.sum().reshape(1), "count": _zeros(1, probs.device) + len(values)}

    def _compute(self) -> Tensor:
        return (self._state["total"] / self._state["count"]).squeeze(0)


class Accuracy(_MeanMetric):
    """Streaming :func:`~bayesdrop.calibration.accuracy`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import Accuracy
    >>> m = Accuracy().update(torch.tensor([[0.9, 0.1]]), torch.tensor([0]))
    >>> m.update(torch.tensor([[0.9, 0.1]]), torch.tensor([1])).compute().item()
    0.5
    """

    def _per_point(self, probs: Tensor, target: Tensor) -> Tensor:
        return top_label(probs, target)[1]


class BrierScore(_MeanMetric):
    """Streaming :func:`~bayesdrop.calibration.brier_score`."""

    def _per_point(self, probs: Tensor, target: Tensor) -> Tensor:
        return brier_per_row(probs, target)


class NegativeLogLikelihood(_MeanMetric):
    """Streaming :func:`~bayesdrop.calibration.negative_log_likelihood`."""

    def _per_point(self, probs: Tensor, target: Tensor) -> Tensor:
        return _nll(probs, target)


class CalibrationError(StreamingMetric):
    """Streaming :func:`~bayesdrop.calibration.expected_calibration_error` (equal-width bins).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import CalibrationError, expected_calibration_error
    >>> _ = torch.manual_seed(0)
    >>> probs = torch.rand(100, 3).softmax(-1)
    >>> target = torch.randint(0, 3, (100,))
    >>> a = CalibrationError().update(probs[:60], target[:60])
    >>> b = CalibrationError().update(probs[60:], target[60:])
    >>> torch.allclose(a.merge(b).compute(), expected_calibration_error(probs, target))
    True
    """

    def __init__(self, *, num_bins: int = 15, norm: Norm = "l1") -> None:
        self.num_bins = check_num_bins(num_bins)
        self.norm: Norm = norm
        check_choice("norm", norm, ("l1", "l2", "max"))
        super().__init__()

    def _config(self) -> tuple:
        return (self.num_bins, self.norm)

    def _empty_state(self, device: Any = None) -> dict[str, Tensor]:
        return {k: _zeros(self.num_bins, device) for k in ("count", "confidence", "accuracy")}

    def _batch_state(self, probs: Any, target: Any) -> dict[str, Tensor]:
        # one pass over the batch (the fused CPU kernel where it applies), validation included
        stats = _top_label_sums(probs, target, self.num_bins, bins=True).stats
        assert stats is not None
        return _bin_state(stats)

    def statistics(self) -> BinStatistics:
        """The accumulated per-bin statistics."""
        s = self._state
        edges = torch.arange(self.num_bins + 1, dtype=torch.float64).div(self.num_bins)
        return BinStatistics(edges.to(s["count"]), s["count"], s["confidence"], s["accuracy"])

    def _compute(self) -> Tensor:
        return calibration_error_from_statistics(self.statistics(), self.norm)


class CalibrationMetrics(StreamingMetric):
    """Streaming :func:`~bayesdrop.calibration.classification_metrics` (ECE, MCE, Brier, NLL,
    accuracy), returning a :class:`~bayesdrop.calibration.ClassificationMetrics`.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import CalibrationMetrics
    >>> m = CalibrationMetrics(num_bins=10)
    >>> for _ in range(3):
    ...     _ = m.update(torch.tensor([[0.9, 0.1], [0.4, 0.6]]), torch.tensor([0, 0]))
    >>> m.compute().num_data
    6
    """

    def __init__(self, *, num_bins: int = 15) -> None:
        self._ece = CalibrationError(num_bins=num_bins)
        self.num_bins = self._ece.num_bins
        super().__init__()

    def _config(self) -> tuple:
        return (self.num_bins,)

    def _empty_state(self, device: Any = None) -> dict[str, Tensor]:
        state = self._ece._empty_state(device)
        state.update({k: _zeros(1, device) for k in ("brier", "nll", "num_data")})
        return state

    def _batch_state(self, probs: Any, target: Any) -> dict[str, Tensor]:
        # one pass over the batch (the fused CPU kernel where it applies), validation included
        sums = _top_label_sums(probs, target, self.num_bins, bins=True)
        assert sums.stats is not None
        counts = sums.stats.counts
        return {
            **_bin_state(sums.stats),
            "brier": sums.brier_sum.reshape(1),
            "nll": sums.nll_sum.reshape(1),
            "num_data": torch.full(
                (1,), float(sums.num_data), dtype=counts.dtype, device=counts.device
            ),
        }

    def _compute(self) -> ClassificationMetrics:
        self._ece._state = {k: self._state[k] for k in ("count", "confidence", "accuracy")}
        stats = self._ece.statistics()
        n = self._state["num_data"].item()
        return ClassificationMetrics(
            accuracy=(stats.accuracy_sum.sum() / stats.counts.sum()).item(),
            ece=calibration_error_from_statistics(stats, "l1").item(),
            mce=calibration_error_from_statistics(stats, "max").item(),
            brier=self._state["brier"].item() / n,
            nll=self._state["nll"].item() / n,
            num_bins=self.num_bins,
            num_data=int(n),
        )
