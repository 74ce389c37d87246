"""Ranking-based quantities do not depend on the row order (ties included); AURC / E-AURC;
labels of detection scores are validated."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from bayesdrop.calibration import (
    CalibrationReport,
    accuracy_rejection_curve,
    detection_scores,
    misclassification_detection,
)
from bayesdrop.exceptions import BayesdropTypeError, BayesdropValueError


def tied_predictions(seed: int = 0, n: int = 300):
    """Saturated rows (entropy exactly 0) mixed with soft ones: many tied scores."""
    gen = torch.Generator().manual_seed(seed)
    soft = (2 * torch.randn(n, 3, generator=gen, dtype=torch.float64)).softmax(-1)
    hard = torch.nn.functional.one_hot(torch.randint(0, 3, (n,), generator=gen), 3).double()
    saturated = torch.rand(n, generator=gen) < 0.5
    probs = torch.where(saturated[:, None], hard, soft)
    target = torch.distributions.Categorical(probs=0.8 * probs + 0.2 / 3).sample()
    scores = (1 - probs.amax(-1)).round(decimals=1)  # coarse: ties among the soft rows too
    return probs, target, scores


def brute_force_curve(correct: np.ndarray, scores: np.ndarray, keep: int) -> float:
    """Mean accuracy of the kept points over every order of the tied scores (small N)."""
    values = []
    for order in itertools.permutations(range(len(scores))):
        ranked = sorted(order, key=lambda i: scores[i])  # stable: ties in permutation order
        values.append(correct[ranked[:keep]].mean())
    return float(np.mean(values))


def test_rejection_curve_is_invariant_to_row_order():
    probs, target, scores = tied_predictions()
    assert len(scores.unique()) < 20  # heavy ties: the test has teeth
    curve = accuracy_rejection_curve(probs, target, scores, num_rates=10)
    for seed in range(5):
        perm = torch.randperm(len(target), generator=torch.Generator().manual_seed(seed))
        other = accuracy_rejection_curve(probs[perm], target[perm], scores[perm], num_rates=10)
        torch.testing.assert_close(other.accuracy, curve.accuracy, rtol=0, atol=1e-12)
        assert other.aurc == pytest.approx(curve.aurc, abs=1e-12)
        assert other.eaurc == pytest.approx(curve.eaurc, abs=1e-12)


def test_tied_cut_is_the_average_over_tie_orders():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.6, 0.4], [0.6, 0.4], [0.3, 0.7]])
    target = torch.tensor([0, 0, 1, 1, 1])  # the three tied rows: one right, two wrong
    scores = torch.tensor([0.1, 0.4, 0.4, 0.4, 0.3])
    curve = accuracy_rejection_curve(probs, target, scores, num_rates=5)
    correct = np.array([1, 1, 0, 0, 1], dtype=float)
    for rate, acc in zip(curve.rejection_rate.tolist(), curve.accuracy.tolist(), strict=True):
        keep = int(np.ceil((1 - rate) * 5))
        assert acc == pytest.approx(brute_force_curve(correct, scores.numpy(), keep), abs=1e-12)
    # keep 3: rows 0 and 4, plus one of three tied rows (1/3 correct): (2 + 1/3) / 3
    assert curve.accuracy[2].item() == pytest.approx(7 / 9)


def test_aurc_by_hand_and_bounds():
    correct = np.array([1, 0, 1, 1, 0, 1], dtype=bool)
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    probs = torch.tensor([[0.9, 0.1]] * 6)
    target = torch.tensor([0 if c else 1 for c in correct])
    curve = accuracy_rejection_curve(probs, target, scores)
    errors = np.cumsum(~correct)
    aurc = np.mean(errors / np.arange(1, 7))
    oracle = np.mean(np.maximum(np.arange(1, 7) - 4, 0) / np.arange(1, 7))
    assert curve.aurc == pytest.approx(aurc) and curve.eaurc == pytest.approx(aurc - oracle)
    perfect = accuracy_rejection_curve(probs, target, torch.tensor(~correct, dtype=torch.float))
    assert perfect.eaurc == pytest.approx(0.0, abs=1e-12) and curve.eaurc > 0


def test_detection_scores_do_not_depend_on_row_order():
    probs, target, scores = tied_predictions(1)
    base = misclassification_detection(probs, target, scores)
    wrong = (probs.argmax(-1) != target).numpy()
    assert base.auroc == pytest.approx(roc_auc_score(wrong, scores.numpy()))
    assert base.aupr == pytest.approx(average_precision_score(wrong, scores.numpy()))
    perm = torch.randperm(len(target), generator=torch.Generator().manual_seed(3))
    other = misclassification_detection(probs[perm], target[perm], scores[perm])
    assert other == base


def test_report_rejection_curve_is_order_invariant():
    probs, target, _ = tied_predictions(2)
    perm = torch.randperm(len(target), generator=torch.Generator().manual_seed(0))
    a = CalibrationReport.from_predictions(probs, target, uncertainty="max_probability")
    b = CalibrationReport.from_predictions(probs[perm], target[perm], uncertainty="max_probability")
    torch.testing.assert_close(a.rejection.accuracy, b.rejection.accuracy, rtol=0, atol=1e-12)
    assert a.to_dict()["rejection"]["aurc"] == pytest.approx(b.rejection.aurc, abs=1e-12)
    assert "E-AURC" in a.summary()


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        (torch.tensor([0.0, 1.0, float("nan"), 1.0]), BayesdropValueError, r"1 other value.*nan"),
        (torch.tensor([1, 2, 2, 1]), BayesdropValueError, r"0/1 labels.*such as 2"),
        (torch.tensor([0.2, 0.9, 0.7, 0.1]), BayesdropValueError, r"`is_positive`.*0/1 labels"),
        ([0, 1, 0, 1], BayesdropTypeError, r"`is_positive`.*torch.Tensor"),
    ],
)
def test_detection_scores_reject_non_binary_labels(labels, error, match):
    with pytest.raises(error, match=match):
        detection_scores(torch.tensor([0.1, 0.2, 0.3, 0.4]), labels)


def test_detection_scores_accept_bool_int_and_float_labels():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    expected = detection_scores(scores, torch.tensor([False, False, True, True]))
    for labels in (torch.tensor([0, 0, 1, 1]), np.array([0.0, 0.0, 1.0, 1.0])):
        assert detection_scores(scores, labels) == expected
    assert expected.auroc == pytest.approx(0.75)


# ---------------------------------------------------------------------------------------------
# property tests: AURC and E-AURC bounds and invariances
# ---------------------------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    correct=st.lists(st.booleans(), min_size=1, max_size=40),
    scores=st.lists(st.integers(0, 4), min_size=40, max_size=40),
    seed=st.integers(0, 2**16),
)
def test_aurc_bounds_and_order_invariance(correct, scores, seed):
    n = len(correct)
    target = torch.zeros(n, dtype=torch.long)
    # class 0 predicted everywhere (p = 0.7); a point is wrong when its target is 1
    target[~torch.tensor(correct)] = 1
    probs = torch.tensor([[0.7, 0.3]]).expand(n, 2).clone()
    s = torch.tensor(scores[:n], dtype=torch.float64)  # few distinct values: many ties
    curve = accuracy_rejection_curve(probs, target, s)
    risk = 1 - sum(correct) / n
    # the oracle ranks every error last; no score beats it, none is worse than reversing it
    assert -1e-12 <= curve.eaurc <= curve.aurc + 1e-12
    assert 0.0 <= curve.aurc <= 1.0
    if sum(correct) in (0, n):  # all right or all wrong: every ranking is the oracle
        assert curve.eaurc == pytest.approx(0.0, abs=1e-12)
        assert curve.aurc == pytest.approx(risk, abs=1e-12)
    # a constant score ranks nothing: AURC is the overall risk
    flat = accuracy_rejection_curve(probs, target, torch.zeros(n, dtype=torch.float64))
    assert flat.aurc == pytest.approx(risk, abs=1e-12)
    # any permutation of the rows gives the same numbers (ties averaged)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    shuffled = accuracy_rejection_curve(probs[perm], target[perm], s[perm])
    assert shuffled.aurc == pytest.approx(curve.aurc, abs=1e-12)
    torch.testing.assert_close(shuffled.accuracy, curve.accuracy, rtol=0, atol=1e-12)
