"""bayesdrop: dropout as a practical Bayesian uncertainty toolkit for PyTorch."""

from bayesdrop import active, calibration, functional, lm, models, nn, schedules, sweep
from bayesdrop.calibration import (
    CalibrationReport,
    RegressionReport,
    ReliabilityDisplay,
    TemperatureScaling,
    expected_calibration_error,
)
from bayesdrop.exceptions import (
    BayesdropError,
    BayesdropTypeError,
    BayesdropValueError,
    BayesdropWarning,
    ConcreteCollapseWarning,
    EngineFallbackWarning,
    FunctionalDropoutWarning,
    MissingDependencyError,
    UnshardedDataWarning,
)
from bayesdrop.functional._kl import RegularizerConstants, regularizer_constants
from bayesdrop.functional._rdrop import rdrop_loss
from bayesdrop.lm import generate, score_tokens
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
from bayesdrop.objectives import ELBO, ELBOTerms, RDrop, RDropOutput, kl_divergence
from bayesdrop.predict import (
    ClassificationPrediction,
    MCPredictor,
    RegressionPrediction,
    check_noise,
    mc_predict,
)

# the one source of the version (pyproject.toml reads it: [tool.hatch.version])
__version__ = "0.1.0.dev0"

__all__ = [
    "ELBO",
    "BayesdropError",
    "BayesdropTypeError",
    "BayesdropValueError",
    "BayesdropWarning",
    "CalibrationReport",
    "ClassificationPrediction",
    "ConcreteCollapseWarning",
    "ConcreteDropout",
    "ConversionReport",
    "ELBOTerms",
    "EmbeddingDropout",
    "EngineFallbackWarning",
    "FunctionalDropoutWarning",
    "LockedDropout",
    "MCDropout",
    "MCPredictor",
    "MissingDependencyError",
    "RDrop",
    "RDropOutput",
    "RegressionPrediction",
    "RegressionReport",
    "RegularizerConstants",
    "ReliabilityDisplay",
    "SpatialConcreteDropout",
    "TemperatureScaling",
    "UnshardedDataWarning",
    "VariationalGRU",
    "VariationalLSTM",
    "active",
    "calibration",
    "check_noise",
    "convert",
    "expected_calibration_error",
    "functional",
    "generate",
    "kl_divergence",
    "lm",
    "mc_predict",
    "models",
    "nn",
    "rdrop_loss",
    "regularizer_constants",
    "sampling",
    "schedules",
    "score_tokens",
    "sweep",
]
