"""Monte-Carlo dropout prediction: engines, running sums, results."""

from bayesdrop.predict._api import mc_predict
from bayesdrop.predict._noise import NoiseCheck, check_noise
from bayesdrop.predict._options import PredictOptions
from bayesdrop.predict._predictor import MCPredictor
from bayesdrop.predict._results import ClassificationPrediction, RegressionPrediction

__all__ = [
    "ClassificationPrediction",
    "MCPredictor",
    "NoiseCheck",
    "PredictOptions",
    "RegressionPrediction",
    "check_noise",
    "mc_predict",
]
