"""What the diagrams show: bin counts, readable equal-mass and classwise panels, per-bin JSON."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import torch

from bayesdrop.calibration import (
    CalibrationReport,
    ClasswiseReliabilityDisplay,
    ReliabilityDisplay,
    bin_statistics,
    classwise_calibration_error,
)

matplotlib.use("Agg")


def predictions(n: int = 2000, c: int = 10, seed: int = 0, scale: float = 4.0):
    gen = torch.Generator().manual_seed(seed)
    probs = (scale * torch.randn(n, c, generator=gen, dtype=torch.float64)).softmax(-1)
    target = torch.distributions.Categorical(probs=probs.sqrt()).sample()
    return probs, target


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_histogram_shows_the_count_of_every_bin():
    probs, target = predictions()
    probs[0] = torch.tensor([0.06] + [0.94 / 9] * 9, dtype=torch.float64)  # alone in bin 0
    disp = ReliabilityDisplay.from_predictions(probs, target, num_bins=15).plot()
    counts = [int(n) for n in disp.stats.counts.tolist() if n > 0]
    assert texts(disp.hist_ax_) == [str(n) for n in counts]
    assert "1" in texts(disp.hist_ax_)  # the single-point bin that can set the MCE is visible
    assert "15 equal-width bins" in disp.ax_.get_title()
    # without a histogram axis, the counts go above the bars
    fig = matplotlib.figure.Figure()
    alone = ReliabilityDisplay.from_predictions(probs, target).plot(fig.add_subplot())
    assert texts(alone.ax_) == [str(n) for n in counts]


def test_equal_mass_diagram_draws_points_not_wide_bars():
    probs, target = predictions(scale=8.0)  # confidences pile up near 1
    disp = ReliabilityDisplay.from_predictions(
        probs, target, num_bins=10, binning="equal_mass"
    ).plot()
    assert disp.stats.edges[1].item() > 0.5  # the first equal-mass bin is wide...
    widest = max((p.get_width() for p in disp.ax_.patches), default=0.0)
    assert widest < 0.05  # ...but no bar spans it
    x, y = disp.ax_.lines[0].get_data()
    confidence, predicted = probs.max(-1)
    expected = bin_statistics(confidence, predicted == target, num_bins=10, binning="equal_mass")
    np.testing.assert_allclose(x, expected.mean_confidence().numpy())
    np.testing.assert_allclose(y, expected.mean_accuracy().numpy())
    assert "10 equal-mass bins" in disp.ax_.get_title()
    assert disp.stats.counts.tolist() == [200.0] * 10
    label = "n per bin: 200"
    assert texts(disp.hist_ax_) == [label] and len(disp.hist_ax_.lines) == 9  # interior edges


def test_classwise_panels_at_10_classes():
    probs, target = predictions(c=10)
    disp = ClasswiseReliabilityDisplay.from_predictions(probs, target, num_bins=15).plot()
    assert len(disp.axes_) == 10 and all(len(ax.lines) == 2 for ax in disp.axes_)
    expected = classwise_calibration_error(probs, target, num_bins=15).item()
    assert np.mean(disp.class_ece) == pytest.approx(expected, abs=1e-12)
    assert f"{expected:.4f}" in disp.figure_._suptitle.get_text()
    assert "15 equal-width bins" in disp.figure_._suptitle.get_text()


def test_classwise_at_100_classes_pools_and_names_the_worst():
    probs, target = predictions(n=3000, c=100)
    disp = ClasswiseReliabilityDisplay.from_predictions(probs, target).plot()
    assert len(disp.axes_) == 2
    pooled_counts = sum(s.counts for s in disp.stats)
    assert pooled_counts.sum().item() == 3000 * 100
    worst = int(np.argmax(disp.class_ece))
    assert f"class {worst}" in texts(disp.axes_[1])


def test_report_json_holds_the_bins_and_uses_its_bin_count():
    probs, target = predictions()
    report = CalibrationReport.from_predictions(probs, target, num_bins=12)
    bins = json.loads(report.to_json())["bins"]
    stats = bin_statistics(probs.max(-1).values, probs.argmax(-1) == target, num_bins=12)
    assert bins["counts"] == [int(n) for n in stats.counts.tolist()]
    assert sum(bins["counts"]) == 2000 and len(bins["edges"]) == 13
    np.testing.assert_allclose(bins["accuracy"], stats.mean_accuracy().numpy())
    figures = report.figures()
    assert "12 equal-width" in figures["Classwise reliability"]._suptitle.get_text()
    assert "12 equal-mass" in figures["Equal-mass reliability diagram"].axes[0].get_title()


def test_names_are_text_not_mathtext():
    """`bayesdrop report --name 'cost $5'`: one `$` made matplotlib fail at draw time."""
    import io

    from bayesdrop.calibration import UncertaintyHistogramDisplay

    probs, target = predictions(200, 3)
    disp = ReliabilityDisplay.from_predictions(probs, target, name="cost $5 vs $x^2$").plot()
    disp.figure_.savefig(io.BytesIO(), format="png")
    assert disp.ax_.get_title().startswith("cost $5 vs $x^2$\n")
    hist = UncertaintyHistogramDisplay.from_scores(torch.rand(50), name="$ entropy").plot()
    hist.figure_.savefig(io.BytesIO(), format="png")
    assert hist.ax_.get_xlabel() == "$ entropy"
    report = CalibrationReport.from_predictions(probs, target, name="a $ name")
    for figure in report.figures().values():
        figure.savefig(io.BytesIO(), format="png")


@pytest.mark.parametrize(
    "num_bins,exc,match",
    [
        (0, ValueError, "`num_bins` to be a positive integer, but got 0"),
        (2.5, TypeError, "`num_bins` to be an integer, but got 2.5"),
        (10**9, ValueError, r"`num_bins` to be at most 1048576 bins, but got 1000000000"),
    ],
)
def test_histogram_checks_num_bins(num_bins, exc, match):
    from bayesdrop.calibration import UncertaintyHistogramDisplay

    disp = UncertaintyHistogramDisplay.from_scores(torch.rand(20))
    with pytest.raises(exc, match=match):
        disp.plot(num_bins=num_bins)


def test_histogram_of_one_value_and_of_the_whole_float_range():
    from bayesdrop.calibration import UncertaintyHistogramDisplay

    one = UncertaintyHistogramDisplay.from_scores(torch.full((5,), 1e20)).plot()
    assert len(one.ax_.patches) == 30
    wide = torch.tensor([-1e308, 0.0, 1e308], dtype=torch.float64)
    assert len(UncertaintyHistogramDisplay.from_scores(wide).plot(num_bins=4).ax_.patches) == 4


def test_empty_displays_are_bayesdrop_errors():
    from bayesdrop.calibration import UncertaintyHistogramDisplay

    with pytest.raises(ValueError, match=r"`stats` to be one BinStatistics per class"):
        ClasswiseReliabilityDisplay([])
    with pytest.raises(ValueError, match=r"`id_scores, ood_scores` to be finite scores, at least"):
        UncertaintyHistogramDisplay(np.array([]), None, "x").plot()
    with pytest.raises(ValueError, match=r"`id_scores` to be non-empty, but got shape \(0,\)"):
        UncertaintyHistogramDisplay.from_scores(torch.zeros(0))
    empty = bin_statistics(torch.tensor([0.5]), torch.tensor([1]), num_bins=2)
    empty = type(empty)(empty.edges, empty.counts * 0, empty.confidence_sum * 0, empty.counts * 0)
    with pytest.raises(ValueError, match="`stats` to be statistics of at least one point"):
        ReliabilityDisplay(empty)
