"""bayesdrop: dropout as a practical Bayesian uncertainty toolkit for PyTorch."""

from bayesdrop import functional, models, nn
from bayesdrop.exceptions import BayesdropError, BayesdropTypeError, BayesdropValueError
from bayesdrop.functional.kl import RegularizerConstants, regularizer_constants
from bayesdrop.nn import (
    ConcreteDropout,
    ConversionReport,
    EmbeddingDropout,
    LockedDropout,
    MCDropout,
    SpatialConcreteDropout,
    VariationalGRU,
    VariationalLSTM,
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
    "EmbeddingDropout",
    "LockedDropout",
    "MCDropout",
    "RegularizerConstants",
    "SpatialConcreteDropout",
    "VariationalGRU",
    "VariationalLSTM",
    "convert",
    "functional",
    "kl_divergence",
    "models",
    "nn",
    "regularizer_constants",
    "sampling",
]
