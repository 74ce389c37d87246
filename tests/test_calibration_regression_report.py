"""The regression report: the same numbers as the metric functions, figures, formats."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import matplotlib
import pytest
import torch
from chromium import needs_chromium, screenshot

from bayesdrop.calibration import (
    RegressionReport,
    expected_normalized_calibration_error,
    gaussian_crps,
    gaussian_negative_log_likelihood,
    picp,
    quantile_calibration_error,
)
from bayesdrop.exceptions import BayesdropTypeError, BayesdropValueError

matplotlib.use("Agg")


def overconfident(n: int = 3000, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, generator=gen, dtype=torch.float64)
    std = 0.5 + torch.rand(n, generator=gen, dtype=torch.float64)
    target = mean + 1.6 * std * torch.randn(n, generator=gen, dtype=torch.float64)
    return mean, std, target


@dataclass(frozen=True)
class Prediction:
    mean: torch.Tensor
    total_variance: torch.Tensor


def test_numbers_equal_the_metric_functions():
    mean, std, target = overconfident()
    report = RegressionReport.from_predictions(mean, std, target, num_bins=10)
    assert report.crps == pytest.approx(gaussian_crps(mean, std, target).item())
    assert report.nll == pytest.approx(gaussian_negative_log_likelihood(mean, std, target).item())
    assert report.quantile_calibration_error == pytest.approx(
        quantile_calibration_error(mean, std, target).item()
    )
    assert report.ence == pytest.approx(
        expected_normalized_calibration_error(mean, std, target, num_bins=10).item()
    )
    for q, value in report.picp.items():
        assert value == pytest.approx(picp(mean, std, target, level=q).item())
    assert report.picp[0.95] < 0.85  # over-confident: the intervals are too narrow
    assert report.sharpness == pytest.approx(math.sqrt(std.square().mean().item()))
    assert sum(report.ence_bins["counts"]) == 3000
    via_result = RegressionReport.from_predictions(Prediction(mean, std.square()), None, target)
    assert via_result.crps == pytest.approx(report.crps)


def test_renders_every_format(tmp_path):
    report = RegressionReport.from_predictions(*overconfident(500), name="toy <reg>")
    data = json.loads(report.render("json"))
    assert data["kind"] == "regression" and data["picp"]["0.9"] == report.picp[0.9]
    assert len(data["calibration_curve"]["observed"]) == 21
    assert "| CRPS |" in report.render("md")
    assert report.render("text").startswith("Regression calibration report: 500 points")
    page = report.to_html(tmp_path / "r.html")
    assert "toy &lt;reg&gt;" in page and page.count("data:image/png;base64,") == 3
    assert set(report.figures()) == {
        "Regression calibration curve",
        "Interval coverage",
        "Error against predicted std",
    }


def test_errors():
    mean, std, target = overconfident(10)
    with pytest.raises(BayesdropValueError, match=r"`std`.*positive"):
        RegressionReport.from_predictions(mean, -std, target)
    with pytest.raises(BayesdropValueError, match=r"`target`.*shape of `mean`"):
        RegressionReport.from_predictions(mean, std, target[:5])
    with pytest.raises(BayesdropTypeError, match=r"`std and target`"):
        RegressionReport.from_predictions(mean, std)
    with pytest.raises(BayesdropValueError, match=r"`format`.*'html', 'md'"):
        RegressionReport.from_predictions(mean, std, target).render("pdf")


@needs_chromium
def test_regression_html_renders_in_headless_chromium(tmp_path):
    page = tmp_path / "reg.html"
    RegressionReport.from_predictions(*overconfident(1000)).to_html(page)
    shot = tmp_path / "reg.png"
    screenshot(page, shot, width=1200, height=1400)
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (1400, 1200)
    assert len(shot.read_bytes()) > 40_000  # three figures, not a blank page
    assert pixels[..., :3].std() > 0.1
