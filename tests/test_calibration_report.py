"""Uncertainty quality, displays, the calibration report, its HTML in Chromium, and the CLI."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from dataclasses import dataclass

import matplotlib
import numpy as np
import pytest
import torch
from chromium import needs_chromium, screenshot
from sklearn.metrics import roc_auc_score

import bayesdrop
from bayesdrop.calibration import (
    CalibrationReport,
    ClasswiseReliabilityDisplay,
    RegressionCalibrationDisplay,
    ReliabilityDisplay,
    UncertaintyHistogramDisplay,
    accuracy_rejection_curve,
    detection_scores,
    misclassification_detection,
    ood_detection,
)
from bayesdrop.cli import main
from bayesdrop.exceptions import BayesdropTypeError, BayesdropValueError
from bayesdrop.functional import entropy, mutual_information

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # only to check that no figure gets registered


def mc_samples(seed: int = 0, s: int = 8, n: int = 400, c: int = 5):
    gen = torch.Generator().manual_seed(seed)
    base = 3 * torch.randn(1, n, c, generator=gen)
    samples = (base + torch.randn(s, n, c, generator=gen)).softmax(-1)
    target = torch.distributions.Categorical(probs=samples.mean(0)).sample()
    return samples, target


# ---------------------------------------------------------------------------------------------
# uncertainty quality
# ---------------------------------------------------------------------------------------------
def test_detection_scores_by_hand():
    # positives 0.9, 0.8, 0.3; negatives 0.1, 0.35, 0.5, 0.6
    scores = torch.tensor([0.9, 0.8, 0.3, 0.1, 0.35, 0.5, 0.6])
    positive = torch.tensor([1, 1, 1, 0, 0, 0, 0])
    result = detection_scores(scores, positive)
    assert result.auroc == pytest.approx(roc_auc_score(positive.numpy(), scores.numpy()))
    assert result.auroc == pytest.approx(9 / 12)  # pairs (pos > neg): 4 + 4 + 1
    # catching 95 % of positives needs the threshold at 0.3: 3 of 4 negatives lie above it
    assert result.fpr_at_95_tpr == pytest.approx(0.75)
    # average precision: precision at each positive in score order: 1, 1, 3/6
    assert result.aupr == pytest.approx((1 + 1 + 0.5) / 3)
    assert (result.num_positive, result.num_negative) == (3, 4)


def test_misclassification_and_ood():
    samples, target = mc_samples()
    probs = samples.mean(0)
    scores = entropy(probs)
    mis = misclassification_detection(samples, target, scores, layout="samples")
    wrong = (probs.argmax(-1) != target).numpy()
    assert mis.auroc == pytest.approx(roc_auc_score(wrong, scores.numpy()))
    assert mis.auroc > 0.6
    ood = ood_detection(scores, scores + 0.5)
    assert ood.auroc > 0.8 and ood.num_positive == ood.num_negative == 400


def test_accuracy_rejection_curve():
    samples, target = mc_samples()
    probs = samples.mean(0)
    curve = accuracy_rejection_curve(probs, target, entropy(probs), num_rates=10)
    correct = (probs.argmax(-1) == target).double()
    assert curve.accuracy[0].item() == pytest.approx(correct.mean().item())
    assert curve.accuracy[-1] >= curve.accuracy[0]
    assert bool((curve.oracle_accuracy >= curve.accuracy - 1e-12).all())
    keep = int(np.ceil(0.5 * 400))
    order = entropy(probs).argsort(stable=True)[:keep]
    assert curve.accuracy[5].item() == pytest.approx(correct[order].mean().item())


def test_detection_errors():
    with pytest.raises(BayesdropValueError, match=r"`is_positive`.*both positives and negatives"):
        detection_scores(torch.rand(5), torch.ones(5))
    with pytest.raises(BayesdropValueError, match=r"`scores`.*shape \(3,\)"):
        misclassification_detection(torch.full((3, 2), 0.5), torch.tensor([0, 1, 0]), torch.rand(4))
    with pytest.raises(BayesdropValueError, match=r"`ood_scores`.*finite"):
        ood_detection(torch.rand(3), torch.tensor([float("nan")]))


# ---------------------------------------------------------------------------------------------
# displays
# ---------------------------------------------------------------------------------------------
def test_displays_do_not_touch_pyplot():
    plt.close("all")
    samples, target = mc_samples()
    disp = ReliabilityDisplay.from_predictions(
        samples, target, num_bins=10, layout="samples"
    ).plot()
    assert disp.figure_ is disp.ax_.figure and len(disp.figure_.axes) == 2
    assert disp.ece == pytest.approx(
        bayesdrop.expected_calibration_error(samples, target, num_bins=10, layout="samples").item()
    )
    ClasswiseReliabilityDisplay.from_predictions(samples, target, layout="samples").plot()
    RegressionCalibrationDisplay.from_predictions(
        torch.zeros(20), torch.ones(20), torch.randn(20)
    ).plot()
    UncertaintyHistogramDisplay.from_scores(torch.rand(30)).plot()
    assert plt.get_fignums() == []


def test_display_on_given_axes():
    fig, (ax1, ax2) = plt.subplots(1, 2)
    try:
        samples, target = mc_samples()
        disp = ReliabilityDisplay.from_predictions(samples, target, layout="samples").plot(ax=ax1)
        assert disp.ax_ is ax1 and disp.figure_ is fig and disp.hist_ax_ is None
        UncertaintyHistogramDisplay.from_scores(torch.rand(30), torch.rand(20)).plot(ax=ax2)
        assert len(ax2.patches) > 0 and len(ax1.patches) > 0
    finally:
        plt.close(fig)


def test_display_validates():
    with pytest.raises(BayesdropValueError, match=r"`probs`.*logits"):
        ReliabilityDisplay.from_predictions(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FakePrediction:
    """A stand-in for the MC predictor's result (duck typing: `probs`, `samples`, MI)."""

    probs: torch.Tensor
    samples: torch.Tensor | None = None
    mutual_information: torch.Tensor | None = None


