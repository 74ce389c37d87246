"""Vector scaling, Dirichlet calibration, variance scaling and isotonic CDF recalibration:
what each recovers, agreement with uncertainty-toolbox where they overlap, and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

import bayesdrop
from bayesdrop.calibration import (
    DirichletCalibration,
    IsotonicCDFRecalibration,
    TemperatureScaling,
    VarianceScaling,
    VectorScaling,
    gaussian_negative_log_likelihood,
    negative_log_likelihood,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def classification(num=6000, c=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(num, c, generator=gen, dtype=torch.float64)
    target = torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0]
    return logits, target


# ---------------------------------------------------------------- classification


def test_vector_scaling_recovers_per_class_scales_and_offsets():
    logits, target = classification()
    a = torch.tensor([2.0, 0.5, 1.0, 3.0], dtype=torch.float64)
    b = torch.tensor([1.0, 0.0, -1.0, 0.5], dtype=torch.float64)
    # the model's logits are (truth - b) / a: vector scaling undoes it with weight a, bias b
    vs = VectorScaling().fit((logits - b) / a, target)
    centred = vs.bias_ - vs.bias_.mean()
    torch.testing.assert_close(vs.weight_, a, atol=0.15, rtol=0.08)
    torch.testing.assert_close(centred, b - b.mean(), atol=0.15, rtol=0)


def test_vector_scaling_reduces_to_temperature_scaling_on_a_global_temperature():
    logits, target = classification(seed=1)
    ts = TemperatureScaling().fit(2.5 * logits, target)
    vs = VectorScaling().fit(2.5 * logits, target)
    torch.testing.assert_close(
        vs.weight_, torch.full_like(vs.weight_, 1 / ts.temperature_), atol=0.05, rtol=0
    )
    nll = negative_log_likelihood
    assert nll(vs.transform(2.5 * logits), target) <= nll(ts.transform(2.5 * logits), target)
    # probabilities and log-probabilities as inputs, as in TemperatureScaling
    probs = (2.5 * logits).softmax(-1)
    # (on log p = z - logsumexp(z) it is another model: a per-class weight does not cancel the
    # row's shift, so only the probabilities and log-probabilities routes agree)
    from_probs = VectorScaling(inputs="probs").fit(probs, target)
    from_log = VectorScaling(inputs="log_probs").fit(probs.log(), target)
    torch.testing.assert_close(from_log.transform(probs.log()), from_probs.transform(probs))


def test_dirichlet_calibration_recovers_a_dirichlet_map():
    logits, target = classification(8000, 3, seed=2)
    truth = logits.softmax(-1)
    # a model whose probabilities are a Dirichlet map of the truth: log q = A log p + c
    A = torch.tensor([[0.5, 0.1, 0.0], [0.0, 0.4, 0.1], [0.1, 0.0, 0.6]], dtype=torch.float64)
    model = (truth.log() @ A.T + torch.tensor([0.2, -0.1, 0.0], dtype=torch.float64)).softmax(-1)
    dc = DirichletCalibration(reg_lambda=0.0, reg_mu=0.0).fit(model, target)
    fixed = dc.transform(model)
    nll = {
        k: float(negative_log_likelihood(v, target))
        for k, v in {"fixed": fixed, "model": model, "truth": truth}.items()
    }
    assert nll["fixed"] < nll["model"] - 0.05
    assert nll["fixed"] == pytest.approx(nll["truth"], abs=0.01)
    # W A = I on the directions the softmax sees (rows up to a common shift)
    product = dc.weight_ @ A
    product = product - product.mean(0, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64) - 1 / 3
    torch.testing.assert_close(product, eye, atol=0.1, rtol=0)
    # ODIR: a strong penalty keeps W diagonal and b near zero
    strong = DirichletCalibration(reg_lambda=1e4, reg_mu=1e4).fit(model, target)
    off = strong.weight_ - torch.diag(strong.weight_.diagonal())
    assert off.abs().max() < 1e-3 and strong.bias_.abs().max() < 1e-3
    assert fixed.shape == model.shape and torch.allclose(fixed.sum(-1), torch.ones(8000).double())


def test_matrix_scaling_bad_input():
    logits, target = classification(100)
    with pytest.raises(ValueError, match="Call fit first"):
        VectorScaling().transform(logits)
    with pytest.raises(ValueError, match='inputs="probs"'):
        VectorScaling().fit(logits.softmax(-1), target)  # probabilities passed as logits
    with pytest.raises(ValueError, match="Expected `probs` to be probabilities"):
        DirichletCalibration().fit(logits, target)
    with pytest.raises(ValueError, match=r"labels in \[0, 3\]"):
        VectorScaling().fit(logits, target + 4)
    with pytest.raises(ValueError, match="Expected `inputs` to be one of"):
        VectorScaling(inputs="scores")
    with pytest.raises(ValueError, match="Expected `reg_lambda` to be non-negative"):
        DirichletCalibration(reg_lambda=-1.0)
    vs = VectorScaling().fit(logits, target)
    with pytest.raises(ValueError, match="4 classes as in fit"):
        vs.transform(logits[:, :3])


# ---------------------------------------------------------------- regression


def regression(num=8000, seed=3, true_scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(num, generator=gen, dtype=torch.float64)
    noise_std = 0.5 + x
    y = torch.sin(3 * x) + true_scale * noise_std * torch.randn(num, generator=gen).double()
    samples = torch.sin(3 * x) + 0.3 * noise_std * torch.randn(20, num, generator=gen).double()
    pred = bayesdrop.RegressionPrediction.from_samples(
        samples, log_variance_samples=(2 * noise_std.log()).expand(20, -1).clone()
    )
    return pred, y


def test_variance_scaling_is_the_nll_minimiser_and_feeds_the_metrics():
    pred, y = regression()
    vs = VarianceScaling().fit(pred, y)
    std = pred.total_variance.sqrt()

    def nll(s):
        return float(gaussian_negative_log_likelihood(pred.mean, float(np.sqrt(s)) * std, y))

    best = minimize_scalar(nll, bounds=(0.01, 100), method="bounded", options={"xatol": 1e-8})
    assert vs.scale_ == pytest.approx(best.x, rel=1e-5)
    fixed = vs.transform(pred)
    assert isinstance(fixed, bayesdrop.RegressionPrediction)
    torch.testing.assert_close(fixed.total_variance, vs.scale_ * pred.total_variance)
    torch.testing.assert_close(
        fixed.epistemic_variance + fixed.aleatoric_variance, fixed.total_variance
    )
    assert (
        gaussian_negative_log_likelihood(fixed.mean, fixed.total_variance.sqrt(), y)
        < nll(1.0) - 0.3
    )
    # the samples carry the scale: the MC log-likelihood is that of the scaled model
    assert fixed.log_likelihood(y).mean() > pred.log_likelihood(y).mean() + 0.3
    again = bayesdrop.RegressionPrediction.from_samples(
        fixed.samples, log_variance_samples=fixed.log_variance_samples
    )
    torch.testing.assert_close(again.total_variance, fixed.total_variance)
    # a homoscedastic prediction: tau is divided by s
    homo = bayesdrop.RegressionPrediction.from_samples(pred.samples, tau=4.0)
    scaled = VarianceScaling().fit(homo, y).transform(homo)
    again = bayesdrop.RegressionPrediction.from_samples(scaled.samples, tau=scaled.tau)
    torch.testing.assert_close(again.total_variance, scaled.total_variance)
    # the regression report reads it
    report = bayesdrop.calibration.RegressionReport.from_predictions(fixed, target=y)
    before = bayesdrop.calibration.RegressionReport.from_predictions(pred, target=y)
    assert report.to_dict() != before.to_dict()


def test_variance_scaling_agrees_with_uncertainty_toolbox():
    uct = pytest.importorskip("uncertainty_toolbox")
    pred, y = regression(seed=4)
    vs = VarianceScaling().fit(pred, y)
    mean, std = pred.mean.numpy(), pred.total_variance.sqrt().numpy()
    # uncertainty-toolbox scales the std by the ratio that minimises the calibration error
    # (not the NLL); for a model off by one global factor both find it
    recal = uct.recalibration.get_std_recalibrator(mean, std, y.numpy(), criterion="ma_cal")
    ratio = float(recal(np.ones(1))[0])
    assert np.sqrt(vs.scale_) == pytest.approx(ratio, rel=0.03)
    # the truth: noise twice the aleatoric std, the epistemic variance 0.09 * 19/20 of it
    assert np.sqrt(vs.scale_) == pytest.approx(2 / np.sqrt(1 + 0.09 * 0.95), rel=0.03)


def test_isotonic_cdf_recalibration_agrees_with_uncertainty_toolbox():
    uct = pytest.importorskip("uncertainty_toolbox")
    pred, y = regression(seed=5)
    cal, test = slice(0, 4000), slice(4000, None)

    def part(index):
        return dataclasses.replace(
            pred,
            mean=pred.mean[index],
            total_variance=pred.total_variance[index],
            epistemic_variance=pred.epistemic_variance[index],
            aleatoric_variance=pred.aleatoric_variance[index],
            samples=None,
            log_variance_samples=None,
        )

    iso = IsotonicCDFRecalibration().fit(part(cal), y[cal])
    mean, std = pred.mean.numpy(), pred.total_variance.sqrt().numpy()
    std_test = pred.total_variance[test].sqrt()
    recal = uct.recalibration.get_quantile_recalibrator(mean[cal], std[cal], y[cal].numpy())
    for level in (0.05, 0.25, 0.5, 0.75, 0.95):
        ours = iso.quantile(part(test), level)
        theirs = torch.from_numpy(recal(mean[test], std[test], level))
        hit, their_hit = ((y[test] <= q).double().mean().item() for q in (ours, theirs))
        # calibrated on held-out points (the raw Gaussian is far off, see below)
        assert hit == pytest.approx(level, abs=0.015)
        if level in (0.25, 0.5, 0.75):
            # uncertainty-toolbox reads the empirical CDF at 100 expected levels and inverts the
            # isotonic fit there: in the middle, equal within a tenth of a standard deviation
            assert ((ours - theirs).abs() / std_test).max() < 0.1, level
            assert their_hit == pytest.approx(level, abs=0.025)
        else:
            # in the tails its first and last grid steps (1% wide, 10% of the points here)
            # interpolate linearly: bayesdrop's inverse of the fit at every point is closer
            assert abs(hit - level) < abs(their_hit - level)
    raw = pred.mean[test] + 1.645 * pred.total_variance[test].sqrt()
    assert (y[test] <= raw).double().mean().item() < 0.8
    lower, upper = iso.predict_intervals(part(test), alpha=0.1)
    inside = ((lower <= y[test]) & (y[test] <= upper)).double().mean().item()
    assert inside == pytest.approx(0.9, abs=0.02)
    # R(F(y)) of held-out points is close to uniform
    levels = iso.cdf(part(test), y[test])
    assert levels.min() >= 0 and levels.max() <= 1
    assert abs((levels <= 0.3).double().mean().item() - 0.3) < 0.03


def test_regression_recalibration_bad_input():
    pred, y = regression(100)
    logits, target = classification(100)
    cls = bayesdrop.ClassificationPrediction.from_samples(logits.softmax(-1)[None])
    with pytest.raises(TypeError, match="Expected `pred` to be a RegressionPrediction"):
        VarianceScaling().fit(cls, target)
    with pytest.raises(ValueError, match="shaped like the mean"):
        VarianceScaling().fit(pred, y[:10])
    with pytest.raises(ValueError, match="Call fit first"):
        VarianceScaling().transform(pred)
    with pytest.raises(ValueError, match="Call fit first"):
        IsotonicCDFRecalibration().quantile(pred, 0.5)
    iso = IsotonicCDFRecalibration().fit(pred, y)
    for level in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"Expected `level` to be in \(0, 1\)"):
            iso.quantile(pred, level)
    with pytest.raises(ValueError, match="Expected `target` to be finite"):
        iso.fit(pred, torch.full_like(y, float("nan")))
    with pytest.raises(ValueError, match="some residual"):
        VarianceScaling().fit(pred, pred.mean)
    zero = dataclasses.replace(pred, total_variance=torch.zeros_like(pred.mean))
    with pytest.raises(ValueError, match=r"Expected `pred\.total_variance` to be positive"):
        VarianceScaling().fit(zero, y)
