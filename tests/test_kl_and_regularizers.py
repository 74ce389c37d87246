"""KL terms and regularisers against hand-computed references (METHODS.md §0-§1)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import bayesdrop
from bayesdrop import functional as BF


def entropy(p):
    return -p * math.log(p) - (1 - p) * math.log(1 - p)


def test_bernoulli_entropy_matches_torch_distribution():
    p = torch.linspace(0.01, 0.99, 21, dtype=torch.float64)
    expected = torch.distributions.Bernoulli(probs=p).entropy()
    torch.testing.assert_close(BF.bernoulli_entropy(p), expected)
    assert BF.bernoulli_entropy(torch.tensor([0.0, 1.0])).tolist() == [0.0, 0.0]


def test_mc_dropout_kl_hand_computed():
    torch.manual_seed(1)
    lin = nn.Linear(7, 3).double()
    layer = bayesdrop.MCDropout(lin, p=0.2, length_scale=0.5)
    w2 = (lin.weight.double() ** 2).sum().item()
    expected = 0.5**2 * (1 - 0.2) / 2 * w2 - 7 * entropy(0.2)
    assert layer.kl().item() == pytest.approx(expected, rel=1e-12)
    with_bias = bayesdrop.MCDropout(lin, p=0.2, length_scale=0.5, include_bias=True)
    b2 = (lin.bias.double() ** 2).sum().item()
    assert with_bias.kl().item() == pytest.approx(expected + 0.5**2 * 0.8 / 2 * b2, rel=1e-12)


def test_bare_mc_dropout_has_zero_kl():
    assert bayesdrop.MCDropout(0.3).kl().item() == 0.0


def test_concrete_regularization_hand_computed():
    torch.manual_seed(2)
    lin = nn.Linear(5, 4).double()
    cd = bayesdrop.ConcreteDropout(
        lin, weight_regularizer=1e-3, dropout_regularizer=2e-2, init_min=0.3, init_max=0.3
    )
    p = 0.3
    assert cd.p.item() == pytest.approx(p, rel=1e-12)
    w2 = (lin.weight.double() ** 2).sum().item()
    expected = 1e-3 * w2 / (1 - p) + 2e-2 * 5 * (p * math.log(p) + (1 - p) * math.log(1 - p))
    assert cd.regularization().item() == pytest.approx(expected, rel=1e-12)
    kl_expected = 1e-2**2 / (2 * (1 - p)) * w2 - 5 * entropy(p)
    assert cd.kl().item() == pytest.approx(kl_expected, rel=1e-12)


def test_concrete_include_bias_and_spatial_K():
    conv = nn.Conv2d(6, 2, 3).double()
    cd = bayesdrop.SpatialConcreteDropout(
        conv, include_bias=True, weight_regularizer=1.0, dropout_regularizer=0.0
    )
    w2 = ((conv.weight**2).sum() + (conv.bias**2).sum()).item()
    assert cd.num_inputs == 6
    assert cd.regularization().item() == pytest.approx(w2 / (1 - cd.p.item()), rel=1e-12)


@pytest.mark.parametrize(
    "likelihood,tau", [("gaussian", 1.0), ("gaussian", 4.0), ("categorical", 1.0)]
)
def test_regularization_is_scaled_kl(likelihood, tau):
    """The reference regulariser equals the KL times the likelihood's scale factor."""
    n, length_scale = 250, 0.1
    consts = bayesdrop.regularizer_constants(length_scale, n, tau=tau, likelihood=likelihood)
    scale = 2 / (tau * n) if likelihood == "gaussian" else 1 / n
    cd = bayesdrop.ConcreteDropout(
        nn.Linear(4, 3).double(),
        weight_regularizer=consts.weight_regularizer,
        dropout_regularizer=consts.dropout_regularizer,
        length_scale=length_scale,
        init_min=0.2,
        init_max=0.4,
    )
    torch.testing.assert_close(cd.regularization(), scale * cd.kl())


