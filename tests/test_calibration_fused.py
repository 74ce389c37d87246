"""The fused one-pass CPU kernel of the classification metrics equals the PyTorch path."""

from __future__ import annotations

import pytest
import torch

from bayesdrop.calibration import _fused, brier_score, classification_metrics
from bayesdrop.calibration._fused import FUSED_MIN_ELEMENTS, fused_mode, fused_top_label_sums
from bayesdrop.exceptions import BayesdropValueError

pytest.importorskip("numba")


def metrics_both_ways(monkeypatch, probs, target, num_bins=15):
    monkeypatch.setenv("BAYESDROP_FUSED", "never")
    eager = classification_metrics(probs, target, num_bins=num_bins)
    monkeypatch.setenv("BAYESDROP_FUSED", "always")
    fused = classification_metrics(probs, target, num_bins=num_bins)
    return eager, fused


def assert_same(eager, fused):
    assert fused.accuracy == eager.accuracy
    assert fused.num_data == eager.num_data and fused.num_bins == eager.num_bins
    for name in ("ece", "mce", "brier", "nll"):
        assert getattr(fused, name) == pytest.approx(getattr(eager, name), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("num_bins", [1, 7, 15])
def test_fused_equals_pytorch(monkeypatch, dtype, num_bins):
    gen = torch.Generator().manual_seed(num_bins)
    probs = (3 * torch.randn(5000, 6, generator=gen, dtype=dtype)).softmax(-1)
    target = torch.randint(0, 6, (5000,), generator=gen)
    assert_same(*metrics_both_ways(monkeypatch, probs, target, num_bins))


def test_ties_confidence_one_and_edges_agree(monkeypatch):
    # ties (the first maximal class is the prediction), confidence exactly 1.0 (last bin) and
    # confidences exactly on bin edges
    probs = torch.tensor(
        [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0],
         [0.0, 0.0, 1.0], [0.6, 0.4, 0.0], [0.2, 0.2, 0.6], [0.0, 0.8, 0.2]],
        dtype=torch.float64,
    )  # fmt: skip
    target = torch.tensor([0, 1, 2, 0, 1, 0, 2, 1])
    eager, fused = metrics_both_ways(monkeypatch, probs, target, num_bins=5)
    assert_same(eager, fused)
    assert fused.accuracy == 5 / 8  # rows 0, 3, 5, 6, 7: the tied rows 1 and 2 predict class 0


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (float("-inf"), "finite"),
        (-0.25, r"logits\.softmax"),
        (1.25, r"logits\.softmax"),
    ],
)
@pytest.mark.parametrize("column", [0, 2])  # column 0 starts the running maximum
def test_fused_path_raises_like_pytorch(monkeypatch, bad, match, column):
    monkeypatch.setenv("BAYESDROP_FUSED", "always")
    probs = torch.full((50, 4), 0.25)
    probs[37, column] = bad
    with pytest.raises(BayesdropValueError, match=match):
        classification_metrics(probs, torch.zeros(50, dtype=torch.long))


def test_fused_path_checks_row_sums(monkeypatch):
    monkeypatch.setenv("BAYESDROP_FUSED", "always")
    probs = torch.full((50, 4), 0.25)
    probs[10] = 0.2
    with pytest.raises(BayesdropValueError, match="rows sum to 1"):
        brier_score(probs, torch.zeros(50, dtype=torch.long))


