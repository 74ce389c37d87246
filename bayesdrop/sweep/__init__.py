"""Train and evaluate many small dropout networks at once (grid searches, repeated splits).

A :class:`~bayesdrop.nn.BatchedMLP` holds ``M`` independent networks; :class:`RegressionBatch`
gives each its own standardised training set; :func:`fit_regression` trains them all in one
loop of batched matrix products and :func:`predict_regression` draws their MC-dropout
predictions. The UCI benchmark trains its whole grid x splits this way.
"""

from bayesdrop.sweep._data import RegressionBatch, pad_sets
from bayesdrop.sweep._predict import RegressionMetrics, predict_regression
from bayesdrop.sweep._train import BatchedAdam, fit_regression

__all__ = [
    "BatchedAdam",
    "RegressionBatch",
    "RegressionMetrics",
    "fit_regression",
    "pad_sets",
    "predict_regression",
]
