r"""How well an uncertainty score separates errors from hits, and in- from out-of-distribution.

A score is "higher = more uncertain" (predictive entropy, mutual information, ``1 - max p``).
Detection treats the positives (misclassified points, or OOD points) as the class to find:

* AUROC: area under the ROC curve (0.5 = chance, 1 = perfect);
* AUPR: average precision with the positives as the relevant class;
* FPR at 95 % TPR: the fraction of negatives flagged when the threshold catches 95 % of positives.

The curves come from scikit-learn (``roc_auc_score``, ``average_precision_score``, ``roc_curve``),
which treat tied scores as one threshold, so the numbers do not depend on the order of the rows.

Rejection curves rank by the score too, and scores tie often (every saturated softmax row has
entropy 0). Where the points to keep end inside a group of tied scores, the curve counts each of
them with the group's mean correctness: the expected value when ties are broken at random, the
same averaging as the ROC curve's diagonal segment. The area under the risk-coverage curve (AURC,
Geifman et al., 2019) and its excess over the oracle (E-AURC) come with the curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bayesdrop._validation import as_tensor, check_positive_int, fail
from bayesdrop.calibration._inputs import (
    Layout,
    as_float_tensor,
    as_points,
    check_scores,
    top_label,
)
from bayesdrop.functional._uncertainty import entropy, mutual_information

__all__ = [
    "DetectionScores",
    "RejectionCurve",
    "accuracy_rejection_curve",
    "detection_scores",
    "misclassification_detection",
    "ood_detection",
]


@dataclass(frozen=True)
class DetectionScores:
    """Quality of a score at detecting the positive class (all in ``[0, 1]``).

    Attributes
    ----------
    auroc : float
        Area under the ROC curve: the probability that a random positive scores higher than a
        random negative (ties count one half).
    aupr : float
        Area under the precision-recall curve, with the positives as the class to find.
    fpr_at_95_tpr : float
        False-positive rate at the threshold that finds 95 % of the positives.
    num_positive, num_negative : int
        Numbers of positive and negative points (misclassified and correct points, or
        out-of-distribution and in-distribution inputs).
    """

    auroc: float
    aupr: float
    fpr_at_95_tpr: float
    num_positive: int
    num_negative: int


def detection_scores(scores: Any, is_positive: Any) -> DetectionScores:
    """AUROC, AUPR and FPR at 95 % TPR of ``scores (N,)`` against boolean ``is_positive (N,)``.

    ``is_positive`` is boolean or holds the labels 0 and 1 only; NaN, other labels and
    probabilities are errors. The numbers do not depend on the order of the rows, ties included.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import detection_scores
    >>> s = detection_scores(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1]))
    >>> s.auroc, s.fpr_at_95_tpr
    (1.0, 0.0)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    scores = check_scores(scores, "scores").detach().cpu().double().numpy()
    positive = _check_binary("is_positive", is_positive).numpy()
    if positive.shape != scores.shape:
        fail("is_positive", f"of shape {scores.shape}", f"shape {positive.shape}")
    num_pos = int(positive.sum())
    if num_pos == 0 or num_pos == len(positive):
        fail(
            "is_positive", "both positives and negatives", f"{num_pos} of {len(positive)} positive"
        )
    fpr, tpr, _ = roc_curve(positive, scores, drop_intermediate=False)
    return DetectionScores(
        auroc=float(roc_auc_score(positive, scores)),
        aupr=float(average_precision_score(positive, scores)),
        fpr_at_95_tpr=float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
        num_positive=num_pos,
        num_negative=len(positive) - num_pos,
    )


