"""Peer cross-check of bayesdrop.conformal against MAPIE 1.x and TorchCP 1.2 on identical
probabilities (float64 Dirichlet draws: no ties), for threshold (LAC), APS and RAPS.

Convention differences, each tested around below:

* Quantile: all three take the ceil((n + 1)(1 - alpha))-th smallest score (MAPIE:
  ``np.quantile(s, ceil((n + 1)(1 - alpha)) / n, method="lower")``; TorchCP:
  ``torch.kthvalue``). The peers compute the ceiling in float, bayesdrop on the decimal value
  of ``alpha``; they differ only where the float product lands just below an integer, e.g.
  alpha = 1/3 (0.3333333333333333) at n = 5, 11, 23, ...: bayesdrop k = 5, the peers k = 4
  (for the alpha given, 6 * (1 - 0.3333333333333333) = 4.0000000000000002 > 4).
* Precision: TorchCP draws its uniforms and computes the RAPS penalty in torch's default dtype
  (float32) even for float64 probabilities; the comparison runs it with float64 as the default
  dtype, where it agrees to the last bit.
* Sums: bayesdrop scores the calibration points' true classes without a sort (the probability
  ranked above the label, summed in class order), the peers by a cumulative sum in rank order:
  APS/RAPS calibration scores and quantiles agree to float rounding (1e-15), not bit for bit.
* Set membership: TorchCP and bayesdrop keep ``score <= q``; MAPIE keeps ``score <= q + 1e-8``
  (its EPSILON). No test score lies within 1e-8 of q here.
* APS randomisation: bayesdrop's score is Romano et al.'s ``sum_{above} p + u p_y``, one u per
  point (sets are prefixes of the ranking); MAPIE and TorchCP write ``cumsum - U p_y``, so
  ``u = 1 - U``. MAPIE draws U from ``RandomState(random_state)``: n values at calibration,
  one per test point at prediction (the same as bayesdrop's rule). TorchCP draws from torch's
  global stream: one per calibration point, but one per (test point, class) at prediction,
  applied in rank order (the j-th draw to the j-th most probable class), so its randomised
  sets are not nested; its quantile is compared with reproduced draws and its sets against
  that per-class rule. Non-randomised APS/RAPS (bayesdrop
  ``randomized=False``) is TorchCP's ``randomized=False``: ``s = cumsum including p_y``.
* MAPIE's APS calibration scores are always randomised; ``include_last_label`` only changes
  the prediction rule: ``True`` adds the label that crosses q (bayesdrop's sets with u = 0),
  ``False`` is ``cumsum <= q`` plus the top label (never empty).
* RAPS: the penalty lam * (o(y) - k_reg)^+ with the 1-based rank o(y) is the same in the three
  at calibration. MAPIE's public RAPS chooses (lambda, k_reg) itself on a 20% split of the
  calibration data (``size_raps``; ``SplitConformalClassifier`` passes ``size_raps=None``, so
  scikit-learn's default 10% is used, not the documented 20%): the test reproduces that split
  and fits bayesdrop with the values MAPIE chose on the other 90%. MAPIE's
  ``include_last_label=True`` rule penalises the rank before the crossing label
  (o(y) - 1 - k_reg), and its randomised rule divides by
  ``p_L - lam (L - k)^+ + lam [L > k]``: both equal bayesdrop's rule on rows whose set size L
  is at most k_reg, which is where they are compared.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedShuffleSplit

from bayesdrop.conformal import SplitConformalClassifier, conformity_scores, quantile_rank

mapie_classification = pytest.importorskip("mapie.classification")
torchcp_score = pytest.importorskip("torchcp.classification.score")
torchcp_predictor = pytest.importorskip("torchcp.classification.predictor")

pytestmark = pytest.mark.usefixtures("one_thread")

N, M, C = 1000, 400, 6
ALPHA = 0.1


def data(seed: int = 0, n: int = N + M, c: int = C):
    gen = np.random.default_rng(seed)
    probs = gen.dirichlet(np.full(c, 0.7), size=n)
    target = (probs.cumsum(1) < gen.random((n, 1))).sum(1).clip(max=c - 1)
    return probs, target


class FixedProbs(ClassifierMixin, BaseEstimator):
    """A 'fitted' scikit-learn classifier that returns given probabilities: row X[i, 0]."""

    def __init__(self, probs=None):
        self.probs = probs

    def fit(self, X, y):
        self.classes_ = np.arange(self.probs.shape[1])
        return self

    def predict_proba(self, X):
        return self.probs[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X):
        return self.predict_proba(X).argmax(1)


def mapie(score, probs, target, seed=1, n=N):
    X = np.arange(len(probs))[:, None]
    clf = mapie_classification.SplitConformalClassifier(
        FixedProbs(probs).fit(X, target),
        confidence_level=1 - ALPHA,
        conformity_score=score,
        prefit=True,
        random_state=seed,
    )
    clf.conformalize(X[:n], target[:n])
    clf.predict_set(X[n:])  # MAPIE computes its quantiles at the first prediction
    return clf, X[n:]


def mapie_sets(clf, X, include_last_label=None):
    params = None if include_last_label is None else {"include_last_label": include_last_label}
    return torch.from_numpy(clf.predict_set(X, conformity_score_params=params)[1][:, :, 0])


@contextlib.contextmanager
def float64_default():
    """TorchCP in float64 throughout (its draws and RAPS penalty use the default dtype)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def torchcp(score, probs, target):
    with warnings.catch_warnings():  # TorchCP's deprecated `temperature` argument
        warnings.simplefilter("ignore", DeprecationWarning)
        predictor = torchcp_predictor.SplitPredictor(score, model=None, alpha=ALPHA)
    with float64_default():
        predictor.calculate_threshold(probs, target, ALPHA)
    return predictor


