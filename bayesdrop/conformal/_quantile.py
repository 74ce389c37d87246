r"""The finite-sample conformal quantile, on one process or from scores sharded over ranks."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor

from bayesdrop._validation import check_real, fail
from bayesdrop.calibration._inputs import as_float_tensor

__all__ = [
    "check_alpha",
    "conformal_quantile",
    "gather_scores",
    "min_calibration_size",
    "quantile_rank",
]


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """A miscoverage level strictly inside ``(0, 1)``."""
    value = check_real(name, alpha)
    if not 0.0 < value < 1.0:
        fail(name, "a miscoverage level in (0, 1), e.g. 0.1 for 90% coverage", value)
    return value


def _exact(alpha: float) -> Fraction:
    # the decimal the user wrote (0.1 is 1/10, not 0.1000000000000000055...): no float rounding
    # moves ceil((n + 1)(1 - alpha)) across an integer
    return Fraction(repr(alpha))


def min_calibration_size(alpha: float) -> int:
    r"""The smallest calibration size :math:`n` with a finite quantile at level ``alpha``:
    :math:`\lceil 1/\alpha \rceil - 1` (for :math:`n` below it,
    :math:`\lceil (n + 1)(1 - \alpha) \rceil > n`).

    Examples
    --------
    >>> from bayesdrop.conformal import min_calibration_size
    >>> min_calibration_size(0.1), min_calibration_size(0.05), min_calibration_size(0.3)
    (9, 19, 3)
    """
    a = _exact(check_alpha(alpha))
    return math.ceil(1 / a) - 1


def quantile_rank(num_data: int, alpha: float) -> int:
    r"""The rank :math:`k = \lceil (n + 1)(1 - \alpha) \rceil` of the conformal quantile among
    ``num_data`` calibration scores (1-based), computed exactly on the decimal ``alpha``.

    Raises a ``ValueError`` naming ``alpha``, :math:`n` and the minimum when :math:`k > n`
    (the quantile would be :math:`+\infty`, every set the full label set).

    Examples
    --------
    >>> from bayesdrop.conformal import quantile_rank
    >>> quantile_rank(999, 0.1), quantile_rank(9, 0.1)
    (900, 9)
    """
    alpha = check_alpha(alpha)
    n = int(num_data)
    k = math.ceil((n + 1) * (1 - _exact(alpha)))
    if k > n:
        need = min_calibration_size(alpha)
        fail(
            "the calibration split",
            f"at least ceil(1 / alpha) - 1 = {need} points for alpha = {alpha:g}",
            f"n = {n}",
            "With fewer, the conformal quantile is infinite: give more calibration points or a "
            "larger alpha.",
        )
    return max(k, 1)


def conformal_quantile(scores: Any, alpha: float) -> Tensor:
    r"""The split-conformal quantile of calibration scores: their
    :math:`\lceil (n + 1)(1 - \alpha) \rceil`-th smallest value.

    For exchangeable calibration scores :math:`s_1, \dots, s_n` and a test score
    :math:`s_{n+1}`, the rank of :math:`s_{n+1}` among all :math:`n + 1` is uniform (ties broken
    at random), so with :math:`k = \lceil (n + 1)(1 - \alpha) \rceil`,

    .. math::

        \hat q = s_{(k)}, \qquad
        1 - \alpha \;\le\; P(s_{n+1} \le \hat q) \;\le\; 1 - \alpha + \frac{1}{n + 1}

    (the upper bound without ties). This is the empirical quantile at level :math:`k / n` read
    upwards, :math:`\min\{s : \hat F_n(s) \ge k/n\}` (NumPy's ``method="inverted_cdf"``; with
    NumPy's and torch's positions :math:`q (n - 1)` it is ``"lower"`` interpolation at
    :math:`k / n`, and ``"higher"`` at :math:`(k - 1)/(n - 1)`). The rank :math:`k` is computed
    exactly on the decimal value of ``alpha`` (:func:`quantile_rank`), with no float level in
    between. It needs :math:`k \le n`, i.e. :math:`n \ge \lceil 1/\alpha \rceil - 1` (a
    ``ValueError`` otherwise).

    Parameters
    ----------
    scores : Tensor (n,)
        Finite calibration scores.
    alpha : float
        Miscoverage level in ``(0, 1)``.

    Returns
    -------
    Tensor ()
        The quantile, in the dtype and on the device of ``scores``.

    References
    ----------
    Vovk, Gammerman & Shafer, *Algorithmic Learning in a Random World* (2005); Lei, G'Sell,
    Rinaldo, Tibshirani & Wasserman, "Distribution-free predictive inference for regression",
    JASA 2018 (Theorem 2.2).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.conformal import conformal_quantile
    >>> scores = torch.arange(1.0, 20.0)  # n = 19 scores 1, ..., 19
    >>> conformal_quantile(scores, 0.1)  # k = ceil(20 * 0.9) = 18
    tensor(18.)
    """
    scores = as_float_tensor("scores", scores)
    if scores.ndim != 1:
        fail("scores", "a 1-D tensor of calibration scores", f"shape {tuple(scores.shape)}")
    k = quantile_rank(scores.shape[0], alpha)
    return torch.kthvalue(scores, k).values


def gather_scores(scores: Tensor, group: Any = None) -> Tensor:
    """Every rank's calibration scores joined (rank order) on every rank; unchanged outside a
    distributed job. The shards may have different lengths; only the scores travel (one
    ``all_gather`` of the lengths, one of the scores padded to the longest shard).

    Examples
    --------
    Outside a distributed job the scores come back as they are:

    >>> import torch
    >>> from bayesdrop.conformal import gather_scores
    >>> scores = torch.tensor([0.2, 0.7])
    >>> gather_scores(scores) is scores
    True
    """
    from bayesdrop._distributed import context, gather_tensor

    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return scores
    return torch.cat(gather_tensor(context(group), scores.contiguous(), 0, True))
