r"""Acquisition scores from sampled class probabilities ``(S, N, C)`` (pure functions).

Every score is larger for a point more worth labelling. With :math:`S` sampled probability
vectors :math:`p_s = p(y \mid x, \omega_s)` of a point and their mean :math:`\bar p`:

.. math::

    \text{BALD} &= \mathcal H[\bar p] - \frac1S \sum_s \mathcal H[p_s] \\
    \text{max entropy} &= \mathcal H[\bar p] \\
    \text{variation ratio} &= 1 - \frac{\#\{s : \arg\max p_s = \text{mode}\}}{S} \\
    \text{mean std} &= \frac1C \sum_c \sqrt{\tfrac1S \textstyle\sum_s p_{s,c}^2 - \bar p_c^2} \\
    \text{margin} &= 1 - (\bar p_{(1)} - \bar p_{(2)})

(Gal, Islam & Ghahramani 2017, section 3; :math:`\bar p_{(1)} \ge \bar p_{(2)}` are the two
largest mean probabilities). ``"random"`` draws uniform scores, the baseline.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from bayesdrop import functional as BF
from bayesdrop._random import base_seed, generator
from bayesdrop._validation import check_choice, check_tensor, fail
from bayesdrop.calibration._inputs import check_probs_values
from bayesdrop.functional import variation_ratio

__all__ = [
    "SCORES",
    "acquisition_scores",
    "bald",
    "margin",
    "max_entropy",
    "mean_std",
    "random_scores",
    "variation_ratio",
]

Score = Literal["bald", "max_entropy", "variation_ratio", "mean_std", "margin", "random"]
#: The per-point acquisition scores of :func:`acquisition_scores`.
SCORES: tuple[str, ...] = (
    "bald",
    "max_entropy",
    "variation_ratio",
    "mean_std",
    "margin",
    "random",
)


def check_samples(samples: object, name: str = "samples") -> Tensor:
    """Sampled probabilities ``(S, N, C)``: floating, finite, in [0, 1], every row summing to 1
    (the check of the calibration metrics, :func:`bayesdrop.calibration.as_points`)."""
    samples = check_tensor(name, samples)
    if samples.dim() != 3 or samples.shape[-1] < 2 or not samples.is_floating_point():
        fail(
            name,
            "a floating tensor of sampled probabilities (S, N, C) with C >= 2",
            f"a tensor of shape {tuple(samples.shape)} and dtype {samples.dtype}",
            "Predict with return_samples=True and pass prediction.samples.",
        )
    if samples.numel():
        check_probs_values(samples.reshape(-1, samples.shape[-1]), name)
    return samples


def bald(samples: Tensor) -> Tensor:
    """BALD: the mutual information between the label and the weights, ``(N,)`` in nats.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.active import bald
    >>> s = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])
    >>> bald(s)  # disagreeing samples vs agreeing ones
    tensor([0.6931, 0.0000])
    """
    return BF.mutual_information(check_samples(samples))


def max_entropy(samples: Tensor) -> Tensor:
    """Predictive entropy of the mean probabilities, ``(N,)`` in nats.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.active import max_entropy
    >>> s = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])
    >>> max_entropy(s)  # both points average to (0.5, 0.5)
    tensor([0.6931, 0.6931])
    """
    return BF.predictive_entropy(check_samples(samples))


def mean_std(samples: Tensor) -> Tensor:
    """Mean over classes of the standard deviation of each class probability, ``(N,)``.

    The standard deviation divides by :math:`S` (the population form, as Kendall et al. 2015).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.active import mean_std
    >>> s = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    >>> mean_std(s)
    tensor([0.5000])
    """
    samples = check_samples(samples)
    return samples.var(0, correction=0).clamp_min(0.0).sqrt().mean(-1)


def margin(samples: Tensor) -> Tensor:
    r"""One minus the gap between the two largest mean probabilities, ``(N,)`` in [0, 1].

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.active import margin
    >>> s = torch.tensor([[[0.7, 0.2, 0.1]], [[0.5, 0.4, 0.1]]])  # mean (0.6, 0.3, 0.1)
    >>> round(margin(s).item(), 6)
    0.7
    """
    return margin_from_probs(check_samples(samples).mean(0))


def margin_from_probs(probs: Tensor) -> Tensor:
    """:func:`margin` from mean probabilities ``(N, C)``."""
    top = probs.topk(2, dim=-1).values
    return 1.0 - (top[..., 0] - top[..., 1])


def random_scores(num_points: int, *, seed: int | None = None) -> Tensor:
    """Uniform scores in [0, 1): the random-acquisition baseline, ``(num_points,)``.

    Examples
    --------
    >>> from bayesdrop.active import random_scores
    >>> bool((random_scores(5, seed=0) == random_scores(5, seed=0)).all())
    True
    """
    return torch.rand(num_points, generator=generator(base_seed(seed)), dtype=torch.float64)


def acquisition_scores(samples: Tensor, method: Score, *, seed: int | None = None) -> Tensor:
    """The score ``method`` of every point of ``samples (S, N, C)``, ``(N,)``.

    Parameters
    ----------
    samples : Tensor (S, N, C)
        Sampled class probabilities (``prediction.samples``).
    method : {"bald", "max_entropy", "variation_ratio", "mean_std", "margin", "random"}
    seed : int, optional
        For ``"random"`` only.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.active import acquisition_scores
    >>> s = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])
    >>> acquisition_scores(s, "mean_std")
    tensor([0.5000, 0.0000])
    """
    check_choice("method", method, SCORES)
    samples = check_samples(samples)
    if method == "random":
        return random_scores(samples.shape[1], seed=seed)
    function = {
        "bald": bald,
        "max_entropy": max_entropy,
        "variation_ratio": lambda s: variation_ratio(check_samples(s)),
        "mean_std": mean_std,
        "margin": margin,
    }[method]
    return function(samples)