def test_lac_equals_mapie_and_torchcp():
    probs, target = data()
    p, y = torch.from_numpy(probs), torch.from_numpy(target)
    ours = SplitConformalClassifier("lac", alpha=ALPHA).fit(p[:N], y[:N])
    sets = ours.predict_sets(p[N:])
    clf, X_test = mapie("lac", probs, target)
    assert ours.quantile_.item() == clf._mapie_classifier.conformity_score_function_.quantiles_[0]
    assert torch.equal(sets, mapie_sets(clf, X_test))
    cp = torchcp(torchcp_score.LAC(score_type="identity"), p[:N], y[:N])
    assert ours.quantile_.item() == pytest.approx(cp.q_hat.item(), rel=0, abs=1e-15)
    assert torch.equal(sets, cp.predict_with_logits(p[N:]).bool())


def test_aps_equals_mapie():
    probs, target = data(1)
    p, y = torch.from_numpy(probs), torch.from_numpy(target)
    clf, X_test = mapie("aps", probs, target, seed=3)
    # MAPIE's draws: RandomState(3), n at calibration, one per test point at prediction
    u_cal = torch.from_numpy(np.random.RandomState(3).uniform(size=N))
    u_test = torch.from_numpy(np.random.RandomState(3).uniform(size=(M, 1))[:, 0])
    torch.testing.assert_close(
        conformity_scores(p[:N], y[:N], score="aps", u=1 - u_cal),
        torch.from_numpy(clf._mapie_classifier.conformity_scores_[:, 0]),
        rtol=0,
        atol=1e-15,
    )
    ours = SplitConformalClassifier("aps", alpha=ALPHA).fit(p[:N], y[:N], u=1 - u_cal)
    q = clf._mapie_classifier.conformity_score_function_.quantiles_[0]
    assert ours.quantile_.item() == pytest.approx(q, abs=1e-15)
    randomized = ours.predict_sets(p[N:], u=1 - u_test)
    assert torch.equal(randomized, mapie_sets(clf, X_test, "randomized"))
    # include_last_label=True: up to and including the crossing label, i.e. u = 0
    crossing = ours.predict_sets(p[N:], u=torch.zeros(M, dtype=torch.float64))
    assert torch.equal(crossing, mapie_sets(clf, X_test, True))
    # include_last_label=False: cumsum <= q (u = 1, bayesdrop's randomized=False) plus the top
    below = ours.predict_sets(p[N:], u=torch.ones(M, dtype=torch.float64))
    below[torch.arange(M), p[N:].argmax(-1)] = True
    assert torch.equal(below, mapie_sets(clf, X_test, False))
    # the three rules are nested: False-rule minus top <= randomized <= True-rule
    assert (randomized <= crossing).all()


@pytest.mark.parametrize("score", ["aps", "raps"])
def test_aps_raps_non_randomized_equal_torchcp(score):
    probs, target = data(2)
    p, y = torch.from_numpy(probs), torch.from_numpy(target)
    options = {"lam": 0.05, "k_reg": 2} if score == "raps" else {}
    ours = SplitConformalClassifier(score, alpha=ALPHA, randomized=False, **options)
    ours.fit(p[:N], y[:N])
    if score == "raps":
        theirs = torchcp_score.RAPS(score_type="identity", randomized=False, penalty=0.05, kreg=2)
    else:
        theirs = torchcp_score.APS(score_type="identity", randomized=False)
    cp = torchcp(theirs, p[:N], y[:N])
    with float64_default():
        sets_cp = cp.predict_with_logits(p[N:]).bool()
    torch.testing.assert_close(
        conformity_scores(p[:N], y[:N], score=score, randomized=False, **options),
        cp.cal_scores,
        rtol=0,
        atol=1e-15,
    )
    assert ours.quantile_.item() == pytest.approx(cp.q_hat.item(), rel=0, abs=1e-15)
    assert torch.equal(ours.predict_sets(p[N:]), sets_cp)


