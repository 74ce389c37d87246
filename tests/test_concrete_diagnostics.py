"""The Concrete Dropout rate monitor and the collapse warning."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import bayesdrop
from bayesdrop.nn import (
    ConcreteRateMonitor,
    collapsed_rates,
    concrete_rates,
    set_concrete_regularizers,
)


def model_with_rates(*logits: float) -> nn.Sequential:
    layers = [bayesdrop.ConcreteDropout(nn.Linear(3, 3)) for _ in logits]
    for layer, logit in zip(layers, logits, strict=True):
        layer.p_logit.data.fill_(logit)
    return nn.Sequential(*layers)


def set_logits(model, *logits):
    for layer, logit in zip(model, logits, strict=True):
        layer.p_logit.data.fill_(logit)


def test_rates_and_trend_against_closed_forms():
    model = model_with_rates(-1.0, -2.0)
    monitor = ConcreteRateMonitor(model, window=3, warn=False)
    for step, shift in enumerate((0.0, -1.0, -2.0, -3.0)):
        set_logits(model, -1.0 + shift, -2.0)
        report = monitor.update(step=10 * step)
    expected = {"0": 1 / (1 + math.exp(4.0)), "1": 1 / (1 + math.exp(2.0))}
    assert report.rates == pytest.approx(expected, rel=1e-6)
    # the last three points of layer 0: log10 sigmoid(-2), sigmoid(-3), sigmoid(-4) at steps
    # 10, 20, 30; the least-squares slope is the end-to-end difference over 20 steps
    ys = [math.log10(1 / (1 + math.exp(-x))) for x in (-2.0, -3.0, -4.0)]
    assert report.trend["0"] == pytest.approx((ys[2] - ys[0]) / 20, rel=1e-6)
    assert report.trend["1"] == 0.0
    assert report.collapsed == [] and report.step == 30.0
    assert "p = 0.018" in report.summary()


def test_collapse_warns_once_per_layer_and_only_while_falling():
    model = model_with_rates(-2.0, -2.0)
    monitor = ConcreteRateMonitor(model, window=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor.update()
        set_logits(model, -8.0, -2.0)  # layer 0 falls below 1e-3
        monitor.update()
        set_logits(model, -9.0, -2.0)
        monitor.update()
        set_logits(model, -9.0, -8.0)  # layer 1 falls too
        monitor.update()
    messages = [str(w.message) for w in caught if issubclass(w.category, Warning)]
    assert [w.category for w in caught] == [bayesdrop.ConcreteCollapseWarning] * 2
    assert "rates of 0 (p = 0.00034)" in messages[0] and "rates of 1 " in messages[1]
    # a low rate that is rising again is not reported as collapsed
    rising = ConcreteRateMonitor(model_with_rates(-9.0), window=2, warn=False)
    rising.update()
    set_logits(rising.model, -8.5)
    assert rising.update().collapsed == []


def test_mc_predict_warns_about_a_collapsed_model_only():
    collapsed = model_with_rates(-9.0, -10.0).eval()
    x = torch.randn(4, 3)
    assert collapsed_rates(collapsed) == concrete_rates(collapsed)
    with pytest.warns(bayesdrop.ConcreteCollapseWarning, match="close to a point estimate"):
        bayesdrop.mc_predict(collapsed, x, task="regression", tau=1.0, num_samples=4)
    healthy = model_with_rates(-9.0, -2.0).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bayesdrop.mc_predict(healthy, x, task="regression", tau=1.0, num_samples=4)


def test_bad_input():
    with pytest.raises(ValueError, match="at least one ConcreteDropout layer"):
        ConcreteRateMonitor(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)))
    monitor = ConcreteRateMonitor(model_with_rates(-1.0))
    with pytest.raises(ValueError, match="Expected `monitor` to be updated at least once"):
        monitor.report()
    with pytest.raises(ValueError, match="Expected `threshold` to be positive"):
        ConcreteRateMonitor(model_with_rates(-1.0), threshold=0.0)


def test_set_concrete_regularizers_follows_the_data_set_size():
    model = nn.Sequential(
        bayesdrop.ConcreteDropout(nn.Linear(3, 8), length_scale=1e-2),
        nn.ReLU(),
        bayesdrop.SpatialConcreteDropout(nn.Conv1d(8, 2, 1), length_scale=1e-1),
    )
    got = set_concrete_regularizers(model, 400, tau=2.0)
    for name, scale in (("0", 1e-2), ("2", 1e-1)):
        want = bayesdrop.regularizer_constants(scale, 400, tau=2.0)
        assert got[name] == (want.weight_regularizer, want.dropout_regularizer)
        layer = model[int(name)]
        assert layer.weight_regularizer == want.weight_regularizer
        assert layer.dropout_regularizer == want.dropout_regularizer
    # by hand: s = 2 / (tau N) = 1/400, lambda_w = s l^2 / 2
    assert got["0"] == pytest.approx((1e-4 / 800, 1 / 400))
    # growing data: ten times the points, a tenth of the regularisation
    grown = set_concrete_regularizers(model, 4000, tau=2.0)
    assert grown["0"] == pytest.approx((got["0"][0] / 10, got["0"][1] / 10))
    shared = set_concrete_regularizers(model, 100, likelihood="categorical", length_scale=0.5)
    assert shared["0"] == shared["2"] == pytest.approx((0.25 / 200, 1 / 100))


def test_set_concrete_regularizers_errors_leave_the_model_unchanged():
    layer = bayesdrop.ConcreteDropout(nn.Linear(3, 2))
    before = (layer.weight_regularizer, layer.dropout_regularizer)
    with pytest.raises(ValueError, match="`num_data`"):
        set_concrete_regularizers(layer, 0)
    with pytest.raises(ValueError, match="`likelihood`"):
        set_concrete_regularizers(layer, 10, likelihood="poisson")
    assert (layer.weight_regularizer, layer.dropout_regularizer) == before
    with pytest.raises(ValueError, match="`model` to be a model with ConcreteDropout layers"):
        set_concrete_regularizers(nn.Linear(2, 2), 10)
