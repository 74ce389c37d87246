"""The per-token result of :func:`bayesdrop.generate` and :func:`bayesdrop.score_tokens`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bayesdrop.functional import entropy

__all__ = ["TokenUncertainty"]


@dataclass(frozen=True)
class TokenUncertainty:
    r"""Tokens with the uncertainty of the Monte-Carlo dropout ensemble at each position.

    With :math:`p_s = \mathrm{softmax}(f_s(w_{<t}))` the next-token distribution of dropout
    sample :math:`s` and :math:`\bar p = \frac1S\sum_s p_s` the ensemble's, the fields are, per
    position :math:`t` (all in nats)

    .. math::

        \log \bar p(w_t),\qquad
        \mathcal H[\bar p],\qquad
        \frac1S\sum_s \mathcal H[p_s],\qquad
        I_t = \mathcal H[\bar p] - \frac1S\sum_s \mathcal H[p_s] \;\ge 0 .

    Positions after a row's end (``mask`` False: after its end-of-sequence token in
    generation, the target's padding in scoring) hold 0 in every float field and are left out
    of the sequence aggregates.

    Attributes
    ----------
    tokens : Tensor, shape ``(B, T)``
        The generated (or scored) tokens, ``pad_token_id`` after a row's end.
    mask : Tensor, shape ``(B, T)``, bool
        True where a token belongs to the row (the end-of-sequence token included).
    log_probs : Tensor, shape ``(B, T)``
        :math:`\log \bar p(w_t)`, the ensemble's log-probability of each token.
    predictive_entropy : Tensor, shape ``(B, T)``
        :math:`\mathcal H[\bar p]`, total uncertainty of the next-token distribution.
    expected_entropy : Tensor, shape ``(B, T)``
        :math:`\frac1S\sum_s \mathcal H[p_s]` (aleatoric part).
    mutual_information : Tensor, shape ``(B, T)``
        :math:`I_t` (epistemic part, BALD), clamped at 0 against rounding.
    num_samples : int
        :math:`S`.
    noise_modules : tuple of str
        Names of the modules whose noise was sampled (rate above 0).
    """

    tokens: Tensor
    mask: Tensor
    log_probs: Tensor
    predictive_entropy: Tensor
    expected_entropy: Tensor
    mutual_information: Tensor
    num_samples: int
    noise_modules: tuple[str, ...]

    @property
    def lengths(self) -> Tensor:
        """Tokens per row, ``(B,)``."""
        return self.mask.sum(-1)

    @property
    def mean_mutual_information(self) -> Tensor:
        """Mean of :math:`I_t` over each row's tokens, ``(B,)`` (0 for an empty row)."""
        return self.mutual_information.sum(-1) / self.lengths.clamp_min(1)

    @property
    def total_log_prob(self) -> Tensor:
        r""":math:`\sum_t \log \bar p(w_t)` over each row's tokens, ``(B,)``."""
        return self.log_probs.sum(-1)


def token_quantities(
    sum_probs: Tensor, sum_entropy: Tensor, num_samples: int, tokens: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""``(log_probs, predictive_entropy, expected_entropy, mutual_information)`` from the sums
    over samples of :math:`p_s` (``(..., V)``) and of :math:`\mathcal H[p_s]` (``(...)``)."""
    mean = sum_probs / num_samples
    predictive = entropy(mean)
    expected = sum_entropy / num_samples
    picked = mean.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked.log(), predictive, expected, (predictive - expected).clamp_min(0.0)


def assemble(
    tokens: Tensor, mask: Tensor, parts: list[Tensor], num_samples: int, noise: tuple[str, ...]
) -> TokenUncertainty:
    """The result, with 0 in every float field where ``mask`` is False."""
    log_probs, predictive, expected, mi = (torch.where(mask, p, torch.zeros_like(p)) for p in parts)
    return TokenUncertainty(tokens, mask, log_probs, predictive, expected, mi, num_samples, noise)
