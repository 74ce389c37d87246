"""The sampling loop makes no host synchronisation when ``num_samples`` is fixed (issue 15).

On CUDA a host synchronisation stalls the pipeline: ``.item()``, ``bool(tensor)``, ``.tolist()``,
data-dependent shapes (``nonzero``, ``unique``, ``masked_select``, ``bincount``), ``F.one_hot``'s
range check, copies to the CPU. ``benchmarks/gpu.py`` checks this on a device with
``torch.cuda.set_sync_debug_mode("error")``; here, on the CPU, every torch call made inside the
engines' ``sample`` and the accumulators' ``update`` is recorded (``TorchFunctionMode``) and
none may be one of those.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import bayesdrop
from bayesdrop.predict import _accumulators as accumulators
from bayesdrop.predict import _engines as engines

SYNCING = {
    "item",
    "tolist",
    "__bool__",
    "__float__",
    "__int__",
    "__index__",
    "nonzero",
    "argwhere",
    "unique",
    "unique_consecutive",
    "masked_select",
    "bincount",
    "one_hot",
    "cpu",
    "numpy",
    "equal",
    "allclose",
    "repeat_interleave",
}


class Recorder(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append(getattr(func, "__name__", repr(func)))
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def record_sampling_loop():
    """Record the torch calls of every engine's ``sample`` and accumulator's ``update``."""
    recorder = Recorder()
    patched = []
    targets = [(cls, "sample") for cls in (engines.LoopEngine, engines.BatchedEngine)]
    targets += [(engines.CachedEngine, "sample")]
    targets += [(accumulators.ClassificationAccumulator, "update")]
    targets += [(accumulators.RegressionAccumulator, "update")]

    for cls, name in targets:
        original = getattr(cls, name)

        def wrapper(*args, _original=original, **kwargs):
            with recorder:
                return _original(*args, **kwargs)

        setattr(cls, name, wrapper)
        patched.append((cls, name, original))
    try:
        yield recorder
    finally:
        for cls, name, original in patched:
            setattr(cls, name, original)


class HeadCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(8, 4))

    def forward(self, x):
        return self.head(self.trunk(x))


def mlp(out: int = 4) -> nn.Module:
    return nn.Sequential(
        nn.Dropout(0.2), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, out)
    )


def encoder() -> nn.Module:
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
    return nn.Sequential(
        nn.TransformerEncoder(layer, 1, enable_nested_tensor=False), nn.Flatten(), nn.Linear(40, 3)
    )


CASES = {
    "head CNN": (HeadCNN, (6, 3, 8, 8)),
    "MLP": (mlp, (6, 12)),
    "TransformerEncoder": (encoder, (6, 5, 8)),
}


@pytest.mark.parametrize("engine", ["loop", "batched", "cached"])
@pytest.mark.parametrize("case", list(CASES))
def test_no_host_synchronisation_in_the_sampling_loop(case, engine):
    torch.manual_seed(0)
    make, shape = CASES[case]
    model, x = make().eval(), torch.randn(shape)
    with record_sampling_loop() as recorder:
        pred = bayesdrop.mc_predict(model, x, num_samples=12, engine=engine, chunk_size=5)
    assert pred.engine == engine
    assert recorder.calls, "the recorder saw nothing: the patch did not take"
    syncing = sorted(set(recorder.calls) & SYNCING)
    assert not syncing, f"host synchronisation in the sampling loop: {syncing}"


@pytest.mark.parametrize("engine", ["loop", "batched"])
def test_no_host_synchronisation_in_regression_with_a_target(engine):
    torch.manual_seed(0)
    model, x = mlp(out=2).eval(), torch.randn(6, 12)
    target = torch.randn(6, 2)
    with record_sampling_loop() as recorder:
        bayesdrop.mc_predict(
            model, x, num_samples=12, task="regression", tau=4.0, engine=engine, target=target
        )
    assert not sorted(set(recorder.calls) & SYNCING)


def test_the_recorder_catches_a_synchronisation(monkeypatch):
    # the check itself can fail: an accumulator that reads a value on the host is caught
    original = accumulators.ClassificationAccumulator.update

    def update_with_item(self, logits):
        logits.max().item()
        return original(self, logits)

    monkeypatch.setattr(accumulators.ClassificationAccumulator, "update", update_with_item)
    with record_sampling_loop() as recorder:
        bayesdrop.mc_predict(mlp().eval(), torch.randn(6, 12), num_samples=4)
    assert "item" in set(recorder.calls) & SYNCING
