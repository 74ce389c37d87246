"""kl_divergence and the ELBO: values, scaling, and the Concrete Dropout synthetic check."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import bayesdrop


def test_kl_divergence_sums_every_layer():
    torch.manual_seed(0)
    net = nn.Sequential(
        bayesdrop.MCDropout(nn.Linear(3, 4), p=0.1),
        nn.ReLU(),
        nn.Sequential(bayesdrop.ConcreteDropout(nn.Linear(4, 2))),
        bayesdrop.MCDropout(0.2),
    )
    expected = net[0].kl() + net[2][0].kl()
    torch.testing.assert_close(bayesdrop.kl_divergence(net), expected)


def test_kl_divergence_without_layers_suggests_the_fix():
    with pytest.raises(ValueError, match=r"at least one bayesdrop layer.*bayesdrop.convert"):
        bayesdrop.kl_divergence(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)))


def test_categorical_elbo_value():
    torch.manual_seed(1)
    net = nn.Sequential(bayesdrop.MCDropout(nn.Linear(5, 3), p=0.3))
    x, y = torch.randn(10, 5), torch.randint(0, 3, (10,))
    logits = net.eval()(x)
    terms = bayesdrop.ELBO(num_data=500, likelihood="categorical", beta=0.5)(logits, y, net)
    nll = -logits.log_softmax(-1)[torch.arange(10), y].mean()
    torch.testing.assert_close(terms.nll, nll)
    torch.testing.assert_close(terms.kl, net[0].kl())
    torch.testing.assert_close(terms.loss, nll + 0.5 * net[0].kl() / 500)


def test_gaussian_elbo_matches_torch_normal_log_prob():
    torch.manual_seed(2)
    net = nn.Sequential(bayesdrop.MCDropout(nn.Linear(4, 2), p=0.1)).double()
    x, y = torch.randn(7, 4, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    out = net.eval()(x)
    tau = 3.0
    terms = bayesdrop.ELBO(num_data=70, likelihood="gaussian", tau=tau)(out, y, net)
    ref = -torch.distributions.Normal(out, tau**-0.5).log_prob(y).sum(-1).mean()
    torch.testing.assert_close(terms.nll, ref)


def test_heteroscedastic_elbo_matches_torch_normal_log_prob():
    torch.manual_seed(3)
    mean, log_var, y = torch.randn(6, 1), torch.randn(6, 1), torch.randn(6)
    net = nn.Sequential(bayesdrop.MCDropout(nn.Linear(1, 1), p=0.1))
    terms = bayesdrop.ELBO(num_data=6, likelihood="heteroscedastic")((mean, log_var), y, net)
    ref = -torch.distributions.Normal(mean, (0.5 * log_var).exp()).log_prob(y[:, None]).mean()
    torch.testing.assert_close(terms.nll, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_heteroscedastic_nll_exact_fit_at_very_negative_log_variance(dtype):
    from bayesdrop.functional import heteroscedastic_nll

    s = torch.tensor([-1000.0, -50.0, 0.0, 800.0], dtype=dtype, requires_grad=True)
    y = torch.zeros(4, dtype=dtype)
    # exp(-s) overflows at s = -1000 and the residual is 0: the NLL is (s + log 2 pi) / 2
    nll = heteroscedastic_nll(y.clone(), s, y)
    torch.testing.assert_close(nll, 0.5 * (s.detach() + math.log(2 * math.pi)))
    nll.sum().backward()
    assert bool(torch.isfinite(s.grad).all()), s.grad
    # a residual where the precision is capped: a loss of the order of the dtype's largest value
    far = heteroscedastic_nll(
        torch.ones(1, dtype=dtype), torch.tensor([-1000.0], dtype=dtype), y[:1]
    )
    assert torch.finfo(dtype).max / 10 < far.item() < math.inf


def test_elbo_gradient_equals_reference_loss_gradient_for_concrete():
    """ELBO with the KL and the reference 'MSE + regularization()' give proportional gradients."""
    torch.manual_seed(4)
    n, tau, length_scale = 200, 2.0, 0.1
    consts = bayesdrop.regularizer_constants(length_scale, n, tau=tau)
    net = nn.Sequential(
        bayesdrop.ConcreteDropout(
            nn.Linear(3, 1),
            length_scale=length_scale,
            weight_regularizer=consts.weight_regularizer,
            dropout_regularizer=consts.dropout_regularizer,
        )
    ).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    noise = torch.rand(16, 3, dtype=torch.float64)

    def forward():
        cd = net[0]
        return cd.layer(bayesdrop.functional.concrete_dropout(x, cd.p, cd.temperature, noise=noise))

    loss = bayesdrop.ELBO(n, likelihood="gaussian", tau=tau)(forward(), y, net).loss
    g_elbo = torch.autograd.grad(loss, list(net.parameters()))
    ref = (forward() - y).pow(2).mean() + net[0].regularization()
    g_ref = torch.autograd.grad(ref, list(net.parameters()))
    for a, b in zip(g_elbo, g_ref, strict=True):
        torch.testing.assert_close(a * (2 / tau), b)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_data": 0}, "Expected `num_data` to be a positive integer, but got 0"),
        (
            {"num_data": 0.5},
            r"Expected `num_data` to be a positive integer, but got 0.5\. Round it",
        ),
        ({"num_data": float("inf")}, "Expected `num_data` to be a positive integer, but got inf"),
        ({"num_data": True}, "Expected `num_data` to be a positive integer, but got True"),
        ({"num_data": 10, "ignore_index": 1.5}, "Expected `ignore_index` to be an integer"),
        (
            {"num_data": 10, "likelihood": "poisson"},
            "Expected `likelihood` to be one of 'categorical', 'gaussian', 'heteroscedastic'",
        ),
        ({"num_data": 10, "tau": -1.0}, "Expected `tau` to be positive"),
        ({"num_data": 10, "beta": float("nan")}, "Expected `beta` to be a finite number"),
    ],
)
def test_elbo_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bayesdrop.ELBO(**kwargs)


def test_elbo_num_data_takes_integral_floats():
    assert bayesdrop.ELBO(num_data=1000.0).num_data == 1000
    assert isinstance(bayesdrop.ELBO(num_data=torch.tensor(7)).num_data, int)


def test_categorical_elbo_follows_cross_entropy_ignore_index():
    """Rows labelled -100 are left out of the NLL and of its average (issue 21: 0.551 vs 1.103)."""
    torch.manual_seed(5)
    net = nn.Sequential(bayesdrop.MCDropout(nn.Linear(2, 3), p=0.1))
    logits = torch.randn(8, 3)
    target = torch.tensor([0, -100, 2, 1, -100, -100, 1, 0])
    nll = bayesdrop.ELBO(10).nll(logits, target)
    torch.testing.assert_close(nll, torch.nn.functional.cross_entropy(logits, target))
    other = torch.tensor([0, 7, 2, 1, 7, 7, 1, 0])
    torch.testing.assert_close(
        bayesdrop.ELBO(10, ignore_index=7).nll(logits, other),
        torch.nn.functional.cross_entropy(logits, other, ignore_index=7),
    )
    with pytest.raises(
        ValueError,
        match=r"`target` to be a minibatch with a row other than ignore_index=-100, but got all 3",
    ):
        bayesdrop.ELBO(10)(logits[:3], torch.full((3,), -100), net)


@pytest.mark.parametrize(
    "likelihood,output,target,exc,match",
    [
        (
            "gaussian",
            torch.zeros(4, 1),
            torch.zeros(1, 4),
            ValueError,
            r"`target` to be of the output's shape \(4, 1\).*but got shape \(1, 4\)",
        ),
        (
            "gaussian",
            torch.zeros(4, 2),
            torch.zeros(2, 4),
            ValueError,
            r"`target` to be of the output's shape \(4, 2\)",
        ),
        (
            "heteroscedastic",
            (torch.zeros(4, 2), torch.zeros(4, 1)),
            torch.zeros(4, 2),
            ValueError,
            r"`output\[1\] \(log_variance\)` to be of the shape of the mean \(4, 2\), but got "
            r"shape \(4, 1\)",
        ),
        (
            "heteroscedastic",
            (torch.zeros(4, 1), torch.zeros(4, 1)),
            torch.zeros(1, 4),
            ValueError,
            "`target` to be of the output's shape",
        ),
        (
            "categorical",
            torch.zeros(4, 3, dtype=torch.long),
            torch.zeros(4, dtype=torch.long),
            TypeError,
            "`output` to be a floating-point tensor, but got dtype torch.int64",
        ),
        (
            "categorical",
            torch.zeros(4, 3),
            torch.zeros(4),
            TypeError,
            "`target` to be integer class indices, but got dtype torch.float32",
        ),
        (
            "categorical",
            torch.zeros(4, 3),
            torch.tensor([0, 1, 3, -100]),
            ValueError,
            r"`target` to be class indices in \[0, 2\] or ignore_index=-100, but got labels in "
            r"\[0, 3\]",
        ),
        (
            "categorical",
            torch.zeros(4, 3),
            torch.tensor([0, 1, -1, 2]),
            ValueError,
            r"but got labels in \[-1, 2\]",
        ),
        (
            "gaussian",
            torch.zeros(4, 1),
            torch.zeros(4, 1, dtype=torch.bool),
            TypeError,
            "`target` to be real-valued, but got dtype torch.bool",
        ),
    ],
)
def test_elbo_rejects_bad_minibatches(likelihood, output, target, exc, match):
    with pytest.raises(exc, match=match):
        bayesdrop.ELBO(10, likelihood=likelihood).nll(output, target)


def test_gaussian_elbo_takes_a_target_without_the_trailing_one():
    out, y = torch.randn(5, 1), torch.randn(5)
    elbo = bayesdrop.ELBO(10, likelihood="gaussian")
    torch.testing.assert_close(elbo.nll(out, y), elbo.nll(out, y[:, None]))
    torch.testing.assert_close(elbo.nll(out[:, 0], y[:, None]), elbo.nll(out, y[:, None]))


def test_elbo_rejects_mismatched_shapes_and_missing_heads():
    net = nn.Sequential(bayesdrop.MCDropout(nn.Linear(2, 3), p=0.1))
    with pytest.raises(ValueError, match=r"logits \(N, C\) and class indices \(N,\)"):
        bayesdrop.ELBO(4)(torch.randn(4, 3), torch.zeros(5, dtype=torch.long), net)
    with pytest.raises(TypeError, match="pair \\(mean, log_variance\\)"):
        bayesdrop.ELBO(4, likelihood="heteroscedastic")(torch.randn(4, 1), torch.randn(4), net)
    with pytest.raises(ValueError, match=r"Expected `target` to be of the output's shape \(4, 1\)"):
        bayesdrop.ELBO(4, likelihood="gaussian")(torch.randn(4, 1), torch.randn(5), net)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: bayesdrop.MCDropout(1.0), ValueError, r"`p` to be a probability in \[0, 1\)"),
        (lambda: bayesdrop.MCDropout(-0.1), ValueError, r"`p` to be a probability in \[0, 1\)"),
        (
            lambda: bayesdrop.MCDropout(nn.Linear(2, 2), p=1.5),
            ValueError,
            "`p` to be a probability",
        ),
        (lambda: bayesdrop.MCDropout(0.2, p=0.3), ValueError, "`p` to be given once"),
        (
            lambda: bayesdrop.MCDropout(nn.ReLU(), p=0.1),
            TypeError,
            "`layer` to be a module with a `weight` tensor.*but got ReLU without one",
        ),
        (lambda: bayesdrop.ConcreteDropout(nn.ReLU()), TypeError, "`layer` to be a module with"),
        (lambda: bayesdrop.ConcreteDropout("linear"), TypeError, "torch.nn.Module with a weight"),
        (
            lambda: bayesdrop.ConcreteDropout(nn.Linear(2, 2), temperature=0.0),
            ValueError,
            "`temperature` to be positive, but got 0.0",
        ),
        (
            lambda: bayesdrop.ConcreteDropout(nn.Linear(2, 2), init_min=0.3, init_max=0.2),
            ValueError,
            "0 < init_min <= init_max < 1",
        ),
        (
            lambda: bayesdrop.ConcreteDropout(nn.Linear(2, 2), init_max=1.0),
            ValueError,
            "`init_max` to be a probability",
        ),
        (lambda: bayesdrop.regularizer_constants(1e-2, 0), ValueError, "`num_data` to be positive"),
        (
            lambda: bayesdrop.regularizer_constants(0.0, 10),
            ValueError,
            "`length_scale` to be positive",
        ),
        (
            lambda: bayesdrop.regularizer_constants(1e-2, 10, likelihood="laplace"),
            ValueError,
            "`likelihood` to be one of 'categorical', 'gaussian', 'heteroscedastic', but got 'lap",
        ),
        (
            lambda: bayesdrop.MCDropout("0.5"),
            TypeError,
            "`layer` to be a torch.nn.Module.*but got str",
        ),
    ],
)
def test_layers_reject_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_setting_p_validates():
    drop = bayesdrop.MCDropout(0.1)
    drop.p = 0.0
    with pytest.raises(ValueError, match="Expected `p` to be a probability"):
        drop.p = 1.0
    assert drop.p == 0.0


def load_benchmark():
    path = Path(__file__).parents[1] / "benchmarks" / "concrete_synthetic.py"
    spec = importlib.util.spec_from_file_location("concrete_synthetic", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["concrete_synthetic"] = module
    spec.loader.exec_module(module)
    return module


def test_concrete_synthetic_learned_p_falls_with_data():
    """A small configuration of the paper's synthetic check (benchmarks/ has the full one).

    hidden 128, lr 3e-3, 400 steps with N = 10 vs 500 steps with N = 2000: the hidden layers'
    learned p must be clearly lower with much more data, and the input layer's p small.
    """
    bench = load_benchmark()
    small = bench.run_one(10, epochs=400, hidden=128, num_samples=20, num_test=200, lr=3e-3)
    large = bench.run_one(2000, epochs=5, hidden=128, num_samples=20, num_test=200, lr=3e-3)
    p_small = sum(small.p[1:3]) / 2
    p_large = sum(large.p[1:3]) / 2
    assert p_small > 0.2, small.p
    assert p_large < 0.12, large.p
    assert p_small > 2 * p_large
    assert max(small.p[0], large.p[0]) < 0.12  # input layer stays near its init
    assert large.rmse < 1.3 and math.isfinite(small.rmse)
