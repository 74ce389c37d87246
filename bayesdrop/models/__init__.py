"""Complete models built from bayesdrop's layers."""

from bayesdrop.models._language_model import (
    LanguageModel,
    LanguageModelMasks,
    perplexity,
    train_epoch,
)

__all__ = ["LanguageModel", "LanguageModelMasks", "perplexity", "train_epoch"]
