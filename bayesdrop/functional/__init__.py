"""Pure functions holding bayesdrop's math; modules only hold parameters and call these."""

from bayesdrop.functional._drop_path import drop_path, drop_path_mask_shape
from bayesdrop.functional._dropout import (
    CONCRETE_EPS,
    bernoulli_dropout,
    bernoulli_mask,
    concrete_drop_mask,
    concrete_dropout,
    spatial_mask_shape,
)
from bayesdrop.functional._kl import (
    RegularizerConstants,
    bernoulli_entropy,
    concrete_dropout_kl,
    concrete_regularization,
    mc_dropout_kl,
    regularizer_constants,
)
from bayesdrop.functional._likelihood import categorical_nll, gaussian_nll, heteroscedastic_nll
from bayesdrop.functional._rdrop import rdrop_loss, rdrop_mse_loss, symmetric_kl
from bayesdrop.functional._recurrence import gru_recurrence, lstm_recurrence
from bayesdrop.functional._rnn import (
    apply_sequence_mask,
    packed_row_index,
    sequence_mask,
    word_type_mask,
)
from bayesdrop.functional._uncertainty import (
    entropy,
    expected_entropy,
    gaussian_mc_log_likelihood,
    heteroscedastic_aleatoric_variance,
    heteroscedastic_mc_log_likelihood,
    jackknife_mutual_information_std_error,
    mc_log_likelihood,
    mean_std_error,
    merge_moments,
    mutual_information,
    predictive_entropy,
    sample_moments,
    variation_ratio,
)

__all__ = [
    "CONCRETE_EPS",
    "RegularizerConstants",
    "apply_sequence_mask",
    "bernoulli_dropout",
    "bernoulli_entropy",
    "bernoulli_mask",
    "categorical_nll",
    "concrete_drop_mask",
    "concrete_dropout",
    "concrete_dropout_kl",
    "concrete_regularization",
    "drop_path",
    "drop_path_mask_shape",
    "entropy",
    "expected_entropy",
    "gaussian_mc_log_likelihood",
    "gaussian_nll",
    "gru_recurrence",
    "heteroscedastic_aleatoric_variance",
    "heteroscedastic_mc_log_likelihood",
    "heteroscedastic_nll",
    "jackknife_mutual_information_std_error",
    "lstm_recurrence",
    "mc_dropout_kl",
    "mc_log_likelihood",
    "mean_std_error",
    "merge_moments",
    "mutual_information",
    "packed_row_index",
    "predictive_entropy",
    "rdrop_loss",
    "rdrop_mse_loss",
    "regularizer_constants",
    "sample_moments",
    "sequence_mask",
    "spatial_mask_shape",
    "symmetric_kl",
    "variation_ratio",
    "word_type_mask",
]
