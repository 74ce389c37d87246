"""Causal language models under Monte-Carlo dropout: generation and scoring with per-token
uncertainty (predictive entropy, mutual information, the ensemble's log-probabilities)."""

from bayesdrop.lm._generate import generate
from bayesdrop.lm._results import TokenUncertainty
from bayesdrop.lm._score import score_tokens

__all__ = ["TokenUncertainty", "generate", "score_tokens"]
