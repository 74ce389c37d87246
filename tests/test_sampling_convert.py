"""sampling() flips only dropout; convert() swaps torch dropout for bayesdrop layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bayesdrop
from bayesdrop.nn import SpatialMCDropout, find_functional_dropout, stochastic_modules


def bn_model():
    return nn.Sequential(
        nn.Linear(4, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        bayesdrop.MCDropout(nn.Linear(8, 3), p=0.5),
    )


def test_sampling_keeps_batchnorm_in_eval_and_running_stats():
    torch.manual_seed(0)
    model = bn_model().eval()
    stats = model[1].running_mean.clone(), model[1].running_var.clone()
    x = torch.randn(16, 4)
    with bayesdrop.sampling(model):
        assert not model[1].training
        assert model[3].training and model[4].mc is True
        a, b = model(x), model(x)
    assert not torch.equal(a, b)
    torch.testing.assert_close(model[1].running_mean, stats[0], rtol=0, atol=0)
    torch.testing.assert_close(model[1].running_var, stats[1], rtol=0, atol=0)
    assert not model[3].training and model[4].mc is None
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


def test_sampling_restores_flags_when_the_body_raises():
    model = bn_model().eval()
    model[4].mc = False
    with pytest.raises(RuntimeError, match="boom"), bayesdrop.sampling(model):
        raise RuntimeError("boom")
    assert [m.training for m in model] == [False] * 5
    assert model[4].mc is False


def test_sampling_disabled_in_train_mode_is_deterministic():
    model = bn_model().train()
    x = torch.randn(16, 4)
    with bayesdrop.sampling(model, enabled=False):
        assert model[1].training  # BatchNorm untouched: still training
        model[1].eval()
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    assert model[3].training and model[4].mc is None


def test_sampling_reaches_attention_dropout_in_transformer_layers():
    torch.manual_seed(1)
    layer = nn.TransformerEncoderLayer(
        d_model=8, nhead=2, dim_feedforward=16, dropout=0.3, batch_first=True
    ).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer(x), rtol=0, atol=0)
        with bayesdrop.sampling(layer):
            assert layer.self_attn.training
            assert not torch.equal(layer(x), layer(x))
    assert not layer.training and not layer.self_attn.training
    names = {name for name, _ in stochastic_modules(layer)}
    assert {"", "self_attn", "dropout", "dropout1", "dropout2"} <= names


def test_sampling_reaches_dropout_between_lstm_layers():
    torch.manual_seed(2)
    lstm = nn.LSTM(3, 4, num_layers=2, dropout=0.5).eval()
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        torch.testing.assert_close(lstm(x)[0], lstm(x)[0], rtol=0, atol=0)
        with bayesdrop.sampling(lstm):
            assert not torch.equal(lstm(x)[0], lstm(x)[0])
    assert not lstm.training
    assert not bayesdrop.nn.is_stochastic(nn.LSTM(3, 4, num_layers=2))


def test_sampling_rejects_non_modules():
    with (
        pytest.raises(TypeError, match=r"Expected `model` to be a torch\.nn\.Module"),
        bayesdrop.sampling("model"),
    ):
        pass


class UsesFunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return F.dropout(self.fc(x), p=0.5, training=self.training)


def test_find_functional_dropout():
    model = nn.Sequential(nn.Linear(4, 4), UsesFunctionalDropout())
    assert find_functional_dropout(model) == ["1"]
    assert find_functional_dropout(bn_model()) == []


def mixed_model():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.Dropout2d(0.25),
        nn.Conv2d(4, 4, 3),
        nn.Flatten(),
        nn.AlphaDropout(0.1),
        nn.Linear(64, 16),
        nn.ReLU(),
        nn.Dropout(0.4),
        nn.Linear(16, 3),
        nn.Dropout(0.2),
    )


def test_convert_to_mc_keeps_rates():
    model = mixed_model()
    report = bayesdrop.convert(model, to="mc")
    assert report.replaced == [
        ("2", "Dropout2d", "SpatialMCDropout"),
        ("8", "Dropout", "MCDropout"),
        ("10", "Dropout", "MCDropout"),
    ]
    assert [name for name, _ in report.skipped] == ["5"]
    assert "AlphaDropout" in report.skipped[0][1]
    assert isinstance(model[2], SpatialMCDropout) and model[2].p == 0.25
    assert isinstance(model[8], bayesdrop.MCDropout) and model[8].p == 0.4
    assert isinstance(model[5], nn.AlphaDropout)
    x = torch.randn(2, 1, 8, 8)
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


def test_convert_to_concrete_wraps_the_following_layer():
    torch.manual_seed(2)
    model = mixed_model()
    linear = model[9]
    x = torch.randn(2, 1, 8, 8)
    before = model.eval()(x)
    report = bayesdrop.convert(model, to="concrete", weight_regularizer=1e-5)
    kinds = [new for _, _, new in report.replaced]
    assert kinds == ["SpatialConcreteDropout around 3", "ConcreteDropout around 9"]
    assert isinstance(model[3], bayesdrop.SpatialConcreteDropout)
    assert model[9].layer is linear and model[9].weight_regularizer == 1e-5
    assert isinstance(model[2], nn.Identity) and isinstance(model[8], nn.Identity)
    skipped = dict(report.skipped)
    assert set(skipped) == {"5", "10"} and "returned by the model" in skipped["10"]
    torch.testing.assert_close(model(x), before)  # same function when not sampling
    assert torch.isfinite(bayesdrop.kl_divergence(model))


def test_convert_nested_modules_and_functional_warning():
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.1)), UsesFunctionalDropout())
    with pytest.warns(UserWarning, match="functional dropout.*: 1"):
        report = bayesdrop.convert(model, to="mc")
    assert report.replaced == [("0.1", "Dropout", "MCDropout")]
    assert report.functional == ["1"]


def test_convert_rejects_unknown_target():
    with pytest.raises(ValueError, match="Expected `to` to be one of 'mc', 'concrete'"):
        bayesdrop.convert(nn.Linear(2, 2), to="gaussian")
