"""Acquisition scores against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

import bayesdrop.functional
from bayesdrop import active

# two samples, three points, two classes
SAMPLES = torch.tensor(
    [
        [[1.0, 0.0], [0.5, 0.5], [0.8, 0.2]],
        [[0.0, 1.0], [0.5, 0.5], [0.6, 0.4]],
    ],
    dtype=torch.float64,
)


def _h(*p: float) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


def test_bald_by_hand():
    expected = [
        _h(0.5, 0.5) - 0.0,
        _h(0.5, 0.5) - _h(0.5, 0.5),
        _h(0.7, 0.3) - (_h(0.8, 0.2) + _h(0.6, 0.4)) / 2,
    ]
    assert torch.allclose(active.bald(SAMPLES), torch.tensor(expected, dtype=torch.float64))


def test_max_entropy_by_hand():
    expected = [_h(0.5, 0.5), _h(0.5, 0.5), _h(0.7, 0.3)]
    got = active.max_entropy(SAMPLES)
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64))


def test_variation_ratio_by_hand():
    # votes: point 0 -> {0, 1}: 1 - 1/2; point 1 -> ties go to class 0 twice; point 2 -> 0 twice
    assert active.variation_ratio(SAMPLES).tolist() == [0.5, 0.0, 0.0]


def test_mean_std_by_hand():
    # point 0: std of (1, 0) = 0.5 for both classes; point 2: std of (0.8, 0.6) = 0.1
    got = active.mean_std(SAMPLES)
    assert torch.allclose(got, torch.tensor([0.5, 0.0, 0.1], dtype=torch.float64))


def test_margin_by_hand():
    # mean probabilities (0.5, 0.5), (0.5, 0.5), (0.7, 0.3)
    got = active.margin(SAMPLES)
    assert torch.allclose(got, torch.tensor([1.0, 1.0, 0.6], dtype=torch.float64))


def test_random_scores_seeded_and_dispatch():
    a = active.acquisition_scores(SAMPLES, "random", seed=3)
    assert torch.equal(a, active.random_scores(3, seed=3))
    assert not torch.equal(a, active.random_scores(3, seed=4))
    for name in ("bald", "max_entropy", "variation_ratio", "mean_std", "margin"):
        fn = getattr(active, name)
        assert torch.equal(active.acquisition_scores(SAMPLES, name), fn(SAMPLES))


def test_unknown_method_and_bad_samples():
    with pytest.raises(ValueError, match="Expected `method` to be one of 'bald'"):
        active.acquisition_scores(SAMPLES, "entropy")
    with pytest.raises(
        ValueError, match=r"Expected `samples` to be a floating tensor .* \(S, N, C\)"
    ):
        active.bald(SAMPLES[0])
    with pytest.raises(ValueError, match=r"entries in \[0, 1\].*logits\.softmax"):
        active.bald(SAMPLES * 3 - 1)
    # issue 25: rows that are not distributions were scored; ECE rejected the same rows
    for score in (active.bald, active.max_entropy, active.margin, active.mean_std):
        with pytest.raises(ValueError, match=r"`samples`.*whose rows sum to 1"):
            score(SAMPLES * 0.5)


def test_variation_ratio_is_one_function_that_votes():
    # issue 25: one public object per name; it votes with argmax, so logits give the same value
    assert active.variation_ratio is bayesdrop.functional.variation_ratio
    logits = torch.log(SAMPLES) * 3.0
    assert torch.equal(active.variation_ratio(logits), active.variation_ratio(SAMPLES))
    with pytest.raises(ValueError, match=r"Expected `samples` to be a floating tensor"):
        active.variation_ratio(SAMPLES[0])
    with pytest.raises(TypeError, match=r"`samples`.*but got a list"):
        active.variation_ratio([[[0.5, 0.5]]])
