"""Training objectives: the KL of a model and the ELBO."""

from bayesdrop.objectives.elbo import ELBO, ELBOTerms
from bayesdrop.objectives.kl import kl_divergence

__all__ = ["ELBO", "ELBOTerms", "kl_divergence"]
