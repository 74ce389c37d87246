r"""Uncertainty measures of a Monte-Carlo classifier.

Given :math:`S` sampled probability vectors :math:`p_s` (shape ``(S, N, C)``) with mean
:math:`\bar p = \frac1S\sum_s p_s`:

* predictive entropy (total): :math:`\mathcal H[\bar p] = -\sum_c \bar p_c \log \bar p_c`;
* expected entropy (aleatoric): :math:`\frac1S \sum_s \mathcal H[p_s]`;
* mutual information (BALD, epistemic): predictive minus expected entropy, :math:`\ge 0`;
* variation ratio: :math:`1 - f_m / S` with :math:`f_m` the count of the modal class.

Entropies are in nats, with :math:`0 \log 0 = 0`. The module also holds the streaming forms the
predictor uses (moments merged chunk by chunk, a grouped jackknife standard error of the mutual
information) and the regression read-outs (heteroscedastic aleatoric variance, the Monte-Carlo
test log-likelihood; :doc:`/theory/predictive_uncertainty`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bayesdrop._validation import fail
from bayesdrop.functional._likelihood import gaussian_nll, heteroscedastic_nll

__all__ = [
    "entropy",
    "expected_entropy",
    "gaussian_mc_log_likelihood",
    "heteroscedastic_aleatoric_variance",
    "heteroscedastic_mc_log_likelihood",
    "jackknife_mutual_information_std_error",
    "mc_log_likelihood",
    "mean_std_error",
    "merge_moments",
    "mutual_information",
    "predictive_entropy",
    "sample_moments",
    "variation_ratio",
]


def entropy(probs: Tensor, dim: int = -1) -> Tensor:
    r"""Shannon entropy :math:`-\sum_c p_c \log p_c` along ``dim``, in nats.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import entropy
    >>> round(entropy(torch.full((4,), 0.25)).item(), 6)  # log 4
    1.386294
    >>> entropy(torch.tensor([1.0, 0.0])).item() == 0.0  # 0 log 0 = 0 (may print as -0.0)
    True
    """
    return -torch.special.xlogy(probs, probs).sum(dim)


def predictive_entropy(samples: Tensor) -> Tensor:
    """Entropy of the mean of ``samples (S, N, C)``: shape ``(N,)``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import predictive_entropy
    >>> s = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # two confident, disagreeing samples
    >>> round(predictive_entropy(s).item(), 6)  # log 2
    0.693147
    """
    return entropy(samples.mean(0))


def expected_entropy(samples: Tensor) -> Tensor:
    """Mean over samples of the entropy of each sample: shape ``(N,)`` (aleatoric part).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import expected_entropy
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
    >>> import torch
    >>> from bayesdrop.functional import mutual_information
    >>> s = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    >>> round(mutual_information(s).item(), 6)
    0.693147
    """
    return (predictive_entropy(samples) - expected_entropy(samples)).clamp_min(0.0)


def variation_ratio(samples: Tensor) -> Tensor:
    """``1 - (count of the modal predicted class) / S`` for ``samples (S, N, C)``, ``(N,)``.

    The votes are the per-sample ``argmax`` over classes, so probabilities and logits give the
    same value. Also exported as :func:`bayesdrop.active.variation_ratio` (the same function):
    an acquisition score.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import variation_ratio
    >>> s = torch.tensor([[[0.9, 0.1]], [[0.8, 0.2]], [[0.3, 0.7]]])
    >>> round(variation_ratio(s).item(), 4)
    0.3333
    """
    if not isinstance(samples, Tensor) or samples.dim() != 3 or not samples.is_floating_point():
        wanted = "a floating tensor of sampled probabilities or logits (S, N, C)"
        if not isinstance(samples, Tensor):
            fail("samples", wanted, f"a {type(samples).__name__}", type_error=True)
        got = f"a tensor of shape {tuple(samples.shape)} and dtype {samples.dtype}"
        fail("samples", wanted, got)
    num_samples, _, num_classes = samples.shape
    if num_samples == 0 or num_classes == 0:
        fail("samples", "at least one sample and one class", f"shape {tuple(samples.shape)}")
    votes = torch.nn.functional.one_hot(samples.argmax(-1), num_classes).sum(0)
    return 1.0 - votes.amax(-1).to(samples.dtype) / num_samples


# --- Streaming forms: moments merged chunk by chunk (memory independent of S) ---------------


def sample_moments(samples: Tensor) -> tuple[Tensor, Tensor]:
    r"""Mean and sum of squared deviations :math:`M_2 = \sum_s (x_s - \bar x)^2` over dim 0.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import sample_moments
    >>> mean, m2 = sample_moments(torch.tensor([[1.0], [3.0]]))
    >>> mean.item(), m2.item()
    (2.0, 2.0)
    """
    mean = samples.mean(0)
    return mean, (samples - mean).pow(2).sum(0)


def merge_moments(
    count_a: int, mean_a: Tensor, m2_a: Tensor, count_b: int, mean_b: Tensor, m2_b: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Merge the moments of two disjoint sample sets (Chan, Golub & LeVeque's update).

    .. math::

        \bar x = \bar x_a + \delta \frac{n_b}{n}, \qquad
        M_2 = M_{2,a} + M_{2,b} + \delta^2 \frac{n_a n_b}{n}, \qquad \delta = \bar x_b - \bar x_a.

    Unlike running sums of :math:`x` and :math:`x^2` it does not lose precision when the
    variance is small next to the mean.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import merge_moments, sample_moments
    >>> x = torch.tensor([[1.0], [2.0], [4.0], [7.0]])
    >>> mean, m2 = merge_moments(2, *sample_moments(x[:2]), 2, *sample_moments(x[2:]))
    >>> mean.item(), m2.item(), ((x - x.mean()) ** 2).sum().item()
    (3.5, 21.0, 21.0)
    """
    count = count_a + count_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (count_b / count)
    return mean, m2_a + m2_b + delta.pow(2) * (count_a * count_b / count)


