"""Pure functions holding bayesdrop's math; modules only hold parameters and call these."""

from bayesdrop.functional.dropout import (
    CONCRETE_EPS,
    bernoulli_dropout,
    bernoulli_mask,
    concrete_drop_mask,
    concrete_dropout,
    spatial_mask_shape,
)
from bayesdrop.functional.kl import (
    RegularizerConstants,
    bernoulli_entropy,
    concrete_dropout_kl,
    concrete_regularization,
    mc_dropout_kl,
    regularizer_constants,
)
from bayesdrop.functional.likelihood import categorical_nll, gaussian_nll, heteroscedastic_nll
from bayesdrop.functional.recurrence import gru_recurrence, lstm_recurrence
from bayesdrop.functional.rnn import (
    apply_sequence_mask,
    packed_row_index,
    sequence_mask,
    word_type_mask,
)
from bayesdrop.functional.uncertainty import (
    entropy,
    expected_entropy,
    mutual_information,
    predictive_entropy,
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
    "entropy",
    "expected_entropy",
    "gaussian_nll",
    "gru_recurrence",
    "heteroscedastic_nll",
    "lstm_recurrence",
    "mc_dropout_kl",
    "mutual_information",
    "packed_row_index",
    "predictive_entropy",
    "regularizer_constants",
    "sequence_mask",
    "spatial_mask_shape",
    "variation_ratio",
    "word_type_mask",
]
