"""DropPath and the functional drop_path: expectation, per-sample masks, modes, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bayesdrop
from bayesdrop.functional import drop_path
from bayesdrop.nn import DropPath


def test_expectation_is_kept_seeded_mc():
    """E[drop_path(x)] = x: the MC mean of 200,000 per-sample draws, p = 0.3.

    Each draw is 0 or x / 0.7; the standard error of the mean is
    sqrt(p / (1 - p) / n) = 0.0015, so a tolerance of 0.01 is over 6 standard errors.
    """
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([1.0, -2.0, 0.5]).expand(200_000, 3)
    y = drop_path(x, 0.3, generator=g)
    torch.testing.assert_close(y.mean(0), x[0], atol=0.01, rtol=0)
    dropped = (y == 0).all(1).double().mean().item()
    assert abs(dropped - 0.3) < 0.005  # about 5 standard errors (0.001)


def test_one_mask_value_per_sample_and_inverted_scaling():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, 4, 4, dtype=torch.float64)
    y = drop_path(x, 0.25, generator=g)
    ratio = torch.where(x != 0, y / x, torch.zeros(()))
    per_sample = ratio.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample))
    assert {round(v, 12) for v in per_sample[:, 0].tolist()} == {0.0, round(1.0 / 0.75, 12)}


def test_edge_rates():
    x = torch.randn(5, 2)
    assert drop_path(x, 0.0) is x
    assert torch.equal(drop_path(x, 1.0), torch.zeros_like(x))


def test_module_modes():
    x = torch.randn(32, 6)
    layer = DropPath(0.5)
    assert bayesdrop.nn.is_stochastic(layer)
    assert torch.equal(layer.eval()(x), x)  # identity in eval
    torch.manual_seed(0)
    assert not torch.equal(layer.train()(x), x)  # samples in training
    layer.mc = False
    assert torch.equal(layer(x), x)  # mc=False forces the deterministic path
    layer.mc = None
    model = nn.Sequential(nn.Linear(6, 6), DropPath(0.5)).eval()
    with bayesdrop.sampling(model):
        assert model[1].is_sampling
        assert not torch.equal(model(x), model(x))
    assert not model[1].is_sampling


def test_stays_a_drop_path_at_rate_zero_and_is_schedulable():
    layer = DropPath(0.0).train()
    x = torch.randn(4, 3)
    assert torch.equal(layer(x), x) and isinstance(layer, DropPath)
    layer.p = 0.2
    assert layer.p == 0.2 and "p=0.2" in repr(layer)


def test_kl_zero_dtype_and_state_dict():
    layer = DropPath(0.3)
    assert layer.kl().item() == 0.0
    assert layer.state_dict() == {}
    y = layer.train()(torch.randn(8, 2, dtype=torch.float64))
    assert y.dtype == torch.float64


def test_gradcheck_with_fixed_mask():
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)

    def fn(t):
        return drop_path(t, 0.4, generator=torch.Generator().manual_seed(3))

    assert torch.autograd.gradcheck(fn, (x,))


def test_residual_block_expectation_in_a_model():
    """A residual block's MC mean under sampling() equals its eval output."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Linear(4, 4)
            self.drop = DropPath(0.5)

        def forward(self, x):
            return x + self.drop(self.f(x))

    torch.manual_seed(0)
    block = Block().eval()
    x = torch.randn(1, 4).expand(40_000, 4)
    with torch.no_grad():
        with bayesdrop.sampling(block):
            mc = block(x).mean(0)
        exact = block(x[:1])[0]
    torch.testing.assert_close(mc, exact, atol=0.03, rtol=0)  # SE <= 0.01 for |f(x)| < 2


def test_errors():
    with pytest.raises(ValueError, match=r"Expected `p` to be a probability in \[0, 1\]"):
        DropPath(1.5)
    layer = DropPath(0.1)
    with pytest.raises(ValueError, match=r"Expected `p` to be a probability in \[0, 1\]"):
        layer.p = -0.1
    assert layer.p == 0.1
    with pytest.raises(TypeError, match=r"Expected `p` to be a real number"):
        DropPath("0.1")
    with pytest.raises(ValueError, match=r"Expected `x` to have a batch dimension"):
        drop_path(torch.tensor(1.0), 0.5)
