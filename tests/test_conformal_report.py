"""The reports' conformal section (issue 22): CalibrationReport / RegressionReport with a fitted
split conformal predictor measure its sets or intervals on the report's points; every number is
checked against bayesdrop.conformal's functions computed directly, in every output format."""

from __future__ import annotations

import dataclasses
import json

import matplotlib
import pytest
import torch

import bayesdrop
from bayesdrop import CalibrationReport
from bayesdrop.calibration import (
    ConformalIntervalQuality,
    ConformalSetQuality,
    RegressionReport,
)
from bayesdrop.conformal import (
    SplitConformalClassifier,
    SplitConformalRegressor,
    interval_coverage,
    mean_interval_width,
    set_quality,
)

matplotlib.use("Agg")

pytestmark = pytest.mark.usefixtures("one_thread")

C = 5


def mc_samples(num: int, gen: torch.Generator, s: int = 8):
    """MC samples of an over-confident model whose samples disagree more on some points."""
    logits = 1.5 * torch.randn(num, C, generator=gen, dtype=torch.float64)
    target = torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0]
    spread = torch.rand(1, num, 1, generator=gen, dtype=torch.float64) * 2
    noise = torch.randn(s, num, C, generator=gen, dtype=torch.float64)
    return (2.0 * logits + spread * noise).softmax(-1), target


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal, NaN where the other is NaN."""
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a[~a.isnan()], b[~b.isnan()])


def expected_bins(score: torch.Tensor, *values: torch.Tensor):
    order = torch.argsort(score, stable=True)
    chunks = torch.tensor_split(order, 10)
    return [torch.stack([v[c].mean() for c in chunks]) for v in (score, *values)]


def check_against_direct(q: ConformalSetQuality, sets, target, scores, ignore_index=None):
    direct = set_quality(sets, target, ignore_index=ignore_index)
    assert q.coverage == pytest.approx(direct.coverage, abs=1e-15)
    assert q.mean_set_size == pytest.approx(direct.mean_set_size, abs=1e-15)
    assert same(q.class_coverage, direct.class_conditional.coverage)
    assert torch.equal(q.class_count, direct.class_conditional.count)
    assert same(q.size_coverage, direct.size_stratified.coverage)
    assert torch.equal(q.size_count, direct.size_stratified.count)
    flat, labels = sets.reshape(-1, C), target.reshape(-1)
    if ignore_index is not None:
        flat, labels = flat[labels != ignore_index], labels[labels != ignore_index]
    covered = flat.gather(1, labels[:, None])[:, 0].double()
    score, cov, size = expected_bins(scores.double(), covered, flat.sum(-1).double())
    assert torch.allclose(q.bin_uncertainty, score) and torch.equal(q.bin_coverage, cov)
    assert torch.equal(q.bin_size, size) and q.bin_count.sum().item() == len(labels)


@pytest.mark.parametrize(
    ("score", "options"),
    [
        ("lac", {}),
        ("aps", {"randomized": False}),
        ("raps", {"randomized": False}),
        ("mi", {"beta": 4.0}),
        ("spread", {"beta": 4.0}),
        ("lac", {"mondrian": True}),
    ],
)
def test_set_quality_equals_the_conformal_functions(score, options):
    gen = torch.Generator().manual_seed(0)
    samples, target = mc_samples(3000, gen)
    cal = bayesdrop.ClassificationPrediction.from_samples(samples[:, :1500])
    test = bayesdrop.ClassificationPrediction.from_samples(samples[:, 1500:])
    cp = SplitConformalClassifier(score, alpha=0.1, **options).fit(cal, target[:1500])
    report = CalibrationReport.from_predictions(
        test, target[1500:], conformal=cp, uncertainty="mutual_information"
    )
    q = report.conformal
    assert isinstance(q, ConformalSetQuality)
    assert (q.score, q.alpha, q.num_calibration) == (score, 0.1, 1500)
    assert q.mondrian is options.get("mondrian", False)
    assert torch.equal(q.quantile, cp.quantile_)
    assert q.quantile.shape == ((C,) if q.mondrian else ())
    sets = cp.predict_sets(test)
    check_against_direct(q, sets, target[1500:], test.mutual_information)
    assert 0.85 < q.coverage < 0.95  # exchangeable: near 1 - alpha (n = 1500)


def dense_prediction(samples: torch.Tensor, shape: tuple[int, ...]):
    """A ClassificationPrediction of dense outputs: every field of the flat one reshaped."""
    flat = bayesdrop.ClassificationPrediction.from_samples(samples)
    fields = {
        name: value.reshape(*shape, *value.shape[1:])
        for name, value in vars(flat).items()
        if isinstance(value, torch.Tensor) and name != "samples"
    }
    return dataclasses.replace(flat, samples=samples.reshape(-1, *shape, C), **fields)


def test_raw_samples_dense_outputs_and_ignore_index():
    gen = torch.Generator().manual_seed(1)
    samples, target = mc_samples(2400, gen)
    # dense: (N, H, W, C) per pixel with one label in ten ignored
    labels = target.reshape(100, 4, 6).clone()
    labels[torch.rand(labels.shape, generator=gen) < 0.1] = -100
    cal, test = samples[:, :1200], samples[:, 1200:]
    cp = SplitConformalClassifier("spread", ignore_index=-100)
    cp.fit(dense_prediction(cal, (50, 4, 6)), labels[:50])
    expected = cp.predict_sets(dense_prediction(test, (50, 4, 6)))
    for predictions, layout in (
        (dense_prediction(test, (50, 4, 6)), None),
        (test.reshape(8, 50, 4, 6, C), "samples"),  # raw samples: the points become a prediction
    ):
        report = CalibrationReport.from_predictions(
            predictions, labels[50:], layout=layout, ignore_index=-100, conformal=cp
        )
        check_against_direct(report.conformal, expected, labels[50:], report.id_scores, -100)
        assert report.conformal.bin_count.sum() == report.metrics.num_data < 50 * 24


def test_probabilities_and_every_output_format():
    gen = torch.Generator().manual_seed(2)
    samples, target = mc_samples(2000, gen)
    probs = samples.mean(0)
    cp = SplitConformalClassifier(alpha=0.2).fit(probs[:1000], target[:1000])
    test_target = target[1000:].clone()
    test_target[test_target == 3] = 2  # class 3 has no test point: its coverage is NaN
    report = CalibrationReport.from_predictions(probs[1000:], test_target, conformal=cp, name="net")
    q = report.conformal
    check_against_direct(q, cp.predict_sets(probs[1000:]), test_target, report.id_scores)
    assert q.class_count[3] == 0 and q.class_coverage[3].isnan()
    data = json.loads(report.to_json(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    section = data["conformal"]
    assert section["kind"] == "sets" and section["class_coverage"][3] is None
    assert section["coverage"] == q.coverage and section["size_count"] == q.size_count.tolist()
    assert section["bin_coverage"] == q.bin_coverage.tolist()
    assert report.to_dict()["conformal"]["alpha"] == 0.2
    worst = int(torch.where(q.class_count > 0, q.class_coverage, torch.inf).argmin())
    for text in (report.summary(), report.to_markdown()):
        assert "lac score, alpha 0.2, n_cal 1000" in text
        assert f"{q.coverage:.4f}" in text and f"{q.mean_set_size:.4f}" in text
        assert f"{q.class_coverage[worst]:.4f} (class {worst}," in text
        filled = [k for k, n in enumerate(q.size_count.tolist()) if n]
        assert f"{filled[0]}: {q.size_coverage[filled[0]]:.4f}" in text
    assert "| conformal coverage (target 0.8) |" in report.to_markdown()
    title = "Conformal coverage and size against uncertainty"
    assert title in report.figures() and title in report.to_html()
    axes = report.figures()[title].axes
    assert len(axes) == 3 and axes[0].get_ylabel() == "coverage"
    line = axes[0].lines[0]
    assert list(line.get_ydata()) == q.bin_coverage.tolist()


def test_without_conformal_nothing_changes():
    gen = torch.Generator().manual_seed(3)
    samples, target = mc_samples(500, gen)
    report = CalibrationReport.from_predictions(samples.mean(0), target)
    assert report.conformal is None and report.to_dict()["conformal"] is None
    assert "conformal" not in report.summary()
    assert not any(t.startswith("Conformal") for t in report.figures())


def regression(num: int, gen: torch.Generator):
    """MC regression samples whose predicted std is 1.5 times too small."""
    mean = torch.randn(num, generator=gen, dtype=torch.float64)
    spread = 0.3 + torch.rand(num, generator=gen, dtype=torch.float64)
    samples = mean + spread * torch.randn(10, num, generator=gen, dtype=torch.float64)
    pred = bayesdrop.RegressionPrediction.from_samples(samples, tau=4.0)
    y = pred.mean + 1.5 * pred.total_variance.sqrt() * torch.randn(num, generator=gen)
    return pred, y


def part(pred, s):
    return bayesdrop.RegressionPrediction(
        pred.mean[s],
        pred.epistemic_variance[s],
        pred.aleatoric_variance[s],
        pred.total_variance[s],
        pred.num_samples,
    )


@pytest.mark.parametrize("score", ["normalized", "residual"])
def test_interval_quality_equals_the_conformal_functions(score):
    pred, y = regression(4000, torch.Generator().manual_seed(4))
    cal, test = part(pred, slice(0, 2000)), part(pred, slice(2000, None))
    cp = SplitConformalRegressor(score, alpha=0.1).fit(cal, y[:2000])
    report = RegressionReport.from_predictions(test, target=y[2000:], conformal=cp)
    q = report.conformal
    assert isinstance(q, ConformalIntervalQuality)
    lower, upper = cp.predict_intervals(test)
    assert q.coverage == interval_coverage(lower, upper, y[2000:])
    assert q.mean_width == pytest.approx(mean_interval_width(lower, upper), rel=1e-14)
    assert (q.score, q.num_calibration, q.quantile) == (score, 2000, cp.quantile_.item())
    # the Gaussian interval at 1 - alpha is the report's own PICP at that level
    assert q.gaussian_coverage == pytest.approx(report.picp[0.9], abs=1e-12)
    assert q.gaussian_coverage < 0.8 < 0.85 < q.coverage  # too narrow; conformal repairs it
    std = test.total_variance.sqrt()
    assert q.gaussian_mean_width == pytest.approx((2 * 1.6448536 * std).mean().item(), rel=1e-6)
    covered = ((lower <= y[2000:]) & (y[2000:] <= upper)).double()
    bin_std, bin_cov, bin_width = expected_bins(std, covered, upper - lower)
    assert torch.allclose(q.bin_std, bin_std) and torch.equal(q.bin_coverage, bin_cov)
    assert torch.allclose(q.bin_width, bin_width)
    # plain tensors (the total std) give the same section as the prediction object
    plain = RegressionReport.from_predictions(test.mean, std, y[2000:], conformal=cp).conformal
    assert plain.coverage == q.coverage and plain.mean_width == pytest.approx(q.mean_width)


def test_regression_output_formats():
    pred, y = regression(1000, torch.Generator().manual_seed(5))
    cp = SplitConformalRegressor(alpha=0.2).fit(part(pred, slice(0, 500)), y[:500])
    report = RegressionReport.from_predictions(
        part(pred, slice(500, None)), target=y[500:], conformal=cp
    )
    q = report.conformal
    data = json.loads(report.to_json(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert data["conformal"]["kind"] == "intervals"
    assert data["conformal"]["gaussian_coverage"] == q.gaussian_coverage
    assert data["conformal"]["bin_count"] == q.bin_count.tolist()
    for text in (report.summary(), report.to_markdown()):
        assert "normalized score, alpha 0.2, n_cal 500" in text
        assert f"{q.coverage:.4f}" in text and f"{q.gaussian_coverage:.4f}" in text
        assert f"{q.mean_width:.4f}" in text
    title = "Conformal coverage and size against uncertainty"
    axes = report.figures()[title].axes
    assert [ln.get_label() for ln in axes[0].lines[:2]] == ["conformal (normalized)", "Gaussian"]
    assert title in report.to_html()
    assert (
        RegressionReport.from_predictions(part(pred, slice(500, None)), target=y[500:]).to_dict()[
            "conformal"
        ]
        is None
    )


def test_bad_conformal_argument():
    gen = torch.Generator().manual_seed(6)
    samples, target = mc_samples(400, gen)
    probs = samples.mean(0)
    pred, y = regression(400, gen)
    with pytest.raises(
        TypeError, match=r"Expected `conformal` to be a fitted SplitConformalClassifier .* object"
    ):
        CalibrationReport.from_predictions(probs, target, conformal=object())
    with pytest.raises(ValueError, match=r"an unfitted SplitConformalClassifier\. Call its fit"):
        CalibrationReport.from_predictions(probs, target, conformal=SplitConformalClassifier())
    fitted_reg = SplitConformalRegressor().fit(pred, y)
    with pytest.raises(TypeError, match=r"SplitConformalClassifier .* SplitConformalRegressor"):
        CalibrationReport.from_predictions(probs, target, conformal=fitted_reg)
    fitted_cls = SplitConformalClassifier().fit(probs, target)
    with pytest.raises(TypeError, match=r"SplitConformalRegressor .* SplitConformalClassifier"):
        RegressionReport.from_predictions(pred, target=y, conformal=fitted_cls)
    with pytest.raises(ValueError, match="an unfitted SplitConformalRegressor"):
        RegressionReport.from_predictions(pred, target=y, conformal=SplitConformalRegressor())
    three = probs[:, :3] / probs[:, :3].sum(-1, keepdim=True)
    with pytest.raises(ValueError, match="over the 5 classes of the calibration"):
        CalibrationReport.from_predictions(three, target % 3, conformal=fitted_cls)
    with pytest.raises(TypeError, match='ClassificationPrediction for score="mi"'):
        mi = SplitConformalClassifier("mi").fit(
            bayesdrop.ClassificationPrediction.from_samples(samples), target
        )
        CalibrationReport.from_predictions(probs, target, conformal=mi)
