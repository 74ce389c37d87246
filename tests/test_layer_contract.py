"""The contract every bayesdrop dropout layer honours (see CONTRIBUTING.md)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import bayesdrop
from bayesdrop.nn import SpatialMCDropout

# (factory, input shape) for every layer of the foundation.
LAYERS = {
    "MCDropout-bare": (lambda: bayesdrop.MCDropout(0.3), (6, 5)),
    "MCDropout-linear": (lambda: bayesdrop.MCDropout(nn.Linear(5, 3), p=0.3), (6, 5)),
    "SpatialMCDropout-conv": (lambda: SpatialMCDropout(nn.Conv2d(3, 4, 3), p=0.3), (2, 3, 6, 6)),
    "ConcreteDropout": (lambda: bayesdrop.ConcreteDropout(nn.Linear(5, 3)), (6, 5)),
    "SpatialConcreteDropout-1d": (
        lambda: bayesdrop.SpatialConcreteDropout(nn.Conv1d(3, 2, 3)),
        (2, 3, 9),
    ),
    "SpatialConcreteDropout-2d": (
        lambda: bayesdrop.SpatialConcreteDropout(nn.Conv2d(3, 4, 3)),
        (2, 3, 6, 6),
    ),
    "SpatialConcreteDropout-3d": (
        lambda: bayesdrop.SpatialConcreteDropout(nn.Conv3d(3, 2, 3)),
        (2, 3, 5, 5, 5),
    ),
    "DropPath": (lambda: bayesdrop.nn.DropPath(0.3), (6, 5)),
    "LockedDropout": (lambda: bayesdrop.LockedDropout(0.3), (7, 6, 5)),
    "EmbeddingDropout": (lambda: bayesdrop.EmbeddingDropout(nn.Embedding(11, 4), 0.3), "tokens"),
    "VariationalLSTM": (lambda: bayesdrop.VariationalLSTM(5, 4, 2), (7, 6, 5)),
    "VariationalGRU": (lambda: bayesdrop.VariationalGRU(5, 4, 2, masks="tied"), (7, 6, 5)),
}
RNNS = (bayesdrop.VariationalLSTM, bayesdrop.VariationalGRU)
IDS = list(LAYERS)


def make(name, dtype=torch.float32):
    torch.manual_seed(0)
    factory, shape = LAYERS[name]
    layer = factory().to(dtype)
    if shape == "tokens":  # (T, N) word indices with repeated words
        return layer, torch.randint(0, 11, (9, 6))
    return layer, torch.randn(shape, dtype=dtype)


def run(layer, x):
    out = layer(x)
    return out[0] if isinstance(layer, RNNS) else out


def reference(layer, x):
    """The deterministic output: the wrapped layer applied to the undropped input."""
    if isinstance(layer, RNNS):
        with bayesdrop.sampling(layer, enabled=False):
            return layer(x)[0]
    if isinstance(layer, bayesdrop.EmbeddingDropout):
        return layer.embedding(x)
    inner = getattr(layer, "layer", None)
    return x if inner is None else inner(x)


@pytest.mark.parametrize("name", IDS)
def test_identity_when_not_sampling(name):
    layer, x = make(name)
    layer.eval()
    torch.testing.assert_close(run(layer, x), reference(layer, x), rtol=0, atol=0)
    with bayesdrop.sampling(layer, enabled=False):
        layer.train()
        torch.testing.assert_close(run(layer, x), reference(layer, x), rtol=0, atol=0)


@pytest.mark.parametrize("name", IDS)
def test_stochastic_when_sampling(name):
    layer, x = make(name)
    layer.eval()
    with bayesdrop.sampling(layer):
        a, b = run(layer, x), run(layer, x)
    assert not torch.equal(a, b)
    assert a.shape == reference(layer, x).shape
    assert layer.mc is None  # restored


@pytest.mark.parametrize("name", IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_kl(name, dtype):
    layer, x = make(name, dtype)
    layer.train()
    y = run(layer, x)
    assert y.dtype == dtype and y.shape == reference(layer, x).shape
    kl = layer.kl()
    assert kl.dim() == 0 and torch.isfinite(kl)
    if getattr(layer, "layer", None) is not None or isinstance(layer, RNNS):
        assert kl.dtype == dtype
        kl.backward()
        # the kernel (biases are excluded by default) and the learned rate get gradients
        weights = [p for n, p in layer.named_parameters() if "weight" in n]
        wanted = [*weights, *getattr(layer, "dropout_parameters", list)()]
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in wanted)


@pytest.mark.parametrize("name", IDS)
def test_state_dict_round_trip(name):
    layer, x = make(name)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    other, _ = make(name)
    for p in other.parameters():
        nn.init.normal_(p)
    other.load_state_dict(torch.load(buffer))
    layer.eval(), other.eval()
    torch.testing.assert_close(run(layer, x), run(other, x))
    torch.testing.assert_close(layer.kl(), other.kl())


#: StochasticModule subclasses the contract above does not build, each with the suite that
#: tests it instead.
NOT_HERE = {
    "BatchedMLP": "M models at once on (M, N, D) inputs; tests/test_sweep.py",
    "VariationalRNNBase": "the recurrence of VariationalLSTM and VariationalGRU (both here)",
}


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_the_contract_covers_every_stochastic_module():
    """A new bayesdrop layer gets the contract, or a stated reason why not (issue 25)."""
    built = {type(factory()) for factory, _ in LAYERS.values()}
    public = {
        c
        for c in _subclasses(bayesdrop.nn.StochasticModule)
        if c.__module__.startswith("bayesdrop.") and not c.__name__.startswith("_")
    }
    missing = sorted(c.__name__ for c in public - built if c.__name__ not in NOT_HERE)
    assert missing == []
    assert len(public) >= 10