def test_report_from_probs_samples_and_prediction_result():
    samples, target = mc_samples()
    probs = samples.mean(0)
    from_probs = CalibrationReport.from_predictions(probs, target)
    from_samples = CalibrationReport.from_predictions(samples, target, layout="samples")
    from_result = CalibrationReport.from_predictions(FakePrediction(probs, samples), target)
    for other in (from_samples, from_result):
        assert other.metrics.ece == pytest.approx(from_probs.metrics.ece, abs=1e-6)
        assert other.metrics.nll == pytest.approx(from_probs.metrics.nll, abs=1e-6)
    assert from_probs.metrics.ece == pytest.approx(
        bayesdrop.expected_calibration_error(probs, target).item()
    )


def test_report_mutual_information_sources():
    samples, target = mc_samples()
    mi = mutual_information(samples)
    from_samples = CalibrationReport.from_predictions(
        samples, target, layout="samples", uncertainty="mutual_information"
    )
    torch.testing.assert_close(from_samples.id_scores, mi)
    marker = torch.arange(400.0)
    given = FakePrediction(samples.mean(0), mutual_information=marker)
    from_attr = CalibrationReport.from_predictions(given, target, uncertainty="mutual_information")
    torch.testing.assert_close(from_attr.id_scores, marker)
    with pytest.raises(BayesdropValueError, match=r"`uncertainty`.*without MC samples"):
        CalibrationReport.from_predictions(
            samples.mean(0), target, uncertainty="mutual_information"
        )


