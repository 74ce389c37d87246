"""Reliability diagrams as Display objects, never touching global pyplot state.

Like scikit-learn's ``CalibrationDisplay``: ``Display.from_predictions(...)`` computes what to
draw, ``.plot(ax=None)`` draws it on ``ax`` (or on a new :class:`matplotlib.figure.Figure`) and
returns the display, which keeps ``ax_`` and ``figure_``. Without an ``ax`` the figure is not
registered with pyplot, so nothing leaks between plots and nothing is shown by accident.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bayesdrop._validation import check_choice, fail
from bayesdrop.calibration._binning import (
    Binning,
    BinStatistics,
    bin_statistics,
    check_num_bins,
    classwise_bin_sums,
    equal_width_edges,
)
from bayesdrop.calibration._inputs import Layout, check_classification, top_label
from bayesdrop.calibration._metrics import calibration_error_from_statistics
from bayesdrop.calibration._plotting import _diagonal, _new_figure, _np

__all__ = ["ClasswiseReliabilityDisplay", "ReliabilityDisplay"]


class ReliabilityDisplay:
    """Reliability diagram: accuracy per confidence bin, the gap to the diagonal, and a
    histogram of the confidences with the number of points of every bin written on it.

    Equal-width bins are drawn as bars over their bins. Equal-mass bins are drawn as points at
    (mean confidence, accuracy) joined by a line, with their edges marked on the histogram: their
    outer bins can span most of ``[0, 1]`` (edges are quantiles of the confidences), so bars
    would hide where the points are.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import ReliabilityDisplay
    >>> probs = torch.rand(200, 4).softmax(-1)
    >>> disp = ReliabilityDisplay.from_predictions(probs, torch.randint(0, 4, (200,))).plot()
    >>> disp.hist_ax_.get_xlabel(), len(disp.figure_.axes)
    ('confidence', 2)
    """

    def __init__(
        self, stats: BinStatistics, *, name: str | None = None, binning: Binning | None = None
    ) -> None:
        if not isinstance(stats, BinStatistics):
            fail("stats", "a BinStatistics", type(stats).__name__, type_error=True)
        equal_width = bool(
            torch.allclose(
                stats.edges.double().cpu(),
                equal_width_edges(stats.edges.numel() - 1),
                rtol=0.0,
                atol=1e-6,
            )
        )
        if binning is None:
            binning = "equal_width" if equal_width else "equal_mass"
        check_choice("binning", binning, ("equal_width", "equal_mass"))
        if binning == "equal_width" and not equal_width:
            fail(
                "binning",
                "the binning of `stats` (its edges are not equal-width)",
                repr(binning),
                'Pass binning="equal_mass" or None (read from the edges).',
            )
        self.stats = stats
        self.name = name
        self.binning: Binning = binning
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
        layout: Layout | None = None,
        ignore_index: int | None = None,
    ) -> ReliabilityDisplay:
        """Bin the top-label confidences of ``probs`` (any input of
        :func:`~bayesdrop.calibration.as_points`: ``(N, C)``, a prediction result, dense or MC
        samples with their ``layout``; ``ignore_index`` drops the points of one label)."""
        check_choice("binning", binning, ("equal_width", "equal_mass"))
        probs, target = check_classification(
            probs, target, layout=layout, ignore_index=ignore_index
        )
        stats = bin_statistics(*top_label(probs, target), num_bins=num_bins, binning=binning)
        return cls(stats, name=name, binning=binning)

    def plot(self, ax: Any = None, *, hist_ax: Any = None) -> ReliabilityDisplay:
        """Draw on ``ax`` and the histogram on ``hist_ax`` (a new figure with both if no ``ax``).

        Without a histogram axis the bin counts are written above the bars.
        """
        if ax is None:
            self.figure_ = _new_figure((5.0, 6.0))
            ax, hist_ax = self.figure_.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        self.figure_, self.ax_, self.hist_ax_ = ax.figure, ax, hist_ax
        counts = _np(self.stats.counts)
        filled = counts > 0
        acc, conf = _np(self.stats.mean_accuracy()), _np(self.stats.mean_confidence())
        if self.binning == "equal_mass":
            self._plot_points(ax, conf[filled], acc[filled], counts[filled], hist_ax is None)
        else:
            self._plot_bars(ax, acc, conf, counts, hist_ax is None)
        _diagonal(ax)
        ax.set_ylabel("accuracy")
        title = self.name or "reliability diagram"
        bins = f"{len(counts)} {self.binning.replace('_', '-')} bins"
        # the name is text: "$" is a dollar, not mathtext (it comes from `report --name`)
        ax.set_title(
            f"{title}\nECE {self.ece:.4f}, MCE {self.mce:.4f} ({bins})",
            fontsize="medium",
            parse_math=False,
        )
        ax.legend(loc="upper left", framealpha=0.95, fontsize="small")
        target_ax = hist_ax if hist_ax is not None else ax
        if hist_ax is not None:
            self._plot_histogram(hist_ax, counts)
        target_ax.set_xlabel("confidence")
        return self

    def _plot_bars(self, ax: Any, acc, conf, counts, label_counts: bool) -> None:
        edges = _np(self.stats.edges)
        left, width = edges[:-1], np.diff(edges)
        filled = counts > 0
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
        if label_counts:
            for x, w, y, n in zip(
                left[filled], width[filled], acc[filled], counts[filled], strict=True
            ):
                ax.annotate(_count(n), (x + w / 2, y), ha="center", va="bottom", fontsize=8)

    def _plot_points(self, ax: Any, conf, acc, counts, label_counts: bool) -> None:
        ax.vlines(conf, np.minimum(acc, conf), np.maximum(acc, conf), color="tab:red", lw=1.5)
        ax.plot(conf, acc, marker="o", ms=4, color="tab:blue", label="accuracy per bin")
        ax.plot([], [], color="tab:red", lw=1.5, label="gap to mean confidence")
        if label_counts:
            for x, y, n in zip(conf, acc, counts, strict=True):
                ax.annotate(
                    _count(n),
                    (x, y),
                    xytext=(0, 4),
                    textcoords="offset points",
                    ha="center",
                    fontsize=8,
                )

    def _plot_histogram(self, hist_ax: Any, counts) -> None:
        edges = _np(self.stats.edges)
        if self.binning == "equal_mass":
            # the bins hold (nearly) the same number of points: mark their edges, state the counts
            for edge in edges[1:-1]:
                hist_ax.axvline(edge, color="0.3", lw=0.8)
            filled = counts[counts > 0]
            lo, hi = _count(filled.min()), _count(filled.max())
            text = f"n per bin: {lo}" if lo == hi else f"n per bin: {lo} to {hi}"
            hist_ax.text(0.02, 0.5, text, transform=hist_ax.transAxes, va="center", fontsize=8)
            hist_ax.set_yticks([])
            hist_ax.set_ylabel("bin edges")
        else:
            left, width = edges[:-1], np.diff(edges)
            fraction = counts / counts.sum()
            hist_ax.bar(left, fraction, width, align="edge", color="0.6", edgecolor="black", lw=0.5)
            for x, w, f, n in zip(left, width, fraction, counts, strict=True):
                if n > 0:
                    hist_ax.annotate(
                        _count(n), (x + w / 2, f), ha="center", va="bottom", fontsize=8
                    )
            hist_ax.set_ylim(0, max(fraction.max() * 1.3, 1e-9))
            hist_ax.set_ylabel("fraction\n(n above bars)")
        hist_ax.set_xlim(0, 1)


def _count(n: float) -> str:
    n = int(n)
    return f"{n / 1000:.0f}k" if n >= 10_000 else str(n)


class ClasswiseReliabilityDisplay:
    """Classwise reliability: observed frequency of class ``c`` against the mean predicted
    ``p_c`` in each bin (empty bins skipped), with the classwise ECE of every class.

    Up to ``max_panels`` classes get a small panel each; with more classes, one panel pools the
    bins of all classes (the classwise ECE's reliability curve) and a second one shows the
    distribution of the per-class ECE, naming the worst classes.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import ClasswiseReliabilityDisplay
    >>> probs = torch.rand(200, 3).softmax(-1)
    >>> d = ClasswiseReliabilityDisplay.from_predictions(probs, torch.randint(0, 3, (200,))).plot()
    >>> len(d.axes_), d.num_bins
    (3, 10)
    """

    def __init__(self, stats: list[BinStatistics]) -> None:
        if not isinstance(stats, (list, tuple)) or len(stats) == 0:
            got = f"{len(stats)} classes" if isinstance(stats, (list, tuple)) else type(stats)
            fail("stats", "one BinStatistics per class (at least one)", got)
        self.stats = list(stats)
        self.num_bins = stats[0].counts.numel()
        num_data = stats[0].counts.sum()
        self.class_ece = [
            ((s.accuracy_sum - s.confidence_sum).abs().sum() / num_data).item() for s in stats
        ]

    @classmethod
    def from_predictions(
        cls,
        probs: Any,
        target: Any,
        *,
        num_bins: int = 10,
        layout: Layout | None = None,
        ignore_index: int | None = None,
    ) -> ClasswiseReliabilityDisplay:
        """Bin ``probs[:, c]`` of every class ``c`` (``O(C x num_bins)`` memory); ``probs`` is any
        input of :func:`~bayesdrop.calibration.as_points`."""
        probs, target = check_classification(
            probs, target, layout=layout, ignore_index=ignore_index
        )
        num_bins = check_num_bins(num_bins)
        counts, confidence_sum, hits = classwise_bin_sums(probs, target, num_bins)
        edges = equal_width_edges(num_bins, dtype=confidence_sum.dtype)
        return cls(
            [
                BinStatistics(edges, counts[c], confidence_sum[c], hits[c])
                for c in range(probs.shape[1])
            ]
        )

    def plot(self, figure: Any = None, *, max_panels: int = 10) -> ClasswiseReliabilityDisplay:
        """Draw on ``figure`` (a new one if None); sets ``figure_``, ``axes_`` and ``ax_`` (the
        first panel)."""
        num_classes = len(self.stats)
        small = num_classes <= max_panels
        cols = min(num_classes, 5) if small else 2
        rows = -(-num_classes // cols) if small else 1
        if figure is None:
            figure = _new_figure((2.2 * cols + 0.6, 2.3 * rows + 0.6) if small else (9.0, 4.0))
        self.figure_ = figure
        # small multiples share their axes: tick labels on the outer panels, one axis label
        share = {"sharex": True, "sharey": True} if small else {}
        axes = figure.subplots(rows, cols, squeeze=False, **share).reshape(-1)
        if small:
            for c, ax in enumerate(axes[:num_classes]):
                self._curve(ax, self.stats[c], f"class {c}: ECE {self.class_ece[c]:.3f}")
                ax.set_xlabel("")
                ax.set_ylabel("")
                ax.tick_params(labelsize=9)
            for c, ax in enumerate(axes):
                # a panel's x tick labels show where no panel lies below it
                ax.tick_params(labelbottom=c + cols >= num_classes, labelleft=c % cols == 0)
            for ax in axes[num_classes:]:
                ax.set_visible(False)
            figure.supxlabel("predicted p(class)", fontsize="medium")
            figure.supylabel("observed frequency", fontsize="medium")
            self.axes_ = list(axes[:num_classes])
        else:
            pooled = self.stats[0]
            for s in self.stats[1:]:
                pooled = BinStatistics(
                    s.edges,
                    pooled.counts + s.counts,
                    pooled.confidence_sum + s.confidence_sum,
                    pooled.accuracy_sum + s.accuracy_sum,
                )
            self._curve(axes[0], pooled, f"all {num_classes} classes pooled", label_counts=True)
            self._ece_distribution(axes[1])
            self.axes_ = list(axes)
        self.ax_ = self.axes_[0]
        mean_ece = float(np.mean(self.class_ece))
        figure.suptitle(
            f"classwise reliability: classwise ECE {mean_ece:.4f} ({self.num_bins} equal-width"
            " bins per class)",
            fontsize="medium",
        )
        return self

    @staticmethod
    def _curve(ax: Any, stats: BinStatistics, title: str, label_counts: bool = False) -> None:
        counts = _np(stats.counts)
        filled = counts > 0
        x, y = _np(stats.mean_confidence())[filled], _np(stats.mean_accuracy())[filled]
        ax.plot([0, 1], [0, 1], ls="--", color="0.4", lw=0.8)
        ax.plot(x, y, color="tab:blue", lw=1)
        ax.scatter(
            x, y, s=8 + 40 * np.sqrt(counts[filled] / counts.max()), color="tab:blue", zorder=3
        )
        if label_counts:
            for xi, yi, n in zip(x, y, counts[filled], strict=True):
                ax.annotate(
                    _count(n), (xi, yi), xytext=(3, -8), textcoords="offset points", fontsize=8
                )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize="small")
        ax.tick_params(labelsize=9)
        ax.set_xlabel("predicted p(class)", fontsize=9)
        ax.set_ylabel("observed frequency", fontsize=9)

    def _ece_distribution(self, ax: Any) -> None:
        ece = np.asarray(self.class_ece)
        ax.hist(ece, bins=min(30, max(5, len(ece) // 5)), color="0.5", edgecolor="black", lw=0.4)
        for rank, c in enumerate(np.argsort(-ece)[:5]):
            ax.axvline(ece[c], color="tab:red", lw=0.8)
            ax.annotate(
                f"class {c}",
                (ece[c], 1 - 0.08 * (rank + 1)),
                xycoords=("data", "axes fraction"),
                fontsize=8,
                color="tab:red",
                ha="right",
            )
        ax.set_xlabel("ECE of one class", fontsize=9)
        ax.set_ylabel("number of classes", fontsize=9)
        ax.set_title("per-class ECE (worst 5 named)", fontsize="small")
        ax.tick_params(labelsize=9)