def test_regularizer_constants_values():
    c = bayesdrop.regularizer_constants(1e-4, 10, tau=1.0)
    assert c.weight_regularizer == pytest.approx(1e-8 / 10)
    assert c.dropout_regularizer == pytest.approx(2 / 10)
    c = bayesdrop.regularizer_constants(1e-2, 1000, tau=2.0)
    assert (c.weight_regularizer, c.dropout_regularizer) == pytest.approx((1e-4 / 2000, 1e-3))
    c = bayesdrop.regularizer_constants(1e-2, 1000, likelihood="categorical")
    assert (c.weight_regularizer, c.dropout_regularizer) == pytest.approx((1e-4 / 2000, 1e-3))


def test_gradients_reach_p_logit_from_data_and_regulariser():
    torch.manual_seed(3)
    cd = bayesdrop.ConcreteDropout(nn.Linear(4, 1)).train()
    cd(torch.randn(32, 4)).pow(2).mean().backward()
    assert cd.p_logit.grad is not None and cd.p_logit.grad.abs().item() > 0
    cd.p_logit.grad = None
    cd.regularization().backward()
    assert cd.p_logit.grad.abs().item() > 0


def test_gradcheck_concrete_dropout_with_fixed_noise():
    torch.manual_seed(4)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    p = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    u = torch.rand(3, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, q: BF.concrete_dropout(a, q, 0.1, noise=u), (x, p))
    sq = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, q: BF.concrete_dropout_kl(s, q, 4, 0.5), (sq, p))
    assert torch.autograd.gradcheck(
        lambda s, q: BF.concrete_regularization(s, q, 4, 1e-2, 1e-1), (sq, p)
    )


def test_concrete_mask_matches_relaxed_bernoulli():
    """Same uniforms, same mask: bayesdrop's drop indicator is RelaxedBernoulli(t, p)."""
    p, t = torch.tensor(0.27, dtype=torch.float64), 0.1
    torch.manual_seed(5)
    ours = BF.concrete_drop_mask(p, (20_000,), t)
    torch.manual_seed(5)
    ref = torch.distributions.RelaxedBernoulli(
        torch.tensor(t, dtype=torch.float64), probs=p
    ).rsample((20_000,))
    # eps = 1e-7 inside the logs moves the logit by ~1e-6 / t; the sigmoid's slope is <= 1/4.
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    # and in distribution: the hard drop rate is p (seeded MC, 5 standard errors)
    se = math.sqrt(0.27 * 0.73 / 20_000)
    assert abs((ours > 0.5).double().mean().item() - 0.27) < 5 * se


def test_concrete_dropout_preserves_expectation_approximately():
    torch.manual_seed(6)
    cd = bayesdrop.ConcreteDropout(nn.Linear(1, 1, bias=False), init_min=0.2, init_max=0.2)
    nn.init.ones_(cd.layer.weight)
    with bayesdrop.sampling(cd), torch.no_grad():
        y = cd(torch.ones(200_000, 1))
    # E[1 - z] = 1 - p exactly only as t -> 0; at t = 0.1 it is within 1%.
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_spatial_masks_constant_over_spatial_dimensions():
    torch.manual_seed(7)
    cd = bayesdrop.SpatialConcreteDropout(
        nn.Conv2d(8, 8, 1, bias=False), init_min=0.5, init_max=0.5
    )
    nn.init.dirac_(cd.layer.weight)  # identity convolution exposes the mask
    x = torch.ones(4, 8, 5, 5)
    with bayesdrop.sampling(cd), torch.no_grad():
        y = cd(x)
    flat = y.flatten(2)
    torch.testing.assert_close(flat.amax(-1), flat.amin(-1))
    assert flat[..., 0].std() > 0.1  # differs across samples and channels
    mc = bayesdrop.nn.SpatialMCDropout(0.5).train()
    y = mc(torch.ones(4, 8, 3, 3, 3)).flatten(2)
    assert torch.equal(y.amax(-1), y.amin(-1))


def test_mc_dropout_rate_and_scaling():
    torch.manual_seed(8)
    drop = bayesdrop.MCDropout(0.3).train()
    y = drop(torch.ones(100_000))
    torch.testing.assert_close(torch.unique(y), torch.tensor([0.0, 1 / 0.7]))
    assert (y == 0).double().mean().item() == pytest.approx(0.3, abs=5 * math.sqrt(0.21 / 1e5))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