def test_report_renders(tmp_path):
    samples, target = mc_samples()
    report = CalibrationReport.from_predictions(
        samples,
        target,
        layout="samples",
        ood_scores=entropy(samples.mean(0)) + 0.3,
        name="toy <model>",
    )
    summary = report.summary()
    assert "ECE (15 bins, l1)" in summary and "OOD AUROC" in summary
    assert f"{report.metrics.ece:.4f}" in summary
    markdown = report.to_markdown()
    assert markdown.count("\n|") >= 9 and "| Brier score |" in markdown
    data = json.loads(report.to_json())
    assert data["metrics"]["ece"] == pytest.approx(report.metrics.ece)
    assert data["ood"]["auroc"] == pytest.approx(report.ood.auroc)
    assert data["conventions"]["last_bin_closed"] is True
    page = report.to_html(tmp_path / "report.html")
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == page
    assert "toy &lt;model&gt;" in page
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 5
    # self-contained: no external requests of any kind
    assert not re.search(
        r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|<script|<link|@import|url\(", page, re.I
    )
    assert plt.get_fignums() == []


def test_report_errors():
    with pytest.raises(BayesdropTypeError, match=r"`predictions`.*an object with `probs`"):
        CalibrationReport.from_predictions([0.5, 0.5], torch.tensor([0]))
    with pytest.raises(BayesdropValueError, match=r"`uncertainty`.*'predictive_entropy'"):
        CalibrationReport.from_predictions(
            torch.full((2, 2), 0.5), torch.tensor([0, 1]), uncertainty="bald"
        )
    with pytest.raises(BayesdropValueError, match=r"`predictions`.*logits"):
        CalibrationReport.from_predictions(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))


def test_sharded_report_in_one_process_equals_the_full_report(tmp_path):
    # outside a distributed job the shard is the whole data set; the multi-process case is in
    # tests/test_predict_distributed.py
    samples, target = mc_samples()
    dense = samples.double().reshape(8, 100, 4, 5)  # per-position predictions, (S, N, T, C)
    labels = target.reshape(100, 4).clone()
    labels[:10, 0] = -100
    kwargs = dict(layout="samples", ignore_index=-100, uncertainty="mutual_information")
    ood = entropy(samples.mean(0)) + 0.3
    full = CalibrationReport.from_predictions(dense, labels, ood_scores=ood, **kwargs)
    sharded = CalibrationReport.from_sharded_predictions(dense, labels, ood_scores=ood, **kwargs)
    assert sharded.probs is None and sharded.target is None
    assert sharded.to_dict() == full.to_dict()
    assert sharded.num_ignored == 10 and sharded.data_shape == (100, 4)
    classwise = ClasswiseReliabilityDisplay.from_predictions(full.probs, full.target, num_bins=15)
    for a, b in zip(sharded.classwise_bins, classwise.stats, strict=True):
        torch.testing.assert_close(a.counts, b.counts)
        torch.testing.assert_close(a.confidence_sum, b.confidence_sum)
        torch.testing.assert_close(a.accuracy_sum, b.accuracy_sum)
    torch.testing.assert_close(sharded.id_scores, full.id_scores)
    torch.testing.assert_close(sharded.confidence, full.confidence)
    assert torch.equal(sharded.correct, full.correct)
    page = sharded.to_html(tmp_path / "sharded.html")
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 5
    assert plt.get_fignums() == []


def test_report_needs_probabilities_or_per_point_values():
    report = CalibrationReport.from_predictions(torch.full((2, 2), 0.5), torch.tensor([0, 1]))
    with pytest.raises(BayesdropValueError, match=r"`confidence`"):
        dataclasses.replace(report, probs=None, target=None, confidence=None)
    with pytest.raises(BayesdropValueError, match=r"`uncertainty`.*'predictive_entropy'"):
        CalibrationReport.from_sharded_predictions(
            torch.full((2, 2), 0.5), torch.tensor([0, 1]), uncertainty="bald"
        )
    with pytest.raises(BayesdropValueError, match=r"`num_bins`"):
        CalibrationReport.from_sharded_predictions(
            torch.full((2, 2), 0.5), torch.tensor([0, 1]), num_bins=0
        )


def test_report_all_correct_has_no_misclassification_scores():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    report = CalibrationReport.from_predictions(probs, torch.tensor([0, 1]))
    assert report.misclassification is None and "misclassification" not in report.summary()


