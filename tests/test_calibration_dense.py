"""Dense (per-pixel, per-token) predictions in the calibration report; declared layouts."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from bayesdrop.calibration import CalibrationReport, classification_metrics
from bayesdrop.exceptions import BayesdropTypeError, BayesdropValueError
from bayesdrop.functional import mutual_information


@dataclass(frozen=True)
class Prediction:
    """Duck type of mc_predict's result for a dense model."""

    probs: torch.Tensor
    samples: torch.Tensor | None = None
    mutual_information: torch.Tensor | None = None


def token_samples(s: int = 6, n: int = 5, t: int = 7, c: int = 11, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(1, n, t, c, generator=gen, dtype=torch.float64)
    samples = (logits + torch.randn(s, n, t, c, generator=gen, dtype=torch.float64)).softmax(-1)
    target = torch.distributions.Categorical(probs=samples.mean(0)).sample()
    return samples, target


def test_per_token_probs_are_flattened_points():
    samples, target = token_samples()
    probs = samples.mean(0)  # (N, T, V) = (5, 7, 11)
    report = CalibrationReport.from_predictions(probs, target, layout="probs")
    flat = classification_metrics(probs.reshape(-1, 11), target.reshape(-1))
    assert report.metrics == flat and report.metrics.num_data == 35
    assert report.num_classes == 11 and report.data_shape == (5, 7)
    assert "35 points (predictions of shape 5 x 7)" in report.summary()


def test_per_pixel_with_ignore_index():
    gen = torch.Generator().manual_seed(1)
    probs = (torch.randn(2, 4, 3, 5, generator=gen, dtype=torch.float64)).softmax(-1)  # NHWC
    target = torch.randint(0, 5, (2, 4, 3), generator=gen)
    target[0, :2] = 255
    report = CalibrationReport.from_predictions(probs, target, layout="probs", ignore_index=255)
    keep = target != 255
    expected = classification_metrics(probs[keep], target[keep])
    assert report.metrics == expected and report.num_ignored == 6
    assert report.metrics.num_data == 24 - 6
    data = json.loads(report.to_json())
    assert data["data_shape"] == [2, 4, 3] and data["num_ignored"] == 6
    assert data["ignore_index"] == 255
    assert "6 with label 255 ignored" in report.summary()
    # -100, as PyTorch's cross-entropy, on (N, T) token labels
    samples, tokens = token_samples()
    tokens[:, -2:] = -100
    report = CalibrationReport.from_predictions(
        Prediction(samples.mean(0), samples), tokens, ignore_index=-100
    )
    assert report.metrics.num_data == 25


def test_samples_layout_and_prediction_result_agree():
    samples, target = token_samples()
    keep = target != 3
    as_samples = CalibrationReport.from_predictions(
        samples, target, layout="samples", ignore_index=3, uncertainty="mutual_information"
    )
    as_result = CalibrationReport.from_predictions(
        Prediction(samples.mean(0), samples),
        target,
        ignore_index=3,
        uncertainty="mutual_information",
    )
    mi = mutual_information(samples.reshape(6, -1, 11))[keep.reshape(-1)]
    for report in (as_samples, as_result):
        torch.testing.assert_close(report.id_scores, mi)
        assert report.metrics == as_samples.metrics
    given_mi = torch.arange(35.0, dtype=torch.float64).reshape(5, 7)
    from_attr = CalibrationReport.from_predictions(
        Prediction(samples.mean(0), mutual_information=given_mi),
        target,
        uncertainty="mutual_information",
    )
    torch.testing.assert_close(from_attr.id_scores, given_mi.reshape(-1))


def test_a_raw_3d_array_must_declare_its_layout():
    samples, target = token_samples()
    with pytest.raises(
        BayesdropValueError,
        match=r'`layout` to be declared for a 3-D array.*layout="samples".*layout="probs"',
    ):
        CalibrationReport.from_predictions(samples.mean(0), target)
    with pytest.raises(BayesdropValueError, match=r"`layout`.*4-D"):
        CalibrationReport.from_predictions(samples, target)
    # the declared layout is checked against the target's shape
    with pytest.raises(BayesdropValueError, match=r"`target`.*shape \(6, 5, 7\)"):
        CalibrationReport.from_predictions(samples, target, layout="probs")


def test_two_dimensional_input_is_unchanged():
    samples, target = token_samples()
    probs, y = samples.mean(0)[:, 0], target[:, 0]
    plain = CalibrationReport.from_predictions(probs, y)
    declared = CalibrationReport.from_predictions(probs, y, layout="probs")
    assert plain.to_dict() == declared.to_dict()
    assert plain.data_shape == (5,) and "predictions of shape" not in plain.summary()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layout": "tokens"}, BayesdropValueError, r"`layout`.*'probs', 'samples'"),
        ({"ignore_index": 2.5}, BayesdropTypeError, r"`ignore_index`.*integer"),
        ({"ignore_index": 0, "_all": True}, BayesdropValueError, r"`target`.*other than"),
    ],
)
def test_bad_options(kwargs, error, match):
    samples, target = token_samples()
    options = {"layout": "probs", **kwargs}
    if options.pop("_all", False):
        target = torch.zeros_like(target)
    with pytest.raises(error, match=match):
        CalibrationReport.from_predictions(samples.mean(0), target, **options)


def test_prediction_result_with_a_layout_or_bad_shapes():
    samples, target = token_samples()
    with pytest.raises(BayesdropValueError, match=r"`layout` to be None for a prediction"):
        CalibrationReport.from_predictions(Prediction(samples.mean(0)), target, layout="probs")
    with pytest.raises(BayesdropValueError, match=r"`predictions.samples`.*\(S, 5, 7, 11\)"):
        CalibrationReport.from_predictions(Prediction(samples.mean(0), samples[:, :2]), target)
    with pytest.raises(BayesdropValueError, match=r'`predictions`.*layout="samples"'):
        CalibrationReport.from_predictions(samples[0, 0], target[0], layout="samples")
    with pytest.raises(BayesdropValueError, match=r"`predictions`.*\(N, C\)"):
        CalibrationReport.from_predictions(np.full(4, 0.5), np.zeros(4, dtype=int))
