r"""Uncertainty measures of a Monte-Carlo classifier.

Given :math:`S` sampled probability vectors :math:`p_s` (shape ``(S, N, C)``) with mean
:math:`\bar p = \frac1S\sum_s p_s`:

* predictive entropy (total): :math:`\mathcal H[\bar p] = -\sum_c \bar p_c \log \bar p_c`;
* expected entropy (aleatoric): :math:`\frac1S \sum_s \mathcal H[p_s]`;
* mutual information (BALD, epistemic): predictive minus expected entropy, :math:`\ge 0`;
* variation ratio: :math:`1 - f_m / S` with :math:`f_m` the count of the modal class.

Entropies are in nats, with :math:`0 \log 0 = 0`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "entropy",
    "expected_entropy",
    "mutual_information",
    "predictive_entropy",
    "variation_ratio",
]


def entropy(probs: Tensor, dim: int = -1) -> Tensor:
    r"""Shannon entropy :math:`-\sum_c p_c \log p_c` along ``dim``, in nats.

    Examples
    --------
    >>> round(entropy(torch.full((4,), 0.25)).item(), 6)  # log 4
    1.386294
    >>> entropy(torch.tensor([1.0, 0.0])).item()
    0.0
    """
    return -torch.special.xlogy(probs, probs).sum(dim)


def predictive_entropy(samples: Tensor) -> Tensor:
    """Entropy of the mean of ``samples (S, N, C)``: shape ``(N,)``.

    Examples
    --------
    >>> s = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # two confident, disagreeing samples
    >>> round(predictive_entropy(s).item(), 6)  # log 2
    0.693147
    """
    return entropy(samples.mean(0))


def expected_entropy(samples: Tensor) -> Tensor:
    """Mean over samples of the entropy of each sample: shape ``(N,)`` (aleatoric part).

    Examples
    --------
    >>> s = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    >>> expected_entropy(s).item()
    0.0
    """
    return entropy(samples).mean(0)


def mutual_information(samples: Tensor) -> Tensor:
    r"""BALD mutual information :math:`\mathcal H[\bar p] - \frac1S\sum_s \mathcal H[p_s]`.

    Clamped at zero against rounding. Shape ``(N,)``.

    Examples
    --------
    >>> s = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    >>> round(mutual_information(s).item(), 6)
    0.693147
    """
    return (predictive_entropy(samples) - expected_entropy(samples)).clamp_min(0.0)


def variation_ratio(samples: Tensor) -> Tensor:
    """``1 - (count of the modal predicted class) / S`` for ``samples (S, N, C)``.

    Examples
    --------
    >>> s = torch.tensor([[[0.9, 0.1]], [[0.8, 0.2]], [[0.3, 0.7]]])
    >>> round(variation_ratio(s).item(), 4)
    0.3333
    """
    num_samples, _, num_classes = samples.shape
    votes = torch.nn.functional.one_hot(samples.argmax(-1), num_classes).sum(0)
    return 1.0 - votes.amax(-1).to(samples.dtype) / num_samples
