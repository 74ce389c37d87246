"""Temperature scaling and netcal-backed recalibrators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from netcal.scaling import TemperatureScaling as NetcalTemperatureScaling

import bayesdrop
from bayesdrop.calibration import (
    BetaCalibration,
    HistogramBinning,
    IsotonicCalibration,
    TemperatureScaling,
    expected_calibration_error,
    negative_log_likelihood,
)
from bayesdrop.exceptions import BayesdropTypeError, BayesdropValueError


def synthetic(true_temperature: float, n: int = 10_000, c: int = 6, seed: int = 0):
    """Logits whose labels follow softmax(logits / T): the right temperature is T."""
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(n, c, generator=gen, dtype=torch.float64)
    target = torch.multinomial((logits / true_temperature).softmax(-1), 1, generator=gen).squeeze(1)
    return logits, target


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_recovers_known_temperature(true_temperature):
    logits, target = synthetic(true_temperature)
    ts = TemperatureScaling().fit(logits, target)
    assert ts.temperature_ == pytest.approx(true_temperature, rel=0.05)
    # the fitted T minimises the NLL: nearby temperatures are worse
    nll = [
        negative_log_likelihood((logits / (k * ts.temperature_)).softmax(-1), target).item()
        for k in (0.97, 1.0, 1.03)
    ]
    assert nll[1] < min(nll[0], nll[2])


def test_reduces_ece_of_overconfident_logits():
    logits, target = synthetic(2.5)
    before = expected_calibration_error(logits.softmax(-1), target).item()
    after = expected_calibration_error(
        TemperatureScaling().fit_transform(logits, target), target
    ).item()
    assert before > 0.1 and after < 0.02


def test_netcal_temperature_is_the_reciprocal():
    logits, target = synthetic(2.0, n=4000)
    ours = TemperatureScaling().fit(logits, target).temperature_
    netcal = NetcalTemperatureScaling()
    netcal.fit(logits.softmax(-1).numpy(), target.numpy())
    assert float(np.squeeze(netcal.temperature)) == pytest.approx(1.0 / ours, rel=1e-3)


def test_temperature_scaling_errors():
    with pytest.raises(BayesdropValueError, match=r"`self`.*fitted.*Call fit first"):
        TemperatureScaling().transform(torch.randn(3, 2))
    with pytest.raises(BayesdropValueError, match=r"`logits`.*\(N, C\)"):
        TemperatureScaling().fit(torch.randn(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(BayesdropValueError, match=r"`target`.*labels in \[0, 1\]"):
        TemperatureScaling().fit(torch.randn(3, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(BayesdropValueError, match=r"`logits`.*finite"):
        TemperatureScaling().fit(torch.tensor([[0.0, float("inf")]]), torch.tensor([0]))


# netcal's multiclass beta calibration is slow (finite differences): test it on two classes
@pytest.mark.parametrize(
    ("make", "c"),
    [(IsotonicCalibration, 3), (lambda: HistogramBinning(num_bins=10), 3), (BetaCalibration, 2)],
)
def test_netcal_wrappers(make, c):
    logits, target = synthetic(2.5, n=3000, c=c)
    probs = logits.softmax(-1).float()
    calibrator = make().fit(probs, target)
    out = calibrator.transform(probs)
    assert out.shape == probs.shape and out.dtype == probs.dtype
    assert torch.allclose(out.sum(-1), torch.ones(len(out)), atol=1e-5)
    before = expected_calibration_error(probs, target).item()
    assert expected_calibration_error(out, target).item() < before


def test_netcal_wrapper_errors():
    with pytest.raises(BayesdropValueError, match=r"`self`.*unfitted IsotonicCalibration"):
        IsotonicCalibration().transform(torch.full((2, 3), 1 / 3))
    with pytest.raises(BayesdropValueError, match=r"`target`.*at least 3 distinct labels"):
        IsotonicCalibration().fit(torch.full((4, 3), 1 / 3), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(BayesdropValueError, match=r"`probs`.*logits\.softmax"):
        BetaCalibration().fit(torch.randn(4, 3), torch.tensor([0, 1, 2, 1]))
    with pytest.raises(BayesdropTypeError, match=r"`num_bins`.*integer"):
        HistogramBinning(num_bins=2.5)


# ---------------------------------------------------------------------------------------------
# what temperature scaling receives is declared, never guessed
# ---------------------------------------------------------------------------------------------
def test_probabilities_as_logits_are_rejected():
    logits, target = synthetic(2.0, n=4000)
    probs = logits.softmax(-1)
    with pytest.raises(
        BayesdropValueError, match=r'`logits`.*which are probabilities.*inputs="probs"'
    ):
        TemperatureScaling().fit(probs, target)
    with pytest.raises(BayesdropValueError, match=r"`logits`.*probabilities"):
        TemperatureScaling().fit(logits, target).transform(probs)


def test_probs_and_log_probs_give_the_logits_temperature():
    logits, target = synthetic(2.0, n=4000)
    expected = TemperatureScaling().fit(logits, target)
    assert expected.temperature_ == pytest.approx(2.0, rel=0.1)
    for kind, values in (
        ("probs", logits.softmax(-1)),
        ("log_probs", logits.log_softmax(-1)),
        ("probs", logits.softmax(-1).float()),
    ):
        ts = TemperatureScaling(inputs=kind).fit(values, target)
        assert ts.temperature_ == pytest.approx(expected.temperature_, rel=1e-4)
        torch.testing.assert_close(
            ts.transform(values).double(), expected.transform(logits), atol=1e-5, rtol=0
        )


def test_mc_samples_and_zero_probabilities():
    logits, target = synthetic(1.5, n=2000)
    probs = logits.softmax(-1)
    samples = torch.stack([probs, probs])  # (S, N, C): through a prediction result, never guessed
    pred = bayesdrop.ClassificationPrediction.from_samples(samples)
    a = TemperatureScaling(inputs="probs").fit(pred, target).temperature_
    with pytest.raises(BayesdropValueError, match=r"`probs`.*of shape \(N, C\)"):
        TemperatureScaling(inputs="probs").fit(samples, target)
    assert a == pytest.approx(TemperatureScaling(inputs="probs").fit(probs, target).temperature_)
    hard = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0])
    fitted = TemperatureScaling(inputs="probs").fit(hard, y)
    from_logs = TemperatureScaling(inputs="log_probs").fit(hard.log(), y)  # -inf entries
    assert np.isfinite(fitted.temperature_)
    assert from_logs.temperature_ == pytest.approx(fitted.temperature_)


@pytest.mark.parametrize(
    ("kwargs", "values", "match"),
    [
        ({"inputs": "logit"}, None, r"`inputs`.*'logits', 'probs', 'log_probs'"),
        ({"inputs": "probs"}, torch.randn(3, 2), r"`probs`.*logits"),
        ({"inputs": "log_probs"}, torch.randn(3, 2), r'`log_probs`.*inputs="logits"'),
        (
            {"inputs": "log_probs"},
            torch.tensor([[float("nan"), 0.0]] * 3),
            r"`log_probs`.*but got 3 NaN or \+inf value",
        ),
    ],
)
def test_declared_inputs_are_checked(kwargs, values, match):
    with pytest.raises(BayesdropValueError, match=match):
        TemperatureScaling(**kwargs).fit(values, torch.tensor([0, 1, 0]))