def _check_binary(name: str, value: Any) -> Tensor:
    """A boolean 1-D tensor from booleans or 0/1 labels (integer or floating)."""
    value = as_tensor(name, value).detach().cpu()
    if value.ndim != 1:
        fail(name, "a 1-D tensor", f"shape {tuple(value.shape)}")
    if value.dtype == torch.bool:
        return value
    if value.is_complex():
        fail(name, "boolean or 0/1 labels", f"dtype {value.dtype}", type_error=True)
    is_label = (value == 0) | (value == 1)  # False for NaN
    if not bool(is_label.all()):
        bad = value[~is_label]
        shown = ", ".join(f"{v:g}" for v in bad.unique()[:5].double().tolist())
        fail(
            name,
            "boolean or 0/1 labels",
            f"{bad.numel()} other value(s) such as {shown}",
            "Pass a boolean mask, e.g. labels == positive_class.",
        )
    return value == 1


def misclassification_detection(
    probs: Tensor,
    target: Tensor,
    scores: Tensor,
    *,
    layout: Layout | None = None,
    ignore_index: int | None = None,
) -> DetectionScores:
    """How well ``scores`` flag the misclassified points (positives = wrong top-1 prediction).

    ``probs`` is any input of :func:`~bayesdrop.calibration.as_points`; ``scores`` has one
    entry per point (the shape of ``target``), ignored points dropped with the predictions.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import misclassification_detection
    >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    >>> scores = 1 - probs.amax(-1)
    >>> misclassification_detection(probs, torch.tensor([0, 1, 1]), scores).auroc
    1.0
    """
    points = as_points(probs, target, layout=layout, ignore_index=ignore_index)
    assert points.target is not None
    scores = check_scores(points.select("scores", scores), "scores", points.probs.shape[0])
    return detection_scores(scores, ~top_label(points.probs, points.target)[1])


def ood_detection(id_scores: Tensor, ood_scores: Tensor) -> DetectionScores:
    """How well a score separates out-of-distribution points (positives) from in-distribution ones.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import ood_detection
    >>> ood_detection(torch.tensor([0.1, 0.3]), torch.tensor([0.2, 0.9])).auroc
    0.75
    """
    id_scores = check_scores(id_scores, "id_scores")
    ood_scores = check_scores(ood_scores, "ood_scores")
    # the wider dtype of the two: float16 scores cast down with float64 ones would tie
    wide = torch.promote_types(id_scores.dtype, ood_scores.dtype)
    id_scores, ood_scores = id_scores.to(wide), ood_scores.to(id_scores.device, wide)
    labels = torch.cat([torch.zeros(len(id_scores)), torch.ones(len(ood_scores))])
    return detection_scores(torch.cat([id_scores, ood_scores]), labels)


@dataclass(frozen=True)
class RejectionCurve:
    """Accuracy on the retained points when the most uncertain fraction is rejected.

    Attributes
    ----------
    rejection_rate, accuracy, oracle_accuracy : Tensor, shape ``(num_rates,)``
        The curve of the score and of the oracle (errors rejected first).
    aurc : float
        Area under the risk-coverage curve: the mean over :math:`k = 1..N` of the error rate of
        the :math:`k` most certain points (lower is better).
    eaurc : float
        ``aurc`` minus the oracle's, 0 for a score that ranks every error last.
    """

    rejection_rate: Tensor
    accuracy: Tensor
    oracle_accuracy: Tensor
    aurc: float
    eaurc: float


def _expected_prefix_sums(scores: Tensor, values: Tensor) -> Tensor:
    """For ``k = 1..N``: the expected sum of ``values`` over the ``k`` lowest ``scores``, ties
    broken uniformly at random (a tied group cut at ``k`` contributes its mean per point)."""
    order = scores.argsort()
    ordered_scores, ordered = scores[order], values[order].double()
    counts = torch.unique_consecutive(ordered_scores, return_counts=True)[1]
    ends = counts.cumsum(0)
    starts = ends - counts
    prefix = torch.cat([ordered.new_zeros(1), ordered.cumsum(0)])
    group_mean = (prefix[ends] - prefix[starts]) / counts
    k = torch.arange(1, len(values) + 1)
    group = torch.searchsorted(ends, k)  # the group holding the k-th point
    return prefix[starts[group]] + (k - starts[group]) * group_mean[group]


