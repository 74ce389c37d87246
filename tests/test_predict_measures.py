"""Uncertainty read-outs of the predictor against closed forms and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats
from torch import nn

import bayesdrop
from bayesdrop import functional as BF
from bayesdrop.predict._accumulators import ClassificationAccumulator, RegressionAccumulator


def _h(p):
    return -sum(q * math.log(q) for q in p if q > 0)


def test_hand_computed_classification_measures():
    samples = torch.tensor([[[0.9, 0.1]], [[0.4, 0.6]]], dtype=torch.float64)
    pred = bayesdrop.ClassificationPrediction.from_samples(samples)
    predictive = _h([0.65, 0.35])
    expected = (_h([0.9, 0.1]) + _h([0.4, 0.6])) / 2
    assert pred.predictive_entropy.item() == pytest.approx(predictive, abs=1e-12)
    assert pred.expected_entropy.item() == pytest.approx(expected, abs=1e-12)
    assert pred.mutual_information.item() == pytest.approx(predictive - expected, abs=1e-12)
    assert pred.mutual_information.item() == pytest.approx(0.14840, abs=1e-5)
    assert pred.variation_ratio.item() == 0.5  # the samples vote for different classes


class OneUnit(nn.Module):
    """logits = (w * dropout(1), 0): two outcomes with probabilities p and 1 - p."""

    def __init__(self, p: float, w: float) -> None:
        super().__init__()
        self.drop, self.w = nn.Dropout(p), w

    def forward(self, x):
        h = self.drop(x) * self.w
        return torch.cat([h, torch.zeros_like(h)], -1)


@pytest.mark.parametrize("engine", ["loop", "batched", "cached"])
def test_closed_form_two_outcome_model(engine):
    p, w, num_samples = 0.3, 2.0, 4000
    x = torch.ones(3, 1, dtype=torch.float64)
    pred = bayesdrop.mc_predict(OneUnit(p, w), x, num_samples=num_samples, seed=5, engine=engine)
    on = torch.softmax(torch.tensor([w / (1 - p), 0.0], dtype=torch.float64), -1)
    off = torch.tensor([0.5, 0.5], dtype=torch.float64)
    mean = p * off + (1 - p) * on
    se = math.sqrt(p * (1 - p) / num_samples) * float((on - off).abs()[0])
    assert bool(((pred.probs - mean).abs() <= 4 * se).all())
    mi = _h(mean.tolist()) - (p * math.log(2) + (1 - p) * _h(on.tolist()))
    assert pred.mutual_information.mean().item() == pytest.approx(mi, rel=0.05)
    # variation ratio: the modal class is class 0 (prob 1 - p > 1/2), ties (off) vote class 0
    assert pred.variation_ratio.max().item() == 0.0


def test_variation_ratio_closed_form():
    p, num_samples = 0.3, 4000

    class Flip(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(p)

        def forward(self, x):
            h = self.drop(x)  # 0 with prob p, else 1/(1-p)
            return torch.cat([h, 1.0 - h], -1)

    pred = bayesdrop.mc_predict(Flip(), torch.ones(4, 1), num_samples=num_samples, seed=1)
    se = math.sqrt(p * (1 - p) / num_samples)
    assert bool(((pred.variation_ratio - p).abs() <= 4 * se).all())


def _random_probs(seed, s, n, c, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(s, n, c, generator=g, dtype=dtype)).softmax(-1)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    s=st.integers(1, 12),
    n=st.integers(1, 4),
    c=st.integers(2, 6),
    chunk=st.integers(1, 5),
)
def test_streaming_matches_samples_and_bounds_hold(seed, s, n, c, chunk):
    probs = _random_probs(seed, s, n, c)
    acc = ClassificationAccumulator(keep_samples=False, std_errors=False)
    for start in range(0, s, chunk):
        acc.update(probs[start : start + chunk].log())
    pred = acc.result("loop", "")
    ref = bayesdrop.ClassificationPrediction.from_samples(probs)
    for name in ("probs", "predictive_entropy", "expected_entropy", "variation_ratio"):
        torch.testing.assert_close(getattr(pred, name), getattr(ref, name))
    torch.testing.assert_close(pred.mutual_information, ref.mutual_information, atol=1e-10, rtol=0)
    tol = 1e-12
    assert bool((pred.mutual_information >= 0).all())
    assert bool((pred.mutual_information <= pred.predictive_entropy + tol).all())
    assert bool((pred.predictive_entropy <= math.log(c) + tol).all())
    assert bool((pred.variation_ratio >= 0).all() and (pred.variation_ratio <= 1 - 1 / c).all())


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    s=st.integers(2, 12),
    chunk=st.integers(1, 5),
    offset=st.sampled_from([0.0, 1e4, -3e6]),
    scale=st.sampled_from([1e-3, 1.0, 50.0]),
)
def test_regression_moments_streaming_and_nonnegative(seed, s, chunk, offset, scale):
    g = torch.Generator().manual_seed(seed)
    samples = offset + scale * torch.randn(s, 3, 2, generator=g, dtype=torch.float64)
    acc = RegressionAccumulator(tau=2.0, target=None, keep_samples=False, std_errors=True)
    for start in range(0, s, chunk):
        acc.update(samples[start : start + chunk])
    pred = acc.result("loop", "")
    torch.testing.assert_close(pred.mean, samples.mean(0), rtol=1e-12, atol=1e-9)
    ref_var = samples.var(0, unbiased=False)
    torch.testing.assert_close(pred.epistemic_variance, ref_var, rtol=1e-6, atol=1e-12)
    assert bool((pred.epistemic_variance >= 0).all())
    assert bool((pred.total_variance >= pred.aleatoric_variance).all())
    torch.testing.assert_close(pred.aleatoric_variance, torch.full_like(pred.mean, 0.5))
    torch.testing.assert_close(pred.mean_std_error, samples.std(0) / s**0.5)


def test_regression_closed_form_values():
    pred = bayesdrop.RegressionPrediction.from_samples(torch.tensor([[[1.0]], [[3.0]]]), tau=4.0)
    assert pred.epistemic_variance.item() == 1.0  # (1 + 9) / 2 - 2^2
    assert pred.aleatoric_variance.item() == 0.25
    het = bayesdrop.RegressionPrediction.from_samples(
        torch.zeros(2, 1, 1), log_variance_samples=torch.tensor([[[0.0]], [[2.0]]])
    )
    assert het.aleatoric_variance.item() == pytest.approx(math.e)  # exp(mean log variance)


def test_gaussian_log_likelihood_against_scipy():
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(7, 5, 2, generator=g, dtype=torch.float64)
    target = torch.randn(5, 2, generator=g, dtype=torch.float64)
    tau = 3.0
    ll = BF.gaussian_mc_log_likelihood(samples, target, tau)
    dens = stats.norm.logpdf(target.numpy(), samples.numpy(), 1 / math.sqrt(tau)).sum(-1)
    ref = special.logsumexp(dens, axis=0) - math.log(7)
    np.testing.assert_allclose(ll.numpy(), ref, rtol=1e-12)
    # the METHODS.md §0 form, written out
    sq = ((target - samples) ** 2).sum(-1)
    form = torch.logsumexp(-tau / 2 * sq, 0) - math.log(7) - math.log(2 * math.pi) + math.log(tau)
    torch.testing.assert_close(ll, form)


def test_heteroscedastic_log_likelihood_against_scipy():
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(6, 4, 1, generator=g, dtype=torch.float64)
    log_var = torch.randn(6, 4, 1, generator=g, dtype=torch.float64)
    target = torch.randn(4, 1, generator=g, dtype=torch.float64)
    ll = BF.heteroscedastic_mc_log_likelihood(mean, log_var, target)
    dens = stats.norm.logpdf(target.numpy(), mean.numpy(), np.exp(log_var.numpy() / 2)).sum(-1)
    np.testing.assert_allclose(ll.numpy(), special.logsumexp(dens, 0) - math.log(6), rtol=1e-12)


def test_jackknife_std_error_matches_the_delta_method():
    # MI = mean_s KL(p_s || p_bar), so its delta-method SE is std_s KL(p_s || p_bar) / sqrt(S)
    probs = _random_probs(3, 512, 200, 4)
    acc = ClassificationAccumulator(keep_samples=False, std_errors=True)
    for start in range(0, 512, 64):
        acc.update(probs[start : start + 64].log())
    _, mi_se = acc.std_error()
    mean = probs.mean(0)
    kl = (probs * (probs.log() - mean.log())).sum(-1)
    delta = kl.std(0) / math.sqrt(512)
    ratio = (mi_se / delta).mean().item()
    assert 0.85 < ratio < 1.15, ratio
    probs_se, _ = acc.std_error()
    torch.testing.assert_close(probs_se, probs.std(0) / math.sqrt(512))


def test_merge_moments_equals_direct():
    x = torch.randn(9, 3, dtype=torch.float64)
    mean, m2 = BF.merge_moments(4, *BF.sample_moments(x[:4]), 5, *BF.sample_moments(x[4:]))
    torch.testing.assert_close(mean, x.mean(0))
    torch.testing.assert_close(m2, x.var(0) * 8)