def mean_std_error(m2: Tensor, count: int) -> Tensor:
    r"""Monte-Carlo standard error :math:`\sqrt{M_2 / ((S-1) S)}` of a sample mean.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import mean_std_error
    >>> mean_std_error(torch.tensor(2.0), 2).item()  # samples 1 and 3: std 1.414 / sqrt(2)
    1.0
    """
    if count < 2:
        return torch.full_like(m2, float("inf"))
    return (m2 / ((count - 1) * count)).sqrt()


def jackknife_mutual_information_std_error(
    prob_sums: Tensor, entropy_sums: Tensor, counts: Tensor
) -> Tensor:
    r"""Grouped (delete-a-group) jackknife standard error of the BALD mutual information.

    The samples are split into :math:`G` groups; ``prob_sums (G, N, C)`` and
    ``entropy_sums (G, N)`` hold each group's sums of :math:`p_s` and :math:`\mathcal H[p_s]`,
    ``counts (G,)`` its sample count. With :math:`I_{-g}` the estimate without group
    :math:`g` and :math:`\bar I` their mean,

    .. math::

        \mathrm{SE}^2 = \frac{G-1}{G} \sum_{g=1}^G \left(I_{-g} - \bar I\right)^2 .

    Memory is :math:`G N C` whatever the number of samples.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import entropy, jackknife_mutual_information_std_error
    >>> probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8]])[:, None]
    >>> se = jackknife_mutual_information_std_error(probs, entropy(probs), torch.ones(4))
    >>> se.shape
    torch.Size([1])
    """
    counts = counts.to(prob_sums.dtype)
    groups = counts.numel()
    shape = (groups,) + (1,) * (prob_sums.dim() - 1)
    rest = counts.sum() - counts
    mean_without = (prob_sums.sum(0) - prob_sums) / rest.view(shape)
    expected_without = (entropy_sums.sum(0) - entropy_sums) / rest.view(shape[:-1])
    mi_without = entropy(mean_without) - expected_without
    spread = (mi_without - mi_without.mean(0)).pow(2).sum(0)
    return (spread * (groups - 1) / groups).sqrt()


# --- Regression: predictive moments and the Monte-Carlo test log-likelihood ----------------


def heteroscedastic_aleatoric_variance(log_variance_samples: Tensor) -> Tensor:
    r"""Aleatoric variance :math:`\exp(\frac1S \sum_s s_s)` of a log-variance head.

    The read-out of the Concrete Dropout reference code (Gal, Hron and Kendall, 2017;
    :doc:`/theory/predictive_uncertainty`): the exponential of the mean sampled log-variance (a
    geometric mean of the sampled variances).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import heteroscedastic_aleatoric_variance
    >>> round(heteroscedastic_aleatoric_variance(torch.tensor([[0.0], [2.0]])).item(), 6)  # e
    2.718282
    """
    return log_variance_samples.mean(0).exp()


def mc_log_likelihood(log_densities: Tensor) -> Tensor:
    r"""Log of the Monte-Carlo average of densities: :math:`\log \frac1S \sum_s e^{\ell_s}`.

    ``log_densities (S, N)`` are per-sample, per-point log-densities; the result is ``(N,)``,
    computed with ``logsumexp`` (never by averaging densities directly).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import mc_log_likelihood
    >>> round(mc_log_likelihood(torch.log(torch.tensor([[0.2], [0.4]]))).exp().item(), 6)
    0.3
    """
    return torch.logsumexp(log_densities, 0) - math.log(log_densities.shape[0])


def gaussian_mc_log_likelihood(samples: Tensor, target: Tensor, tau: float) -> Tensor:
    r"""Per-point test log-likelihood of MC dropout regression (Gal & Ghahramani, 2016).

    For sampled predictions ``samples (S, N, ...)`` and ``target (N, ...)`` with
    :math:`D` outputs per point,

    .. math::

        \log p(y) \approx \operatorname{logsumexp}_s\left(-\frac\tau2\lVert y-\hat y_s\rVert^2
        \right) - \log S - \frac D2 \log 2\pi + \frac D2 \log\tau .

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import gaussian_mc_log_likelihood
    >>> ll = gaussian_mc_log_likelihood(torch.zeros(3, 1, 1), torch.zeros(1, 1), tau=1.0)
    >>> round(ll.item(), 6)  # -log(2 pi) / 2
    -0.918939
    """
    return mc_log_likelihood(-torch.stack([gaussian_nll(s, target, tau) for s in samples]))


def heteroscedastic_mc_log_likelihood(
    mean_samples: Tensor, log_variance_samples: Tensor, target: Tensor
) -> Tensor:
    r"""Per-point test log-likelihood with a sampled log-variance head.

    .. math::

        \log p(y) \approx \operatorname{logsumexp}_s \log
        \mathcal N\!\left(y;\ \mu_s, e^{s_s}\right) - \log S .

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import heteroscedastic_mc_log_likelihood
    >>> z = torch.zeros(2, 1, 1)
    >>> round(heteroscedastic_mc_log_likelihood(z, z, torch.zeros(1, 1)).item(), 6)
    -0.918939
    """
    pairs = zip(mean_samples, log_variance_samples, strict=True)
    nll = torch.stack([heteroscedastic_nll(m, s, target) for m, s in pairs])
    return mc_log_likelihood(-nll)
