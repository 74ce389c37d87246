"""Numbers that used to be silently wrong: half precision, float64 bin edges, out-of-range bins.

Every test runs on PyTorch's kernels and on the fused one-pass kernel (``BAYESDROP_FUSED``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from netcal.metrics import ECE, MCE

from bayesdrop.calibration import (
    BinStatistics,
    BrierScore,
    CalibrationMetrics,
    NegativeLogLikelihood,
    bin_statistics,
    brier_score,
    calibration_error_from_statistics,
    classification_metrics,
    expected_calibration_error,
    negative_log_likelihood,
)
from bayesdrop.calibration._fused import fused_top_label_sums
from bayesdrop.exceptions import BayesdropTypeError, BayesdropValueError

pytestmark = pytest.mark.usefixtures("metric_path")


def equal_width_bin(x, num_bins):
    from bayesdrop.calibration._binning import equal_width_bin  # imported late: new in 0.2

    return equal_width_bin(x, num_bins)


def probs_sum_atol(dtype):
    from bayesdrop.calibration._inputs import probs_sum_atol

    return probs_sum_atol(dtype)


def exact_bin(x: float, num_bins: int) -> int:
    """The bin of the exact value of the double ``x``: b / B <= x < (b + 1) / B."""
    return min(math.floor(Fraction(x) * num_bins), num_bins - 1)


def reference_metrics(probs64: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Brier and NLL of the given values, in float64 NumPy (zeros clamped at float32's tiny)."""
    onehot = np.eye(probs64.shape[1])[target]
    brier = float(((probs64 - onehot) ** 2).sum(1).mean())
    p_true = np.maximum(probs64[np.arange(len(target)), target], np.finfo(np.float32).tiny)
    nll = float(-np.log(p_true).mean())
    return brier, nll


# ---------------------------------------------------------------------------------------------
# half precision
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_softmax_is_accepted_and_summed_wide(dtype):
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4000, 10, generator=gen)
    target = torch.randint(0, 10, (4000,), generator=gen)
    probs = logits.to(dtype).softmax(-1)  # what autocast hands over
    row_error = (probs.double().sum(-1) - 1).abs().max().item()
    if dtype == torch.bfloat16:
        assert row_error > 1e-3  # above the float32 tolerance: the old check rejected it
    assert row_error <= probs_sum_atol(dtype)
    p64 = probs.double().numpy()
    brier, nll = reference_metrics(p64, target.numpy())
    m = classification_metrics(probs, target, num_bins=15)
    assert m.brier == pytest.approx(brier, rel=1e-6)
    assert m.nll == pytest.approx(nll, rel=1e-6)
    assert brier_score(probs, target).item() == pytest.approx(brier, rel=1e-6)
    assert negative_log_likelihood(probs, target).item() == pytest.approx(nll, rel=1e-6)
    # netcal on the same values (float64, 15 bins; no half value lies on an edge k/15)
    assert m.ece == pytest.approx(ECE(bins=15).measure(p64, target.numpy()), abs=1e-6)
    # streaming metrics sum in float32 or wider too
    for metric, value in ((BrierScore(), brier), (NegativeLogLikelihood(), nll)):
        for idx in torch.arange(4000).split(1000):
            metric.update(probs[idx], target[idx])
        assert metric.compute().item() == pytest.approx(value, rel=1e-6)
    stream = CalibrationMetrics().update(probs, target).compute()
    assert stream.brier == pytest.approx(brier, rel=1e-6)


def test_float16_nll_is_not_clamped_at_float16_tiny():
    probs = torch.tensor([[1e-6, 1 - 1e-6]], dtype=torch.float16)
    value = negative_log_likelihood(probs, torch.tensor([0])).item()
    expected = -math.log(float(probs[0, 0]))  # 13.80 (float16 stores 1.013e-6)
    assert value == pytest.approx(expected, rel=1e-6)
    assert value > 13.7  # the old float16 clamp gave -log(6.1e-5) = 9.70


def test_half_precision_tolerance_still_rejects_unnormalised_rows():
    bad = torch.tensor([[0.6, 0.3], [0.5, 0.5]], dtype=torch.bfloat16)  # off by 0.1
    with pytest.raises(BayesdropValueError, match=r"within 0\.015625 for torch\.bfloat16"):
        brier_score(bad, torch.tensor([0, 1]))
    with pytest.raises(BayesdropValueError, match=r"within 0\.001 for torch\.float32"):
        brier_score(torch.tensor([[0.6, 0.398], [0.5, 0.5]]), torch.tensor([0, 1]))


# ---------------------------------------------------------------------------------------------
# float64 bin edges: one exact rule on both paths
# ---------------------------------------------------------------------------------------------
def test_tenths_fall_in_the_exact_bin():
    # the double 0.3 is below 3/10: bin [0.2, 0.3), as netcal and exact arithmetic say
    x = torch.tensor([k / 10 for k in range(11)], dtype=torch.float64)
    expected = [exact_bin(v, 10) for v in x.tolist()]
    assert expected[3] == 2 and expected[4] == 4 and expected[10] == 9
    assert equal_width_bin(x, 10).tolist() == expected
    netcal_edges = np.linspace(0, 1, 11)
    netcal = np.clip(np.digitize(x.numpy(), netcal_edges) - 1, 0, 9)
    assert netcal.tolist() == expected
    stats = bin_statistics(x, torch.ones(11, dtype=torch.bool), num_bins=10)
    assert stats.counts.tolist() == np.bincount(expected, minlength=10).tolist()


