"""bayesdrop's layers: dropout posteriors with explicit KL terms."""

from bayesdrop.nn._base import StochasticModule
from bayesdrop.nn._batched import BatchedMLP
from bayesdrop.nn._concrete import ConcreteDropout, SpatialConcreteDropout
from bayesdrop.nn._convert import ConversionReport, convert
from bayesdrop.nn._diagnostics import (
    ConcreteRateMonitor,
    RateReport,
    collapsed_rates,
    concrete_rates,
    set_concrete_regularizers,
)
from bayesdrop.nn._drop_path import DropPath
from bayesdrop.nn._embedding import EmbeddingDropout, LockedDropout
from bayesdrop.nn._mc_dropout import MCDropout, SpatialMCDropout
from bayesdrop.nn._rnn import RNNMasks
from bayesdrop.nn._rnn_layers import VariationalGRU, VariationalLSTM
from bayesdrop.nn._sampling import (
    drop_rate,
    find_functional_dropout,
    is_noise_module,
    is_stochastic,
    noise_modules,
    noise_scope,
    register_stochastic_module,
    sampling,
    stochastic_modules,
)

__all__ = [
    "BatchedMLP",
    "ConcreteDropout",
    "ConcreteRateMonitor",
    "ConversionReport",
    "DropPath",
    "EmbeddingDropout",
    "LockedDropout",
    "MCDropout",
    "RNNMasks",
    "RateReport",
    "SpatialConcreteDropout",
    "SpatialMCDropout",
    "StochasticModule",
    "VariationalGRU",
    "VariationalLSTM",
    "collapsed_rates",
    "concrete_rates",
    "convert",
    "drop_rate",
    "find_functional_dropout",
    "is_noise_module",
    "is_stochastic",
    "noise_modules",
    "noise_scope",
    "register_stochastic_module",
    "sampling",
    "set_concrete_regularizers",
    "stochastic_modules",
]
