r"""How well an uncertainty score separates errors from hits, and in- from out-of-distribution.

A score is "higher = more uncertain" (predictive entropy, mutual information, ``1 - max p``).
Detection treats the positives (misclassified points, or OOD points) as the class to find:

* AUROC: area under the ROC curve (0.5 = chance, 1 = perfect);
* AUPR: average precision with the positives as the relevant class;
* FPR at 95 % TPR: the fraction of negatives flagged when the threshold catches 95 % of positives.

The curves come from scikit-learn (``roc_auc_score``, ``average_precision_score``, ``roc_curve``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bayesdrop._validation import check_positive_int, fail
from bayesdrop.calibration.inputs import check_classification, check_scores, top_label

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
    """Quality of a score at detecting the positive class (all in ``[0, 1]``)."""

    auroc: float
    aupr: float
    fpr_at_95_tpr: float
    num_positive: int
    num_negative: int


def detection_scores(scores: Any, is_positive: Any) -> DetectionScores:
    """AUROC, AUPR and FPR at 95 % TPR of ``scores (N,)`` against boolean ``is_positive (N,)``.

    Examples
    --------
    >>> s = detection_scores(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1]))
    >>> s.auroc, s.fpr_at_95_tpr
    (1.0, 0.0)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    scores = check_scores(scores, "scores").detach().cpu().double().numpy()
    positive = torch.as_tensor(is_positive).reshape(-1).bool().cpu().numpy()
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


def misclassification_detection(probs: Tensor, target: Tensor, scores: Tensor) -> DetectionScores:
    """How well ``scores`` flag the misclassified points (positives = wrong top-1 prediction).

    Examples
    --------
    >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    >>> scores = 1 - probs.amax(-1)
    >>> misclassification_detection(probs, torch.tensor([0, 1, 1]), scores).auroc
    1.0
    """
    probs, target = check_classification(probs, target)
    scores = check_scores(scores, "scores", probs.shape[0])
    return detection_scores(scores, ~top_label(probs, target)[1])


def ood_detection(id_scores: Tensor, ood_scores: Tensor) -> DetectionScores:
    """How well a score separates out-of-distribution points (positives) from in-distribution ones.

    Examples
    --------
    >>> ood_detection(torch.tensor([0.1, 0.3]), torch.tensor([0.2, 0.9])).auroc
    0.75
    """
    id_scores = check_scores(id_scores, "id_scores")
    ood_scores = check_scores(ood_scores, "ood_scores").to(id_scores)
    labels = torch.cat([torch.zeros(len(id_scores)), torch.ones(len(ood_scores))])
    return detection_scores(torch.cat([id_scores, ood_scores]), labels)


@dataclass(frozen=True)
class RejectionCurve:
    """Accuracy on the retained points when the most uncertain fraction is rejected."""

    rejection_rate: Tensor
    accuracy: Tensor
    oracle_accuracy: Tensor


def accuracy_rejection_curve(
    probs: Tensor, target: Tensor, scores: Tensor, *, num_points: int = 21
) -> RejectionCurve:
    r"""Accuracy of the retained points after rejecting the ``r`` most uncertain fraction.

    For rejection rates :math:`r \in \{0, \dots, (K-1)/K\}` (``num_points = K``) the
    :math:`\lceil (1-r) N\rceil` points with the lowest scores are kept. The oracle curve rejects
    errors first, the best any score can do.

    Examples
    --------
    >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.55, 0.45]])
    >>> curve = accuracy_rejection_curve(probs, torch.tensor([0, 1, 0, 1]), 1 - probs.amax(-1),
    ...                                  num_points=2)
    >>> curve.accuracy
    tensor([0.5000, 1.0000], dtype=torch.float64)
    """
    probs, target = check_classification(probs, target)
    scores = check_scores(scores, "scores", probs.shape[0])
    num_points = check_positive_int("num_points", num_points)
    correct = top_label(probs, target)[1].double().cpu()
    rates = torch.arange(num_points, dtype=torch.float64) / num_points
    keep = ((1 - rates) * len(correct)).ceil().long().clamp_min(1)
    ordered = correct[scores.detach().cpu().argsort(stable=True)].cumsum(0)
    oracle = correct.sort(descending=True).values.cumsum(0)
    return RejectionCurve(rates, ordered[keep - 1] / keep, oracle[keep - 1] / keep)
