"""Training objectives: the KL of a model, the ELBO, R-Drop."""

from bayesdrop.objectives.elbo import ELBO, ELBOTerms
from bayesdrop.objectives.kl import kl_divergence
from bayesdrop.objectives.rdrop import RDrop, RDropOutput

__all__ = ["ELBO", "ELBOTerms", "RDrop", "RDropOutput", "kl_divergence"]