def accuracy_rejection_curve(
    probs: Tensor,
    target: Tensor,
    scores: Tensor,
    *,
    num_rates: int = 21,
    layout: Layout | None = None,
    ignore_index: int | None = None,
) -> RejectionCurve:
    r"""Accuracy of the retained points after rejecting the ``r`` most uncertain fraction.

    For rejection rates :math:`r \in \{0, \dots, (K-1)/K\}` (``num_rates = K``) the
    :math:`\lceil (1-r) N\rceil` points with the lowest scores are kept. The oracle curve rejects
    errors first, the best any score can do. Where tied scores straddle the cut, the kept part
    of the tie counts with the tie's mean accuracy, so the curve does not depend on the row
    order. ``probs`` is any input of :func:`~bayesdrop.calibration.as_points`; ``scores`` has
    one entry per point.

    .. math::
        \mathrm{AURC} = \frac1N \sum_{k=1}^{N} \frac{\#\{\text{errors among the } k
        \text{ lowest scores}\}}{k}, \qquad \mathrm{E\text{-}AURC} = \mathrm{AURC} -
        \mathrm{AURC}_{\text{oracle}}

    References
    ----------
    Geifman, Uziel, El-Yaniv, "Bias-Reduced Uncertainty Estimation for Deep Neural
    Classifiers", ICLR 2019.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import accuracy_rejection_curve
    >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.55, 0.45]])
    >>> curve = accuracy_rejection_curve(probs, torch.tensor([0, 1, 0, 1]), 1 - probs.amax(-1),
    ...                                  num_rates=2)
    >>> curve.accuracy
    tensor([0.5000, 1.0000], dtype=torch.float64)
    >>> round(curve.aurc, 4), round(curve.eaurc, 4)  # risks 0, 0, 1/3, 1/2: as the oracle's
    (0.2083, 0.0)
    """
    num_rates = check_positive_int("num_rates", num_rates)
    points = as_points(probs, target, layout=layout, ignore_index=ignore_index)
    assert points.target is not None
    scores = check_scores(points.select("scores", scores), "scores", points.probs.shape[0])
    return _rejection_curve(top_label(points.probs, points.target)[1], scores, num_rates)


def _rejection_curve(correct: Tensor, scores: Tensor, num_rates: int) -> RejectionCurve:
    """:func:`accuracy_rejection_curve` from validated per-point ``correct (N,)`` indicators and
    ``scores (N,)`` (the form a sharded report gathers: no probabilities needed)."""
    correct = correct.detach().double().cpu()
    n = len(correct)
    rates = torch.arange(num_rates, dtype=torch.float64) / num_rates
    keep = ((1 - rates) * n).ceil().long().clamp_min(1)
    kept_correct = _expected_prefix_sums(scores.detach().cpu().double(), correct)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    oracle = k.clamp_max(correct.sum())  # every correct point kept first
    aurc = (1 - kept_correct / k).mean().item()
    oracle_aurc = (1 - oracle / k).mean().item()
    return RejectionCurve(
        rates,
        kept_correct[keep - 1] / keep,
        oracle[keep - 1] / keep,
        aurc=aurc,
        eaurc=aurc - oracle_aurc,
    )


#: The uncertainty scores a report can rank points by.
UNCERTAINTIES = ("predictive_entropy", "mutual_information", "max_probability")


def uncertainty_scores(kind: str, probs: Tensor, samples: Any, mi: Any) -> Tensor:
    """The score ``kind`` of every point (a report's ``uncertainty``): predictive entropy,
    ``1 - max p``, or the mutual information of a result or of its MC samples."""
    if kind == "predictive_entropy":
        return entropy(probs)
    if kind == "max_probability":
        return 1 - probs.amax(-1)
    if mi is not None:
        return check_scores(mi, "predictions.mutual_information", probs.shape[0]).to(probs)
    if samples is None:
        fail(
            "uncertainty",
            "'predictive_entropy' or 'max_probability' without MC samples",
            repr(kind),
            'Pass MC samples with layout="samples", or a prediction result with samples.',
        )
    return mutual_information(as_float_tensor("samples", samples).to(probs))
