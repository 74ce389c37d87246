"""Calibration plots as Display objects, never touching global pyplot state.

Like scikit-learn's ``CalibrationDisplay``: ``Display.from_predictions(...)`` computes what to
draw, ``.plot(ax=None)`` draws it on ``ax`` (or on a new :class:`matplotlib.figure.Figure`) and
returns the display, which keeps ``ax_`` and ``figure_``. Without an ``ax`` the figure is not
registered with pyplot, so nothing leaks between plots and nothing is shown by accident.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bayesdrop._validation import check_positive_int
from bayesdrop.calibration.binning import (
    Binning,
    BinStatistics,
    bin_statistics,
    classwise_bin_sums,
    equal_width_edges,
)
from bayesdrop.calibration.inputs import check_classification, check_scores, top_label
from bayesdrop.calibration.metrics import calibration_error_from_statistics
from bayesdrop.calibration.regression import regression_calibration_curve

__all__ = [
    "ClasswiseReliabilityDisplay",
    "RegressionCalibrationDisplay",
    "ReliabilityDisplay",
    "UncertaintyHistogramDisplay",
]


def _new_figure(figsize: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure  # imported on first plot: keeps `import bayesdrop` light

    return Figure(figsize=figsize, layout="constrained")


def _axes(ax: Any, figsize: tuple[float, float]):
    if ax is not None:
        return ax.figure, ax
    figure = _new_figure(figsize)
    return figure, figure.add_subplot()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _diagonal(ax: Any) -> None:
    ax.plot([0, 1], [0, 1], ls="--", color="0.4", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)


class ReliabilityDisplay:
    """Reliability diagram: accuracy per confidence bin, the gap to the diagonal, and a
    histogram of the confidences.

    Examples
    --------
    >>> from bayesdrop.calibration import ReliabilityDisplay
    >>> probs = torch.rand(200, 4).softmax(-1)
    >>> disp = ReliabilityDisplay.from_predictions(probs, torch.randint(0, 4, (200,))).plot()
    >>> disp.hist_ax_.get_xlabel(), len(disp.figure_.axes)
    ('confidence', 2)
    """

    def __init__(self, stats: BinStatistics, *, name: str | None = None) -> None:
        self.stats = stats
        self.name = name
        self.ece = calibration_error_from_statistics(stats, "l1").item()
        self.mce = calibration_error_from_statistics(stats, "max").item()

    @classmethod
    def from_predictions(
        cls,
        probs: Any,
        target: Any,
        *,
        num_bins: int = 15,
        binning: Binning = "equal_width",
        name: str | None = None,
    ) -> ReliabilityDisplay:
        """Bin the top-label confidences of ``probs (N, C)`` or ``(S, N, C)``."""
        probs, target = check_classification(probs, target)
        stats = bin_statistics(*top_label(probs, target), num_bins=num_bins, binning=binning)
        return cls(stats, name=name)

    def plot(self, ax: Any = None, *, hist_ax: Any = None) -> ReliabilityDisplay:
        """Draw on ``ax`` and the histogram on ``hist_ax`` (a new figure with both if no ``ax``)."""
        if ax is None:
            self.figure_ = _new_figure((5.0, 6.0))
            ax, hist_ax = self.figure_.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        self.figure_, self.ax_, self.hist_ax_ = ax.figure, ax, hist_ax
        edges = _np(self.stats.edges)
        left, width = edges[:-1], np.diff(edges)
        filled = _np(self.stats.counts) > 0
        acc, conf = _np(self.stats.mean_accuracy()), _np(self.stats.mean_confidence())
        ax.bar(
            left[filled],
            acc[filled],
            width[filled],
            align="edge",
            color="tab:blue",
            edgecolor="black",
            lw=0.5,
            label="accuracy",
        )
        ax.bar(
            left[filled],
            (conf - acc)[filled],
            width[filled],
            bottom=acc[filled],
            align="edge",
            fill=False,
            edgecolor="tab:red",
            lw=0.8,
            hatch="//",
            label="gap to mean confidence",
        )
        _diagonal(ax)
        ax.set_ylabel("accuracy")
        title = self.name or "reliability diagram"
        ax.set_title(f"{title}\nECE {self.ece:.4f}, MCE {self.mce:.4f}", fontsize="medium")
        ax.legend(loc="upper left", framealpha=0.95, fontsize="small")
        target_ax = hist_ax if hist_ax is not None else ax
        if hist_ax is not None:
            counts = _np(self.stats.counts)
            hist_ax.bar(
                left,
                counts / counts.sum(),
                width,
                align="edge",
                color="0.6",
                edgecolor="black",
                lw=0.5,
            )
            hist_ax.set_ylabel("fraction")
            hist_ax.set_xlim(0, 1)
        target_ax.set_xlabel("confidence")
        return self


class ClasswiseReliabilityDisplay:
    """One reliability curve per class: observed frequency of class ``c`` against the mean
    predicted ``p_c`` in each bin (empty bins skipped).

    Examples
    --------
    >>> from bayesdrop.calibration import ClasswiseReliabilityDisplay
    >>> probs = torch.rand(200, 3).softmax(-1)
    >>> d = ClasswiseReliabilityDisplay.from_predictions(probs, torch.randint(0, 3, (200,))).plot()
    >>> len(d.ax_.lines)  # 3 classes and the diagonal
    4
    """

    def __init__(self, stats: list[BinStatistics]) -> None:
        self.stats = stats

    @classmethod
    def from_predictions(
        cls, probs: Any, target: Any, *, num_bins: int = 10
    ) -> ClasswiseReliabilityDisplay:
        probs, target = check_classification(probs, target)
        num_bins = check_positive_int("num_bins", num_bins)
        counts, confidence_sum, hits = classwise_bin_sums(probs, target, num_bins)
        edges = equal_width_edges(num_bins, dtype=confidence_sum.dtype)
        return cls(
            [
                BinStatistics(edges, counts[c], confidence_sum[c], hits[c])
                for c in range(probs.shape[1])
            ]
        )

    def plot(self, ax: Any = None, *, max_legend: int = 10) -> ClasswiseReliabilityDisplay:
        self.figure_, self.ax_ = _axes(ax, (5.0, 5.0))
        for c, stats in enumerate(self.stats):
            filled = _np(stats.counts) > 0
            self.ax_.plot(
                _np(stats.mean_confidence())[filled],
                _np(stats.mean_accuracy())[filled],
                marker="o",
                ms=3,
                lw=1,
                label=f"class {c}" if c < max_legend else None,
            )
        _diagonal(self.ax_)
        self.ax_.set_xlabel("predicted probability of the class")
        self.ax_.set_ylabel("observed frequency of the class")
        self.ax_.set_title("classwise reliability")
        self.ax_.legend(fontsize="small", ncols=2)
        return self


class RegressionCalibrationDisplay:
    """Quantile calibration curve of Gaussian regression predictions.

    Examples
    --------
    >>> from bayesdrop.calibration import RegressionCalibrationDisplay
    >>> d = RegressionCalibrationDisplay.from_predictions(torch.zeros(50), torch.ones(50),
    ...                                                   torch.randn(50)).plot()
    >>> d.ax_.get_xlabel()
    'expected cumulative probability'
    """

    def __init__(self, expected: torch.Tensor, observed: torch.Tensor, error: float) -> None:
        self.expected, self.observed, self.error = expected, observed, error

    @classmethod
    def from_predictions(cls, mean: Any, std: Any, target: Any, *, num_levels: int = 21):
        curve = regression_calibration_curve(mean, std, target, num_levels=num_levels)
        return cls(curve.expected, curve.observed, curve.error)

    def plot(self, ax: Any = None) -> RegressionCalibrationDisplay:
        self.figure_, self.ax_ = _axes(ax, (5.0, 5.0))
        self.ax_.plot(_np(self.expected), _np(self.observed), marker="o", ms=3, label="model")
        _diagonal(self.ax_)
        self.ax_.set_xlabel("expected cumulative probability")
        self.ax_.set_ylabel("observed frequency")
        self.ax_.set_title(f"regression calibration (error {self.error:.4f})")
        self.ax_.legend(loc="lower right")
        return self


class UncertaintyHistogramDisplay:
    """Histograms of an uncertainty score on in-distribution and (optionally) OOD data.

    Examples
    --------
    >>> from bayesdrop.calibration import UncertaintyHistogramDisplay
    >>> d = UncertaintyHistogramDisplay.from_scores(torch.rand(100), torch.rand(80) + 0.5).plot()
    >>> len(d.ax_.patches) > 0
    True
    """

    def __init__(self, id_scores: np.ndarray, ood_scores: np.ndarray | None, name: str) -> None:
        self.id_scores, self.ood_scores, self.name = id_scores, ood_scores, name

    @classmethod
    def from_scores(cls, id_scores: Any, ood_scores: Any = None, *, name: str = "uncertainty"):
        id_np = _np(check_scores(id_scores, "id_scores"))
        ood_np = None if ood_scores is None else _np(check_scores(ood_scores, "ood_scores"))
        return cls(id_np, ood_np, name)

    def plot(self, ax: Any = None, *, num_bins: int = 30) -> UncertaintyHistogramDisplay:
        self.figure_, self.ax_ = _axes(ax, (5.0, 3.5))
        both = (
            self.id_scores
            if self.ood_scores is None
            else np.concatenate([self.id_scores, self.ood_scores])
        )
        bins = np.linspace(both.min(), max(both.max(), both.min() + 1e-12), num_bins + 1)
        self.ax_.hist(self.id_scores, bins=bins, density=True, alpha=0.6, label="in-distribution")
        if self.ood_scores is not None:
            self.ax_.hist(
                self.ood_scores, bins=bins, density=True, alpha=0.6, label="out-of-distribution"
            )
        self.ax_.set_xlabel(self.name)
        self.ax_.set_ylabel("density")
        self.ax_.legend()
        return self
