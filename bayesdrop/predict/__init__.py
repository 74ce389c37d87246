"""Monte-Carlo dropout prediction: engines, running sums, results."""

from bayesdrop.predict.api import mc_predict
from bayesdrop.predict.predictor import MCPredictor
from bayesdrop.predict.results import ClassificationPrediction, RegressionPrediction

__all__ = ["ClassificationPrediction", "MCPredictor", "RegressionPrediction", "mc_predict"]
