"""Active learning from Monte-Carlo dropout uncertainty: acquisition scores, batch acquisition
(top-k, BatchBALD, stochastic), pool scoring through :class:`bayesdrop.MCPredictor` and a loop
helper that leaves training to you."""

from bayesdrop.active._batch import STOCHASTIC_MODES, Acquisition, stochastic_batch, top_k
from bayesdrop.active._batchbald import batchbald, joint_entropy
from bayesdrop.active._loop import ActiveSplit, LearningCurve, run_active_learning
from bayesdrop.active._masks import consistent_masks
from bayesdrop.active._pool import METHODS, SELECTIONS, PoolScores, acquire, score_pool
from bayesdrop.active._scores import (
    SCORES,
    acquisition_scores,
    bald,
    margin,
    max_entropy,
    mean_std,
    random_scores,
    variation_ratio,
)

__all__ = [
    "METHODS",
    "SCORES",
    "SELECTIONS",
    "STOCHASTIC_MODES",
    "Acquisition",
    "ActiveSplit",
    "LearningCurve",
    "PoolScores",
    "acquire",
    "acquisition_scores",
    "bald",
    "batchbald",
    "consistent_masks",
    "joint_entropy",
    "margin",
    "max_entropy",
    "mean_std",
    "random_scores",
    "run_active_learning",
    "score_pool",
    "stochastic_batch",
    "top_k",
    "variation_ratio",
]
