"""bayesdrop networks as Pyro models: the SVI loss is bayesdrop's ELBO, Predictive draws MC
dropout; and the mean-field Pyro baseline."""

from __future__ import annotations

import sys

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from scipy import stats
from torch import nn

import bayesdrop
from bayesdrop.pyro import DropoutModel, MeanFieldMLP


def _net(out: int = 1) -> nn.Module:
    return nn.Sequential(
        bayesdrop.MCDropout(nn.Linear(3, 16), p=0.2),
        nn.ReLU(),
        bayesdrop.ConcreteDropout(nn.Linear(16, out)),
    )


class _Hetero(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = _net(2)

    def forward(self, x):
        out = self.body(x)
        return out[:, :1], out[:, 1:]


def test_pyro_name_is_the_library():
    import bayesdrop.pyro._model as wrapper

    assert wrapper.pyro is sys.modules["pyro"]
    assert "bayesdrop" not in pyro.__file__


@pytest.mark.parametrize(
    ("likelihood", "make", "target"),
    [
        ("gaussian", _net, lambda n: torch.randn(n, 1)),
        ("categorical", lambda: _net(4), lambda n: torch.randint(0, 4, (n,))),
        ("heteroscedastic", _Hetero, lambda n: torch.randn(n, 1)),
    ],
)
@pytest.mark.parametrize("batch", [40, 10])
def test_svi_loss_is_num_data_times_bayesdrop_elbo(likelihood, make, target, batch):
    """Same batch, same masks (same RNG state): Trace_ELBO / N == bayesdrop.ELBO, and so are
    the gradients."""
    torch.manual_seed(0)
    net, x, y = make(), torch.randn(batch, 3), target(batch)
    num_data = 40
    model = DropoutModel(net, num_data, likelihood, tau=3.0)
    elbo = bayesdrop.ELBO(num_data, likelihood, tau=3.0)

    torch.manual_seed(1)
    pyro_loss = Trace_ELBO().differentiable_loss(model, model.guide, x, y)
    pyro_loss.backward()
    pyro_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()

    torch.manual_seed(1)
    with bayesdrop.sampling(net):
        ours = elbo(net(x), y, net).loss
    ours.backward()
    torch.testing.assert_close(pyro_loss / num_data, ours)
    for g_pyro, p in zip(pyro_grads, net.parameters(), strict=True):
        torch.testing.assert_close(g_pyro / num_data, p.grad)


def test_svi_trains_the_network_and_its_rates():
    pyro.clear_param_store()
    torch.manual_seed(2)
    net = _net()
    x = torch.randn(64, 3)
    y = x[:, :1] - x[:, 1:2]
    model = DropoutModel(net, 64, tau=10.0)
    before = net[2].p_logit.detach().clone()
    svi = SVI(model, model.guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    losses = [svi.step(x, y) for _ in range(150)]
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    assert not torch.equal(before, net[2].p_logit)
    assert net.training  # SVI never switched the model's mode


def test_predictive_matches_a_sampling_loop_in_distribution():
    torch.manual_seed(3)
    net = _net().eval()
    x = torch.randn(3, 3)
    model = DropoutModel(net, 100, tau=4.0)
    num = 2000
    draws = Predictive(
        model, guide=model.guide, num_samples=num, return_sites=["prediction", "obs"]
    )
    out = draws(x)
    pred = out["prediction"].reshape(num, 3)
    with torch.no_grad(), bayesdrop.sampling(net):
        loop = torch.stack([net(x)[:, 0] for _ in range(num)])
    for i in range(3):
        assert stats.ks_2samp(pred[:, i].numpy(), loop[:, i].numpy()).pvalue > 1e-3
    # "obs" adds the likelihood's noise: variance grows by 1 / tau
    obs = out["obs"].reshape(num, 3)
    var_gap = (obs.var(0) - pred.var(0)).mean()
    assert float(var_gap) == pytest.approx(0.25, abs=0.05)
    assert not net[0].is_sampling  # sampling() restored the flags


def test_predictive_matches_mc_predict():
    """Pyro's Predictive and bayesdrop.mc_predict draw the same MC-dropout predictive."""
    torch.manual_seed(4)
    net = _net().eval()
    x = torch.randn(4, 3)
    num = 2000
    draws = Predictive(
        DropoutModel(net, 100, tau=4.0), num_samples=num, return_sites=["prediction"]
    )(x)["prediction"].reshape(num, 4)
    result = bayesdrop.mc_predict(
        net, x, num_samples=num, task="regression", tau=4.0, seed=0, return_samples=True
    )
    samples = result.samples.reshape(num, 4)
    for i in range(4):
        assert stats.ks_2samp(draws[:, i].numpy(), samples[:, i].numpy()).pvalue > 1e-3
    # moments agree within Monte-Carlo error (5 standard errors)
    se = (draws.var(0) / num + samples.var(0) / num).sqrt()
    assert ((draws.mean(0) - result.mean.reshape(4)).abs() < 5 * se).all()
    torch.testing.assert_close(result.aleatoric_variance.reshape(4), torch.full((4,), 0.25))


def test_dropout_model_errors():
    with pytest.raises(ValueError, match="bayesdrop layer"):
        DropoutModel(nn.Linear(2, 1), 10)
    with pytest.raises(ValueError, match="`likelihood`"):
        DropoutModel(_net(), 10, "poisson")
    with pytest.raises(ValueError, match="`num_data`"):
        DropoutModel(_net(), 0)
    model = DropoutModel(_net(), 5)
    with pytest.raises(ValueError, match="at most num_data=5"):
        poutine.trace(model).get_trace(torch.randn(8, 3), torch.randn(8, 1))
    model = DropoutModel(_net(), 10, "heteroscedastic")
    with pytest.raises(TypeError, match="mean, log_variance"):
        poutine.trace(model).get_trace(torch.randn(4, 3), torch.randn(4, 1))


def test_mean_field_sites_and_minibatch_scale():
    model = MeanFieldMLP(3, (5,), num_models=2)
    x, y = torch.randn(2, 8, 3), torch.randn(2, 8)
    trace = poutine.trace(model).get_trace(x, y, num_data=torch.tensor([40, 80]))
    assert {"weight0", "bias0", "weight1", "bias1", "precision", "obs"} <= set(trace.nodes)
    assert trace.nodes["weight0"]["value"].shape == (2, 3, 5)
    torch.testing.assert_close(trace.nodes["obs"]["scale"], torch.tensor([[5.0], [10.0]]))


def test_mean_field_fits_and_predicts():
    pyro.clear_param_store()
    torch.manual_seed(4)
    model = MeanFieldMLP(1, (16,))
    guide = AutoNormal(model, init_scale=0.01)
    x = torch.linspace(-2, 2, 64)[:, None]
    y = torch.sin(2 * x[:, 0])
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.02}), Trace_ELBO())
    for _ in range(600):
        svi.step(x, y, num_data=64)
    pred = Predictive(model, guide=guide, num_samples=200, return_sites=["mean"])(x)["mean"]
    mse = (pred.reshape(200, 64).mean(0) - y).pow(2).mean()
    assert float(mse) < 0.5 * float(y.var())  # mean-field VI underfits, but learns the trend
    with pytest.raises(ValueError, match=r"of shape \(1, B, 1\)"):
        model(torch.randn(4, 2))