def test_knn_probabilities_agree_with_netcal():
    # 10-NN class frequencies: every probability is a double k / 10, many on a bin edge
    gen = np.random.default_rng(0)
    votes = gen.integers(0, 10, size=(3000, 10))
    probs = np.stack([np.bincount(v, minlength=10) for v in votes]) / 10
    target = gen.integers(0, 10, size=3000)
    p, y = torch.from_numpy(probs), torch.from_numpy(target)
    ece = expected_calibration_error(p, y, num_bins=10).item()
    mce = expected_calibration_error(p, y, num_bins=10, norm="max").item()
    assert ece == pytest.approx(ECE(bins=10).measure(probs, target), abs=1e-12)
    assert mce == pytest.approx(MCE(bins=10).measure(probs, target), abs=1e-12)


def test_doubles_next_to_edges_on_both_paths():
    xs, bins = [], [3, 7, 10, 15, 49, 100]
    for num_bins in bins:
        for b in range(num_bins // 2, num_bins + 1):
            edge = b / num_bins
            xs += [np.nextafter(edge, 0.0), edge, np.nextafter(edge, 1.0)]
    x = torch.tensor([v for v in xs if 0.5 <= v <= 1.0], dtype=torch.float64)
    probs = torch.stack([x, 1 - x], -1)
    target = torch.zeros(len(x), dtype=torch.long)
    for num_bins in bins:
        expected = [exact_bin(v, num_bins) for v in x.tolist()]
        assert equal_width_bin(x, num_bins).tolist() == expected
        counts = np.bincount(expected, minlength=num_bins)
        stats = bin_statistics(x, torch.ones(len(x)), num_bins=num_bins)
        assert stats.counts.tolist() == counts.tolist()
        fused = fused_top_label_sums(probs, target, num_bins)
        if fused is not None:  # the compiled path, forced by BAYESDROP_FUSED=always
            assert fused.counts.tolist() == counts.tolist()


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(1, 1000))
def test_equal_width_bin_is_exact(x, num_bins):
    assert equal_width_bin(torch.tensor([x], dtype=torch.float64), num_bins).item() == exact_bin(
        x, num_bins
    )
    assert equal_width_bin(torch.tensor([x], dtype=torch.float32), num_bins).item() == exact_bin(
        float(np.float32(x)), num_bins
    )


# ---------------------------------------------------------------------------------------------
# bin statistics: nothing out of range, nothing empty
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("confidence", "correct", "error", "match"),
    [
        (torch.tensor([0.5, 1.5]), torch.tensor([1, 0]), BayesdropValueError, r"`confidence`.*"),
        (torch.tensor([-0.1, 0.5]), torch.tensor([1, 0]), BayesdropValueError, r"in \[0, 1\]"),
        (torch.tensor([float("nan"), 0.5]), torch.tensor([1, 0]), BayesdropValueError, "finite"),
        (torch.tensor([0.5, 0.7]), torch.tensor([2.0, 0.0]), BayesdropValueError, r"`correct`"),
        (torch.tensor([0.5, 0.7]), torch.tensor([float("nan"), 0.0]), BayesdropValueError, "NaN"),
        (torch.tensor([0.5, 0.7]), torch.tensor([1, 0, 1]), BayesdropValueError, r"shape \(2,\)"),
        (torch.tensor([[0.5, 0.7]]), torch.tensor([1, 0]), BayesdropValueError, "1-D"),
        (torch.tensor([0.5, 0.7]), [1, 0], BayesdropTypeError, r"`correct`.*Tensor"),
    ],
)
def test_bin_statistics_rejects_bad_input(confidence, correct, error, match):
    with pytest.raises(error, match=match):
        bin_statistics(confidence, correct, num_bins=4)


def test_calibration_error_of_empty_statistics_raises():
    zeros = torch.zeros(3, dtype=torch.float64)
    empty = BinStatistics(torch.linspace(0, 1, 4, dtype=torch.float64), zeros, zeros, zeros)
    for norm in ("l1", "l2", "max"):
        with pytest.raises(BayesdropValueError, match=r"`stats`.*at least one point, but got 0"):
            calibration_error_from_statistics(empty, norm)


def test_brier_of_confident_float32_rows_keeps_its_digits():
    # sum p^2 - 2 p_y + 1 cancels in float32: a Brier score of 2e-8 came out as 0 or 1e-7
    probs = torch.tensor([[1 - 1e-4, 1e-4]] * 3, dtype=torch.float32)
    p = probs.double()
    expected = ((p[:, 0] - 1) ** 2 + p[:, 1] ** 2).mean().item()
    assert brier_score(probs, torch.zeros(3, dtype=torch.long)).item() == pytest.approx(
        expected, rel=1e-6
    )
    stream = BrierScore().update(probs, torch.zeros(3, dtype=torch.long)).compute().item()
    assert stream == pytest.approx(expected, rel=1e-6)
