"""bayesdrop's layers: dropout posteriors with explicit KL terms."""

from bayesdrop.nn.base import StochasticModule
from bayesdrop.nn.batched import BatchedMLP
from bayesdrop.nn.concrete import ConcreteDropout, SpatialConcreteDropout
from bayesdrop.nn.convert import ConversionReport, convert
from bayesdrop.nn.diagnostics import (
    ConcreteRateMonitor,
    RateReport,
    collapsed_rates,
    concrete_rates,
    set_concrete_regularizers,
)
from bayesdrop.nn.drop_path import DropPath
from bayesdrop.nn.embedding import EmbeddingDropout, LockedDropout
from bayesdrop.nn.mc_dropout import MCDropout, SpatialMCDropout
from bayesdrop.nn.rnn import RNNMasks, VariationalGRU, VariationalLSTM
from bayesdrop.nn.sampling import (
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
