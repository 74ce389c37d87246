"""Batched dropout MLPs, their trainer and MC predictor against per-model references."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import bayesdrop
from bayesdrop.functional import batched as BB
from bayesdrop.nn import BatchedMLP
from bayesdrop.sweep import BatchedAdam, RegressionBatch, fit_regression, predict_regression


def _reference_net(net: BatchedMLP, m: int, layer_cls) -> nn.Sequential:
    """Model ``m`` of ``net`` as a plain torch network with bayesdrop layers."""
    layers = []
    rates = net.drop_rates()[m]
    for k in range(net.num_layers):
        lin = nn.Linear(net.widths[k], net.widths[k + 1])
        with torch.no_grad():
            lin.weight.copy_(net.weights[k][m].T)
            lin.bias.copy_(net.biases[k][m])
        if layer_cls is bayesdrop.MCDropout:
            layers.append(layer_cls(lin, p=float(rates[k]), length_scale=net.length_scale))
        else:
            cd = layer_cls(lin, length_scale=net.length_scale)
            with torch.no_grad():
                cd.p_logit.copy_(net.p_logit[m, k])
            layers.append(cd)
        if k < net.num_layers - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def test_eval_forward_matches_per_model_networks():
    net = BatchedMLP(3, 4, (6, 5), 2, p=[0.0, 0.1, 0.3]).eval()
    x = torch.randn(3, 7, 4)
    out = net(x)
    for m in range(3):
        ref = _reference_net(net, m, bayesdrop.MCDropout).eval()
        torch.testing.assert_close(out[m], ref(x[m]))


@pytest.mark.parametrize("kind", ["bernoulli", "concrete"])
def test_kl_matches_bayesdrop_layers(kind):
    cls = bayesdrop.MCDropout if kind == "bernoulli" else bayesdrop.ConcreteDropout
    net = BatchedMLP(2, 3, (5,), 1, dropout=kind, p=[0.05, 0.2], length_scale=0.5)
    kl = net.kl_per_model()
    for m in range(2):
        ref = bayesdrop.kl_divergence(_reference_net(net, m, cls))
        torch.testing.assert_close(kl[m], ref)
    torch.testing.assert_close(net.kl(), kl.sum())


def test_mc_samples_match_mcdropout_in_distribution():
    torch.manual_seed(0)
    net = BatchedMLP(2, 3, (8,), 1, p=[0.1, 0.4])
    x = torch.randn(1, 3)
    num = 20_000
    with torch.no_grad(), bayesdrop.sampling(net):
        batched = net(x.expand(num, 3).unsqueeze(0).expand(2, -1, -1))[..., 0]
    for m in range(2):
        ref = _reference_net(net, m, bayesdrop.MCDropout)
        with torch.no_grad(), bayesdrop.sampling(ref):
            loop = ref(x.expand(num, 3))[:, 0]
        se = math.sqrt((batched[m].var() + loop.var()) / num)
        assert abs(batched[m].mean() - loop.mean()) < 4 * se
        assert float(batched[m].std()) == pytest.approx(float(loop.std()), rel=0.05)


def test_models_do_not_interact():
    net = BatchedMLP(3, 2, (4,), 1, p=0.1).train()
    out = net(torch.randn(3, 5, 2))
    out[1].sum().backward()
    for w in list(net.weights) + list(net.biases):
        assert w.grad[0].abs().sum() == 0 and w.grad[2].abs().sum() == 0
        assert w.grad[1].abs().sum() > 0


def test_keep_mask_rate_and_rounding():
    torch.manual_seed(1)
    keep = torch.tensor([[0.995], [0.9], [1.0]])
    mask, exact = BB.bernoulli_keep_mask((3, 400_000), keep)
    assert mask.dtype == torch.bool
    torch.testing.assert_close(exact, torch.round(keep * 65536) / 65536)
    rate = mask.float().mean(1)
    se = torch.sqrt(exact[:, 0] * (1 - exact[:, 0]) / 400_000)
    assert bool(((rate - exact[:, 0]).abs() <= 4 * se + 1e-12).all())
    assert bool(mask[2].all())


def test_dropout_linear_is_unbiased_and_exact_without_dropout():
    torch.manual_seed(2)
    x, w, b = torch.randn(2, 1, 5), torch.randn(2, 5, 3), torch.randn(2, 3)
    exact = BB.batched_linear(x, w, b)
    torch.testing.assert_close(BB.batched_dropout_linear(x, torch.zeros(2), w, b), exact)
    samples = BB.batched_dropout_linear(x.expand(2, 50_000, 5), torch.tensor([0.1, 0.5]), w, b)
    se = samples.std(1) / math.sqrt(50_000)
    assert bool(((samples.mean(1) - exact[:, 0]).abs() < 4 * se).all())


def _toy_data(sizes=(24, 24)):
    gen = torch.Generator().manual_seed(3)
    xs = [torch.randn(n, 2, generator=gen) for n in sizes]
    ys = [x[:, 0] - 2 * x[:, 1] ** 2 for x in xs]
    return xs, ys


def test_batched_training_equals_separate_torch_training():
    """p = 0 and full batches remove all randomness: each model must follow torch's Adam."""
    xs, ys = _toy_data((24, 17))
    data = RegressionBatch.from_arrays(xs, ys)
    torch.manual_seed(4)
    net = BatchedMLP(2, 2, (6,), 1, p=0.0)
    refs = [_reference_net(net, m, bayesdrop.MCDropout) for m in range(2)]
    tau = torch.tensor([0.5, 2.0])
    fit_regression(net, data, epochs=30, tau=tau, batch_size=32, lr=1e-2)
    for m, ref in enumerate(refs):
        n = int(data.num_data[m])
        x, y = data.x[m, :n], data.y[m, :n]
        decay = (1 - 0.0) * 1e-4 / (2 * n * tau[m])
        opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
        for _ in range(30):
            opt.zero_grad()
            kernels = sum(layer.layer.weight.pow(2).sum() for layer in ref[::2])
            loss = (ref(x)[:, 0] - y).pow(2).mean() + decay * kernels
            loss.backward()
            opt.step()
        torch.testing.assert_close(net(data.x)[m, :n], ref.eval()(x), atol=1e-4, rtol=1e-4)


