"""The fast check of a model's fingerprint (issue 21): Snapshot.same() is true only where the
fingerprint is unchanged, for every kind of change the fingerprint sees."""

import pytest
import torch
from torch import nn

from bayesdrop.predict._statekey import Snapshot, fingerprint


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.drop = nn.Dropout(0.2)
        self.scale = 1.5
        self.sizes = [1, 2]
        self.cfg = {"mode": "a", "nested": [1, (2, [3])]}
        self.temperature = torch.tensor(2.0)

    def forward(self, x):
        return self.drop(self.fc(x)) * self.scale


def _change(net: Net, what: str) -> None:
    if what == "scalar":
        net.scale = 2.5
    elif what == "list in place":
        net.sizes.append(3)
    elif what == "dict in place":
        net.cfg["mode"] = "b"
    elif what == "nested list in place":
        net.cfg["nested"].append(4)
    elif what == "tensor of another value":
        net.temperature = torch.tensor(3.0)
    elif what == "tensor of another shape":
        net.temperature = torch.tensor([2.0, 2.0])
    elif what == "parameter":
        net.fc.weight = nn.Parameter(net.fc.weight.detach().clone())
    elif what == "buffer":
        net.fc.register_buffer("extra", torch.zeros(1))
    elif what == "child":
        net.fc = nn.Linear(3, 3)
    elif what == "hook":
        net.fc.register_forward_hook(lambda m, i, o: o)
    elif what == "rate":
        net.drop.p = 0.0
    elif what == "renamed":
        value = net.scale
        del net.scale
        net.factor = value
    elif what == "parameters dict":
        net.fc._parameters = dict(net.fc._parameters)
        net.fc._parameters["bias"] = None
    elif what == "class":
        net.drop.__class__ = type("Other", (nn.Dropout,), {"forward": lambda self, x: x})
    elif what == "instance forward":
        net.fc.forward = lambda x: x


CHANGES = [
    "scalar", "list in place", "dict in place", "nested list in place", "tensor of another value",
    "tensor of another shape", "parameter", "buffer", "child", "hook", "rate", "renamed",
    "parameters dict", "class", "instance forward",
]  # fmt: skip


@pytest.mark.parametrize("what", CHANGES)
def test_snapshot_sees_every_change_the_fingerprint_sees(what):
    net = Net()
    snap = Snapshot(net, fingerprint(net))
    assert snap.same(net)
    _change(net, what)
    assert fingerprint(net) != snap.key  # the fingerprint sees it ...
    assert not snap.same(net)  # ... and so does the fast check


def test_a_tensor_replaced_by_an_equal_one_is_compared_by_value_on_every_call():
    net = Net()
    snap = Snapshot(net, fingerprint(net))
    net.temperature = torch.tensor(2.0)  # a new object, equal to the old one
    assert fingerprint(net) != snap.key
    assert snap.same(net)  # the same numbers: the plans are kept ...
    net.temperature.fill_(4.0)  # ... and a later change of the new tensor is seen
    assert not snap.same(net)


def test_a_registration_between_calls_is_seen():
    import sys

    sampling_module = sys.modules["bayesdrop.nn._sampling"]
    net = Net()
    snap = Snapshot(net, fingerprint(net))

    class Unrelated(nn.Module):
        p = 0.1

    bayesdrop_nn = sys.modules["bayesdrop.nn"]
    bayesdrop_nn.register_stochastic_module(Unrelated, rate="p")
    try:
        # which modules are noise may have changed: the plans are built again
        assert not snap.same(net) and fingerprint(net) != snap.key
    finally:
        sampling_module._REGISTRY.pop(Unrelated)
        sampling_module._KIND_CACHE.clear()
    assert snap.same(net)


def test_snapshot_same_after_in_place_parameter_update():
    net = Net()
    snap = Snapshot(net, fingerprint(net))
    with torch.no_grad():
        net.fc.weight.add_(1.0)
    net.train(False)  # the training flags are not part of the fingerprint
    assert snap.same(net) and fingerprint(net) == snap.key


class _Traced(nn.Module):
    """A chain whose data-dependent branch stops torch.fx (so ``auto`` may pick hooked)."""

    def __init__(self, traceable: bool) -> None:
        super().__init__()
        self.traceable = traceable
        self.embed = nn.Linear(4, 16)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(16, 16), nn.Tanh())])
        self.blocks.append(nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.3)))
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = self.embed(x)
        if not self.traceable and bool(h.abs().sum() >= 0):
            h = h + 0.0
        for block in self.blocks:
            h = block(h)
        return self.head(h)


@pytest.mark.parametrize(
    ("engine", "traceable"),
    [("loop", True), ("batched", True), ("cached", True), ("hooked", False), ("auto", False)],
)
def test_a_predicted_model_can_be_freed(engine, traceable):
    # the plan cache is a weak dictionary keyed by the model: nothing in its values may hold
    # the model itself, or every model ever predicted stays in memory (a sweep runs out)
    import gc
    import weakref

    import bayesdrop

    model = _Traced(traceable).eval()
    x = torch.randn(5, 4)
    pred = bayesdrop.mc_predict(model, x, num_samples=4, seed=0, engine=engine)
    assert engine == "auto" or pred.engine == engine, pred.engine_reason
    bayesdrop.MCPredictor(model, num_samples=4, engine=engine, progress=False).predict(x)
    assert bayesdrop.check_noise(model, x, num_samples=4).ok
    ref = weakref.ref(model)
    del model, pred
    gc.collect()
    assert ref() is None
