"""bayesdrop: dropout as a practical Bayesian uncertainty toolkit for PyTorch."""

from bayesdrop import functional, nn, sweep
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

__version__ = "0.1.0.dev0"

__all__ = [
    "ELBO",
    "BayesdropError",
    "BayesdropTypeError",
    "BayesdropValueError",
    "ConcreteDropout",
    "ConversionReport",
    "ELBOTerms",
    "MCDropout",
    "RegularizerConstants",
    "SpatialConcreteDropout",
    "convert",
    "functional",
    "kl_divergence",
    "nn",
    "regularizer_constants",
    "sampling",
    "sweep",
]