def test_adam_leaves_inactive_models_alone():
    w = nn.Parameter(torch.ones(2, 3))
    opt = BatchedAdam([w], lr=0.1)
    for active in (torch.tensor([True, False]), torch.tensor([True, True])):
        w.grad = torch.ones(2, 3)
        opt.step(active)
    assert opt.steps.tolist() == [2.0, 1.0]
    # model 1 took exactly one Adam step from its initial state
    torch.testing.assert_close(w[1], torch.full((3,), 0.9))


def test_predict_without_dropout_is_closed_form():
    xs, ys = _toy_data()
    data = RegressionBatch.from_arrays(xs, ys)
    net = BatchedMLP(2, 2, (5,), 1, p=0.0)
    m = predict_regression(net, data, xs, ys, num_samples=7, tau=torch.tensor([1.0, 4.0]))
    with torch.no_grad():
        pred = net.eval()(data.x)[..., 0] * data.y_std[:, None] + data.y_mean[:, None]
    y = torch.stack(ys)
    torch.testing.assert_close(m.mean, pred)
    torch.testing.assert_close(m.variance, torch.tensor([[1.0], [0.25]]).expand(2, 24))
    torch.testing.assert_close(m.rmse, (y - pred).pow(2).mean(1).sqrt())
    tau = torch.tensor([[1.0], [4.0]])
    ll = (-0.5 * tau * (y - pred) ** 2 + 0.5 * torch.log(tau / (2 * math.pi))).mean(1)
    torch.testing.assert_close(m.log_likelihood, ll)


@pytest.mark.parametrize("kind", ["bernoulli", "concrete"])
def test_predict_matches_a_plain_sample_loop(kind):
    torch.manual_seed(5)
    xs, ys = _toy_data()
    data = RegressionBatch.from_arrays(xs, ys)
    outs = 1 if kind == "bernoulli" else 2
    net = BatchedMLP(2, 2, (8,), outs, dropout=kind, p=[0.2, 0.4])
    m = predict_regression(net, data, xs, ys, num_samples=4000, tau=0.2, chunk_size=300)
    with torch.no_grad(), bayesdrop.sampling(net):
        out = torch.stack([net(data.x) for _ in range(4000)])
    mean = out[..., 0] * data.y_std[:, None] + data.y_mean[:, None]
    y = torch.stack(ys)
    if kind == "bernoulli":
        log_p = -0.5 * 0.2 * (y - mean) ** 2 + 0.5 * math.log(0.2 / (2 * math.pi))
    else:
        log_var = out[..., 1] + 2 * torch.log(data.y_std[:, None])
        log_p = BB.gaussian_log_density(y, mean, log_var)
    ll = (torch.logsumexp(log_p, 0) - math.log(4000)).mean(1)
    torch.testing.assert_close(m.log_likelihood, ll, atol=0.03, rtol=0.0)
    # both are means of 4000 samples: allow 5 standard errors of their difference
    se = (mean.var(0) * 2 / 4000).sqrt()
    assert bool(((m.mean - mean.mean(0)).abs() < 5 * se + 1e-4).all())


