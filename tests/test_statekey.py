"""The fast check of a model's fingerprint (issue 21): Snapshot.same() is true only where the
fingerprint is unchanged, for every kind of change the fingerprint sees."""

import pytest
import torch
from torch import nn

from bayesdrop.predict.statekey import Snapshot, fingerprint


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
    elif what == "tensor of equal value":
        net.temperature = torch.tensor(2.0)
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
    "scalar", "list in place", "dict in place", "nested list in place", "tensor of equal value",
    "parameter", "buffer", "child", "hook", "rate", "renamed", "parameters dict", "class",
    "instance forward",
]  # fmt: skip


@pytest.mark.parametrize("what", CHANGES)
def test_snapshot_sees_every_change_the_fingerprint_sees(what):
    net = Net()
    snap = Snapshot(net, fingerprint(net))
    assert snap.same()
    _change(net, what)
    assert fingerprint(net) != snap.key  # the fingerprint sees it ...
    assert not snap.same()  # ... and so does the fast check


def test_snapshot_same_after_in_place_parameter_update():
    net = Net()
    snap = Snapshot(net, fingerprint(net))
    with torch.no_grad():
        net.fc.weight.add_(1.0)
    net.train(False)  # the training flags are not part of the fingerprint
    assert snap.same() and fingerprint(net) == snap.key
