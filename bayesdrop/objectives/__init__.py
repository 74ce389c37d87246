"""Training objectives: the KL of a model, the ELBO, R-Drop."""

from bayesdrop.objectives._elbo import ELBO, ELBOTerms
from bayesdrop.objectives._kl import kl_divergence
from bayesdrop.objectives._rdrop import RDrop, RDropOutput

__all__ = ["ELBO", "ELBOTerms", "RDrop", "RDropOutput", "kl_divergence"]