def test_concrete_training_learns_rates_and_fits():
    torch.manual_seed(6)
    xs, ys = _toy_data((64, 64))
    data = RegressionBatch.from_arrays(xs, ys)
    net = BatchedMLP(2, 2, (32,), 2, dropout="concrete", p=0.1)
    before = net.p_logit.detach().clone()
    fit_regression(net, data, epochs=150, batch_size=32, lr=1e-2)
    assert not torch.equal(before, net.p_logit)
    m = predict_regression(net, data, xs, ys, num_samples=50)
    y = torch.stack(ys)
    assert bool((m.rmse < 0.5 * y.std(1)).all())


def test_errors():
    with pytest.raises(ValueError, match="one per model"):
        BatchedMLP(3, 2, (4,), 1, p=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"`p`.*probability"):
        BatchedMLP(2, 2, (4,), 1, p=1.0)
    with pytest.raises(ValueError, match="Concrete Dropout"):
        BatchedMLP(2, 2, (4,), 1, dropout="concrete", p=0.0)
    with pytest.raises(ValueError, match="'bernoulli', 'concrete'"):
        BatchedMLP(2, 2, (4,), 1, dropout="gauss")
    net = BatchedMLP(2, 2, (4,), 1)
    with pytest.raises(ValueError, match=r"of shape \(2, B, 2\)"):
        net(torch.randn(3, 5, 2))
    xs, ys = _toy_data()
    data = RegressionBatch.from_arrays(xs, ys)
    with pytest.raises(ValueError, match="`tau`"):
        fit_regression(net, data, epochs=1)
    with pytest.raises(ValueError, match="2 output"):
        fit_regression(BatchedMLP(2, 2, (4,), 1, dropout="concrete"), data, epochs=1)
    with pytest.raises(ValueError, match="`tau`"):
        predict_regression(net, data, xs, ys, num_samples=2)
    with pytest.raises(ValueError, match="`targets`"):
        RegressionBatch.from_arrays(xs, [ys[0], ys[1][:-1]])
    with pytest.raises(ValueError, match="finite"):
        RegressionBatch.from_arrays([torch.full((3, 2), float("nan"))], [torch.zeros(3)])


def test_learned_homoscedastic_noise():
    torch.manual_seed(7)
    xs, ys = _toy_data((64, 64))
    data = RegressionBatch.from_arrays(xs, ys)
    net = BatchedMLP(2, 2, (8,), 1, dropout="concrete", p=1e-6, learn_noise=True)
    with torch.no_grad():
        net.log_noise.fill_(math.log(0.25))
    m = predict_regression(net, data, xs, ys, num_samples=20)
    # p ~ 0: no epistemic part; the aleatoric variance is exp(log_noise) in original units
    torch.testing.assert_close(m.variance, (0.25 * data.y_std**2)[:, None].expand(2, 64))
    gen = torch.Generator().manual_seed(8)
    x = torch.rand(128, 1, generator=gen) * 4 - 2
    noisy = [
        x[:, 0] + 0.5 * torch.randn(128, generator=gen),
        x[:, 0] + torch.randn(128, generator=gen),
    ]
    data = RegressionBatch.from_arrays([x, x], noisy)
    net = BatchedMLP(2, 1, (16,), 1, dropout="concrete", p=0.05, learn_noise=True)
    fit_regression(net, data, epochs=150, batch_size=64, lr=2e-2)
    learned = net.log_noise.detach().exp() * data.y_std**2
    # the learned noise variance finds the true one (0.25 and 1) within 30%
    torch.testing.assert_close(learned, torch.tensor([0.25, 1.0]), rtol=0.3, atol=0.0)
    with pytest.raises(ValueError, match="learn_noise"):
        BatchedMLP(2, 2, (4,), 1, dropout="concrete").noise_log_variance(torch.zeros(2, 3, 1))