@needs_chromium
def test_html_report_renders_in_headless_chromium(tmp_path):
    samples, target = mc_samples()
    report = CalibrationReport.from_predictions(
        samples, target, layout="samples", ood_scores=torch.rand(100) + 1
    )
    page = tmp_path / "report.html"
    report.to_html(page)
    shot = tmp_path / "report.png"
    screenshot(page, shot, width=1200, height=2000)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 50_000  # a blank page is a few kB; ours holds four figures
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels[..., :3].std() > 0.1  # not a uniform page


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def test_cli_round_trip(tmp_path, capsys):
    samples, target = mc_samples()
    path = tmp_path / "predictions.npz"
    np.savez(path, samples=samples.numpy(), target=target.numpy(), ood_scores=np.linspace(0, 2, 50))
    out, js, md = tmp_path / "r.html", tmp_path / "r.json", tmp_path / "r.md"
    code = main(
        [
            "report",
            str(path),
            "--out",
            str(out),
            "--json",
            str(js),
            "--markdown",
            str(md),
            "--num-bins",
            "10",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    expected = CalibrationReport.from_predictions(
        samples, target, layout="samples", num_bins=10, ood_scores=np.linspace(0, 2, 50)
    )
    data = json.loads(js.read_text())
    assert data["metrics"]["ece"] == pytest.approx(expected.metrics.ece, abs=1e-12)
    assert data["ood"]["auroc"] == pytest.approx(expected.ood.auroc)
    assert f"{expected.metrics.ece:.4f}" in printed and out.exists() and md.exists()


def test_cli_errors(tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, probs=np.full((3, 2), 0.5))
    assert main(["report", str(path), "--out", str(tmp_path / "r.html")]) == 1
    assert "exactly one of `probs` or `samples`" in capsys.readouterr().err
    np.savez(path, probs=np.random.default_rng(0).normal(size=(3, 2)), target=np.array([0, 1, 0]))
    assert main(["report", str(path), "--out", str(tmp_path / "r.html")]) == 1
    assert "If these are logits" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "PREDICTIONS.npz holds" in capsys.readouterr().out.replace("\n", " ")


def test_python_dash_m_help():
    result = subprocess.run(
        [sys.executable, "-m", "bayesdrop", "report", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "--out" in result.stdout


def test_json_is_strict_without_bare_nan():
    """An ENCE of NaN (it was, at std 1e200) or any non-finite number is written as null."""
    from bayesdrop.calibration import RegressionReport
    from bayesdrop.calibration._json import strict_dumps

    text = strict_dumps({"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": (1,)})
    assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": [1]}
    assert "NaN" not in text and "Infinity" not in text
    std = torch.tensor([1e200, 2e200, 3e200, 4e200], dtype=torch.float64)
    report = RegressionReport.from_predictions(torch.zeros(4), std, std * 0.5, num_bins=2)
    data = json.loads(report.to_json(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert data["ence"] == pytest.approx(0.5)
    assert data["sharpness"] == pytest.approx(float(np.sqrt(7.5)) * 1e200)
    report = dataclasses.replace(report, ence=float("nan"))
    assert json.loads(report.to_json())["ence"] is None
    assert "NaN" not in report.render("json")


def test_display_binning_matches_its_statistics():
    """Issue 25: `binning="equal-mass"` drew equal-width bars titled "equal-mass"; statistics
    binned one way can no longer be drawn as the other."""
    samples, target = mc_samples()
    probs = samples.mean(0)
    confidence, correct = probs.amax(-1), probs.argmax(-1) == target
    width = bayesdrop.calibration.bin_statistics(confidence, correct, num_bins=10)
    mass = bayesdrop.calibration.bin_statistics(
        confidence, correct, num_bins=10, binning="equal_mass"
    )
    assert ReliabilityDisplay(width).binning == "equal_width"
    assert ReliabilityDisplay(mass).binning == "equal_mass"  # read from the edges
    with pytest.raises(BayesdropValueError, match=r"`binning`.*'equal_width', 'equal_mass'"):
        ReliabilityDisplay(width, binning="equal-mass")
    with pytest.raises(BayesdropValueError, match=r"`binning`.*not equal-width"):
        ReliabilityDisplay(mass, binning="equal_width")


def test_displays_take_what_the_report_takes():
    """Issue 25: `ReliabilityDisplay.from_predictions(pred, y)` rejected the prediction result
    that `CalibrationReport` accepts; dense input with `ignore_index` works the same way."""
    samples, target = mc_samples()
    pred = bayesdrop.ClassificationPrediction.from_samples(samples)
    report = CalibrationReport.from_predictions(pred, target, num_bins=10)
    disp = ReliabilityDisplay.from_predictions(pred, target, num_bins=10)
    assert disp.ece == pytest.approx(report.metrics.ece)
    dense, labels = pred.probs.reshape(40, 10, 5), target.reshape(40, 10).clone()
    labels[:, -1] = 255
    kept = labels != 255
    a = ReliabilityDisplay.from_predictions(dense, labels, layout="probs", ignore_index=255)
    b = ReliabilityDisplay.from_predictions(dense[kept], labels[kept])
    assert a.ece == pytest.approx(b.ece)
    ClasswiseReliabilityDisplay.from_predictions(pred, target)


def test_both_reports_render_through_one_base_and_name_their_kind():
    """Issue 25: the regression report repeated the renderers, and only its JSON had a kind."""
    import json

    from bayesdrop.calibration._render import ReportRendering

    samples, target = mc_samples()
    report = CalibrationReport.from_predictions(samples, target, layout="samples")
    regression = bayesdrop.RegressionReport.from_predictions(
        torch.zeros(50), torch.ones(50), torch.randn(50, generator=torch.Generator().manual_seed(0))
    )
    for rep, kind, title in (
        (report, "classification", "Calibration report"),
        (regression, "regression", "Regression calibration report"),
    ):
        assert isinstance(rep, ReportRendering)
        assert json.loads(rep.to_json())["kind"] == kind
        assert rep.summary().startswith(f"{title}: ")
        assert rep.to_markdown().startswith(f"## {title}: model")
        assert rep.render("text") == rep.summary()


def test_rejection_curve_display():
    samples, target = mc_samples()
    probs = samples.mean(0)
    disp = bayesdrop.calibration.RejectionCurveDisplay.from_predictions(
        probs, target, entropy(probs), num_rates=10
    ).plot()
    curve = accuracy_rejection_curve(probs, target, entropy(probs), num_rates=10)
    torch.testing.assert_close(disp.curve.accuracy, curve.accuracy)
    lines = disp.ax_.get_lines()
    assert len(lines) == 2 and f"{curve.aurc:.4f}" in disp.ax_.get_title()
    with pytest.raises(BayesdropTypeError, match=r"`curve`.*RejectionCurve"):
        bayesdrop.calibration.RejectionCurveDisplay(curve.accuracy)


def test_every_metric_the_html_report_shows_is_defined():
    """Each row of the classification and regression reports (with OOD scores and conformal
    sections) has a glossary definition, shown as the row's tooltip and in the glossary."""
    import html as html_lib

    from bayesdrop.calibration._html import definition
    from bayesdrop.conformal import SplitConformalClassifier, SplitConformalRegressor

    gen = torch.Generator().manual_seed(3)
    probs = torch.randn(400, 4, generator=gen).softmax(-1)
    y = torch.randint(0, 4, (400,), generator=gen)
    sets = SplitConformalClassifier("aps", alpha=0.1).fit(probs[:200], y[:200])
    samples = torch.randn(20, 300, generator=gen, dtype=torch.float64)
    pred = bayesdrop.RegressionPrediction.from_samples(samples, tau=2.0)
    target = torch.randn(300, generator=gen, dtype=torch.float64)
    intervals = SplitConformalRegressor().fit(pred, target)
    reports = [
        CalibrationReport.from_predictions(
            probs[200:], y[200:], ood_scores=torch.rand(50, generator=gen), conformal=sets
        ),
        bayesdrop.RegressionReport.from_predictions(pred, target=target, conformal=intervals),
    ]
    for report in reports:
        page = report.to_html()
        for label, _ in report._rows():
            found = definition(label)
            assert found is not None, f"no definition for the row {label!r}"
            term, text = found
            assert f'<td title="{html_lib.escape(text)}">{html_lib.escape(label)}</td>' in page
            assert f"<dt>{html_lib.escape(term)}</dt>" in page
    assert definition("a metric nobody defined") is None