def test_when_the_kernel_applies(monkeypatch):
    small = torch.full((10, 2), 0.5)
    y = torch.zeros(10, dtype=torch.long)
    monkeypatch.setenv("BAYESDROP_FUSED", "auto")
    assert fused_top_label_sums(small, y, 3) is None  # below FUSED_MIN_ELEMENTS
    big = torch.full((FUSED_MIN_ELEMENTS // 2, 2), 0.5)
    assert fused_top_label_sums(big, torch.zeros(len(big), dtype=torch.long), 3) is not None
    assert fused_top_label_sums(small.half(), y, 3) is None  # dtype without a kernel
    monkeypatch.setenv("BAYESDROP_FUSED", "never")
    assert fused_top_label_sums(big, torch.zeros(len(big), dtype=torch.long), 3) is None
    monkeypatch.setenv("BAYESDROP_FUSED", "always")
    assert fused_top_label_sums(small, y, 3) is not None
    monkeypatch.setattr(_fused, "_kernel", lambda: None)  # numba not installed
    assert fused_top_label_sums(small, y, 3) is None
    assert classification_metrics(small, y).accuracy == 1.0


def test_bad_mode_is_an_error(monkeypatch):
    monkeypatch.setenv("BAYESDROP_FUSED", "sometimes")
    with pytest.raises(BayesdropValueError, match=r"`BAYESDROP_FUSED`.*'auto', 'always', 'never'"):
        fused_mode()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("num_classes", [63, 64, 100, 256, 257, 1000])
def test_long_rows_equal_pytorch(monkeypatch, dtype, num_classes):
    # many classes take the blocked, vectorised path; ties inside a block and across blocks
    # predict the first maximal class, as argmax
    gen = torch.Generator().manual_seed(num_classes)
    probs = (4 * torch.randn(600, num_classes, generator=gen, dtype=dtype)).softmax(-1)
    probs[:40] = 1 / num_classes  # a tie over the whole row
    probs[40:80] = 0.0
    probs[40:80, [3, num_classes - 1]] = 0.5  # a tie across blocks
    probs[80:120] = 0.0
    probs[80:120, [num_classes - 2, num_classes - 1]] = 0.5  # a tie in the last block
    probs[120:130] = 0.0
    probs[120:130, num_classes - 1] = 1.0  # confidence exactly 1
    target = torch.randint(0, num_classes, (600,), generator=gen)
    target[40:60] = 3
    target[80:100] = num_classes - 2
    eager, fused = metrics_both_ways(monkeypatch, probs, target)
    assert_same(eager, fused)
    assert fused.ece == eager.ece and fused.mce == eager.mce
    # the blocked pass equals the scalar pass: the same bins bit for bit, the same NLL; the sum
    # of squares (Brier) only summed in another order
    blocked = fused_top_label_sums(probs, target, 15)
    monkeypatch.setattr(_fused, "LONG_ROW", 10**9)
    scalar = fused_top_label_sums(probs, target, 15)
    assert blocked is not None and scalar is not None
    for name in ("counts", "hits", "confidence_sum"):
        assert torch.equal(getattr(blocked, name), getattr(scalar, name))
    assert blocked.nll_sum == scalar.nll_sum
    assert blocked.brier_sum == pytest.approx(scalar.brier_sum, rel=1e-13)
    assert blocked.max_sum_error == pytest.approx(scalar.max_sum_error, abs=1e-13)


@pytest.mark.parametrize(
    ("bad", "match"),
    [(float("nan"), "finite"), (-float("nan"), "finite"), (float("inf"), "finite"),
     (-0.25, r"logits\.softmax"), (1.25, r"logits\.softmax")],
)  # fmt: skip
@pytest.mark.parametrize("column", [0, 255, 256, 299])  # first, end of a block, next block, last
def test_long_rows_raise_like_pytorch(monkeypatch, bad, match, column):
    monkeypatch.setenv("BAYESDROP_FUSED", "always")
    probs = torch.full((20, 300), 1 / 300)
    probs[13, column] = bad
    with pytest.raises(BayesdropValueError, match=match):
        classification_metrics(probs, torch.zeros(20, dtype=torch.long))


def test_long_rows_accept_negative_zero(monkeypatch):
    # -0.0 has the sign bit set: the kernel flags the input and the PyTorch path takes it
    probs = torch.full((20, 100), 0.01)
    probs[5, :2] = torch.tensor([-0.0, 0.02])
    target = torch.zeros(20, dtype=torch.long)
    eager, fused = metrics_both_ways(monkeypatch, probs, target)
    assert_same(eager, fused)
    flagged = fused_top_label_sums(probs, target, 15)
    assert flagged is not None and flagged.out_of_range
