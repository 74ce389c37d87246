"""bayesdrop: dropout as a practical Bayesian uncertainty toolkit for PyTorch."""

from bayesdrop import functional, nn
from bayesdrop.exceptions import BayesdropError, BayesdropTypeError, BayesdropValueError
from bayesdrop.functional.kl import RegularizerConstants, regularizer_constants
from bayesdrop.nn import (
    ConcreteDropout,
    ConversionReport,
    MCDropout,
    SpatialConcreteDropout,
    convert,
    sampling,
)
from bayesdrop.objectives import ELBO, ELBOTerms, kl_divergence
from bayesdrop.predict import (
    ClassificationPrediction,
    MCPredictor,
    RegressionPrediction,
    mc_predict,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ELBO",
    "BayesdropError",
    "BayesdropTypeError",
    "BayesdropValueError",
    "ClassificationPrediction",
    "ConcreteDropout",
    "ConversionReport",
    "ELBOTerms",
    "MCDropout",
    "MCPredictor",
    "RegressionPrediction",
    "RegularizerConstants",
    "SpatialConcreteDropout",
    "convert",
    "functional",
    "kl_divergence",
    "mc_predict",
    "nn",
    "regularizer_constants",
    "sampling",
]