@pytest.mark.parametrize("score", ["aps", "raps"])
def test_aps_raps_randomized_equal_torchcp(score):
    probs, target = data(3)
    p, y = torch.from_numpy(probs), torch.from_numpy(target)
    options = {"lam": 0.05, "k_reg": 2} if score == "raps" else {}
    if score == "raps":
        theirs = torchcp_score.RAPS(score_type="identity", randomized=True, penalty=0.05, kreg=2)
    else:
        theirs = torchcp_score.APS(score_type="identity", randomized=True)
    torch.manual_seed(11)
    cp = torchcp(theirs, p[:N], y[:N])
    torch.manual_seed(11)
    u_cal = torch.rand(N, dtype=torch.float64)
    ours = SplitConformalClassifier(score, alpha=ALPHA, **options).fit(p[:N], y[:N], u=1 - u_cal)
    assert ours.quantile_.item() == pytest.approx(cp.q_hat.item(), rel=0, abs=1e-15)
    # prediction: TorchCP draws one U per (point, rank): s = cumsum - U[rank] p (+ penalty)
    torch.manual_seed(12)
    with float64_default():
        sets_cp = cp.predict_with_logits(p[N:]).bool()
    torch.manual_seed(12)
    u_rank = torch.rand(M, C, dtype=torch.float64)
    rank = p[N:].argsort(-1, descending=True).argsort(-1)
    u_class = u_rank.gather(-1, rank)
    fixed = conformity_scores(p[N:], score=score, randomized=False, **options)
    assert torch.equal(sets_cp, fixed - u_class * p[N:] <= ours.quantile_)
    # with one draw per point instead, the rule is bayesdrop's
    u_point = u_rank[:, 0]
    assert torch.equal(
        ours.predict_sets(p[N:], u=1 - u_point), fixed - u_point[:, None] * p[N:] <= ours.quantile_
    )


def test_raps_equals_mapie_at_the_values_it_chose():
    probs, target = data(4)
    p, y = torch.from_numpy(probs), torch.from_numpy(target)
    clf, X_test = mapie("raps", probs, target, seed=5)
    cs = clf._mapie_classifier.conformity_score_function_
    lam, k_reg = float(cs.lambda_star), int(np.asarray(cs.k_star).reshape(-1)[0])
    # MAPIE's split of the calibration data: 10% to choose (lambda, k_reg), 90% to calibrate
    split = StratifiedShuffleSplit(n_splits=1, test_size=0.1, random_state=5)
    used, _ = next(split.split(np.arange(N)[:, None], target[:N]))
    u_cal = torch.from_numpy(np.random.RandomState(5).uniform(size=len(used)))
    ours = SplitConformalClassifier("raps", alpha=ALPHA, lam=lam, k_reg=k_reg)
    ours.fit(p[used], y[used], u=1 - u_cal)
    assert ours.quantile_.item() == pytest.approx(cs.quantiles_[0], abs=1e-15)
    # the prediction rules agree on rows whose set has at most k_reg labels
    u_test = torch.from_numpy(np.random.RandomState(5).uniform(size=(M, 1))[:, 0])
    randomized = ours.predict_sets(p[N:], u=1 - u_test)
    theirs = mapie_sets(clf, X_test, "randomized")
    small = theirs.sum(-1) <= k_reg
    assert small.float().mean() > 0.3
    assert torch.equal(randomized[small], theirs[small])
    # include_last_label=False: regularised cumsum <= q, plus the top label
    below = ours.predict_sets(p[N:], u=torch.ones(M, dtype=torch.float64))
    below[torch.arange(M), p[N:].argmax(-1)] = True
    assert torch.equal(below, mapie_sets(clf, X_test, False))


@pytest.mark.parametrize("n", [9, 10, 19, 50, 99, 100, 101, 999])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2, 1 / 3])
def test_quantile_rule_matches_the_peers(n, alpha):
    if n < math.ceil(1 / alpha) - 1:
        pytest.skip("below the minimum calibration size")
    from torchcp.utils.common import calculate_conformal_value

    scores = torch.from_numpy(np.random.default_rng(n).random(n))
    ours = quantile_rank(n, alpha)
    float_k = math.ceil((n + 1) * (1 - alpha))  # the peers' float ceiling
    got = torch.sort(scores).values[ours - 1].item()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TorchCP warns where k > n
        tcp = calculate_conformal_value(scores, alpha)
    from mapie.utils import _compute_classification_quantile

    mp = _compute_classification_quantile(scores.numpy()[:, None], np.array([alpha]))[0]
    if ours == float_k:
        assert got == float(tcp) == mp
    else:  # alpha = 1/3 at n = 11, 23, ...: see the module docstring
        assert (alpha, ours, float_k) == (1 / 3, float_k + 1, float_k)
        assert float(tcp) == mp == torch.sort(scores).values[float_k - 1].item() < got
