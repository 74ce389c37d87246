"""Uncertainty of a few units in the last place is nothing sampled: ``mc_predict`` raises
instead of returning it (no silent numbers), while a model whose noise moves its logits but
not its saturated probabilities, or reaches them only rarely, is not refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bayesdrop

pytestmark = pytest.mark.usefixtures("one_thread")

X = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))


class Faint(nn.Module):
    """Dropout whose output is added with a weight that rounding swallows or nearly so."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.fc, self.drop, self.out = nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 3)
        self.weight = weight

    def forward(self, x):
        h = torch.tanh(self.fc(x))
        return self.out(h + self.weight * self.drop(h))


@pytest.mark.parametrize("weight", [0.0, 1e-7])
@pytest.mark.parametrize("engine", ["auto", "loop"])
def test_outputs_that_move_only_by_rounding_are_refused(weight, engine):
    torch.manual_seed(0)
    model = Faint(weight).eval()
    with torch.no_grad():
        spread = torch.stack([model.train()(X) for _ in range(8)]).std(0).max()
    model.eval()
    assert float(spread) < 1e-5  # the premise: the logits move by rounding at most
    with pytest.raises(ValueError, match=r"no noise reaches the output"):
        bayesdrop.mc_predict(model, X, num_samples=32, seed=0, engine=engine)


def test_the_old_exact_zero_rule_returned_rounding_as_uncertainty(monkeypatch):
    # planted: zero spread meant every probability's second moment exactly 0, which rounding
    # in the moments' means never gives; the faint model then came back with MI of ~1e-7
    import sys

    accumulators = sys.modules["bayesdrop.predict._accumulators"]
    monkeypatch.setattr(
        accumulators.ClassificationAccumulator,
        "has_zero_spread",
        lambda self: bool((self.moments.m2 == 0).all()),
    )
    torch.manual_seed(0)
    pred = bayesdrop.mc_predict(Faint(1e-7).eval(), X, num_samples=32, seed=0, engine="loop")
    assert 0.0 < float(pred.mutual_information.max()) < 1e-5


def test_saturated_probabilities_with_moving_logits_are_not_refused():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.Linear(16, 3))
    with torch.no_grad():
        model[2].bias[0] = 1000.0  # class 0 wins by hundreds in every sample
    model.eval()
    with torch.no_grad():
        logits = torch.stack([model.train()(X) for _ in range(8)])
    model.eval()
    assert float(logits.std(0).max()) > 0.1  # the logits move ...
    assert bool((logits.softmax(-1)[..., 0] == 1.0).all())  # ... the probabilities do not
    pred = bayesdrop.mc_predict(model, X, num_samples=32, seed=0)  # an answer, not an error
    assert bool((pred.probs[:, 0] == 1.0).all())
    assert float(pred.mutual_information.max()) < 1e-6
