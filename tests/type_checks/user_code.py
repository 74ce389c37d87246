"""What a user's type checker sees (issue 24): checked by mypy in tests/test_typing.py.

``task=`` selects the result type of :func:`bayesdrop.mc_predict` and of
:class:`bayesdrop.MCPredictor` (overloads), so ``pred.probs`` and ``pred.mean`` type-check
without a cast; ``predict(gather="rank0")`` alone may return None (on ranks other than 0).
The file also runs (imported by pytest's doctest collection): the calls are real.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from typing_extensions import assert_type

import bayesdrop
from bayesdrop import ClassificationPrediction, RegressionPrediction

model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 2))
x = torch.randn(5, 4)

pred = bayesdrop.mc_predict(model, x, num_samples=4, seed=0)
assert_type(pred, ClassificationPrediction)
assert_type(pred.probs, Tensor)

regression = bayesdrop.mc_predict(model, x, num_samples=4, task="regression", tau=1.0)
assert_type(regression, RegressionPrediction)
assert_type(regression.mean, Tensor)


class MeanAndLogVariance(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 2))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.body(x)
        return out[:, :1], out[:, 1:]


heteroscedastic = bayesdrop.mc_predict(MeanAndLogVariance(), x, task="heteroscedastic")
assert_type(heteroscedastic, RegressionPrediction)

predictor = bayesdrop.MCPredictor(model, num_samples=4, progress=False)
assert_type(predictor, "bayesdrop.MCPredictor[ClassificationPrediction]")
assert_type(predictor.predict(x), ClassificationPrediction)
assert_type(predictor.predict(x, gather="none"), ClassificationPrediction)
assert_type(predictor.predict(x, gather="rank0"), "ClassificationPrediction | None")
regressor = bayesdrop.MCPredictor(model, num_samples=4, task="regression", tau=1.0)
assert_type(regressor.predict(x), RegressionPrediction)
