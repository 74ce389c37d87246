"""Monte-Carlo dropout prediction: engines, running sums, results."""

from bayesdrop.predict.api import mc_predict
from bayesdrop.predict.noise import NoiseCheck, check_noise
from bayesdrop.predict.options import PredictOptions
from bayesdrop.predict.predictor import MCPredictor
from bayesdrop.predict.results import ClassificationPrediction, RegressionPrediction

__all__ = [
    "ClassificationPrediction",
    "MCPredictor",
    "NoiseCheck",
    "PredictOptions",
    "RegressionPrediction",
    "check_noise",
    "mc_predict",
]
