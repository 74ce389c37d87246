"""bayesdrop.conformal: coverage that can fail, exact quantiles, dense inputs, uncertainty-aware
scores, regression intervals, sharded calibration (gloo) and bad input."""

from __future__ import annotations

import dataclasses
import math
import traceback
from fractions import Fraction

import gloo
import numpy as np
import pytest
import torch
import torch.distributed as dist

import bayesdrop
from bayesdrop.conformal import (
    SplitConformalClassifier,
    SplitConformalRegressor,
    class_conditional_coverage,
    conformal_intervals,
    conformal_quantile,
    conformal_sets,
    conformity_scores,
    coverage,
    gather_scores,
    interval_coverage,
    mean_interval_width,
    mean_set_size,
    min_calibration_size,
    quantile_rank,
    set_quality,
    size_stratified_coverage,
)
from bayesdrop.conformal._scores import lac_threshold

pytestmark = pytest.mark.usefixtures("one_thread")

C = 5


def synthetic(num: int, gen: torch.Generator, c: int = C):
    """Exchangeable points of an over-confident model: its probabilities are a sharpened
    version of the truth the labels are drawn from (so the sets must do real work)."""
    logits = 1.5 * torch.randn(num, c, generator=gen, dtype=torch.float64)
    target = torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0]
    return (2.0 * logits).softmax(-1), target


# ---------------------------------------------------------------- the quantile itself


@pytest.mark.parametrize("n", [9, 10, 19, 20, 99, 100, 101, 999, 1000])
@pytest.mark.parametrize("alpha", [0.1, 0.05, 0.2, 0.3, 1 / 3])
def test_quantile_is_the_ceil_n_plus_one_order_statistic(n, alpha):
    if n < min_calibration_size(alpha):
        pytest.skip("too small for this alpha (tested below)")
    scores = torch.randperm(n).double() + 1  # 1..n: the k-th smallest is k
    k = quantile_rank(n, alpha)
    assert k == math.ceil((n + 1) * (1 - Fraction(repr(alpha))))  # exact, on the decimal
    assert conformal_quantile(scores, alpha).item() == k
    # the same as the empirical quantile at level k / n: the inverse of the empirical CDF,
    # which with NumPy's / torch's positions q (n - 1) is "lower" interpolation (MAPIE's rule)
    assert np.quantile(scores.numpy(), k / n, method="inverted_cdf") == k
    assert torch.quantile(scores, k / n, interpolation="lower").item() == k


def test_quantile_needs_enough_points():
    assert min_calibration_size(0.1) == 9 and min_calibration_size(0.25) == 3
    assert conformal_quantile(torch.arange(9.0), 0.1).item() == 8.0  # k = 9 = n: the maximum
    with pytest.raises(
        ValueError, match=r"at least ceil\(1 / alpha\) - 1 = 9 .*alpha = 0.1.*n = 8"
    ):
        conformal_quantile(torch.arange(8.0), 0.1)
    with pytest.raises(ValueError, match="n = 3"):
        SplitConformalClassifier(alpha=0.1).fit(torch.full((3, 2), 0.5), torch.zeros(3).long())


@pytest.mark.parametrize("score", ["lac", "aps", "raps", "mi", "spread"])
def test_true_class_scores_equal_the_all_class_scores_with_ties(score):
    """Calibration scores the true class without a sort; prediction scores every class with a
    stable sort. Both rank tied classes by index, and agree to float rounding."""
    gen = torch.Generator().manual_seed(15)
    samples = torch.randint(0, 4, (6, 500, C), generator=gen).double() + 0.5
    samples = samples / samples.sum(-1, keepdim=True)  # many exact ties within rows
    pred = bayesdrop.ClassificationPrediction.from_samples(samples)
    pred = dataclasses.replace(pred, probs=(pred.probs * 4).round() / 4)
    pred = dataclasses.replace(pred, probs=pred.probs / pred.probs.sum(-1, keepdim=True))
    target = torch.randint(0, C, (500,), generator=gen)
    u = torch.rand(500, generator=gen, dtype=torch.float64)
    options = {"score": score, "lam": 0.3, "k_reg": 1, "u": u}
    every = conformity_scores(pred, **options)
    torch.testing.assert_close(
        conformity_scores(pred, target, **options),
        every.gather(-1, target[:, None])[:, 0],
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mondrian", [False, True])
def test_lac_sets_by_probability_threshold_equal_the_score_rule(dtype, mondrian):
    """LAC's sets are read as probs >= t (one pass); they are exactly 1 - probs <= q."""
    gen = torch.Generator().manual_seed(16)
    probs, target = synthetic(6000, gen)
    probs = probs.to(dtype)
    # test probabilities at the edge of class 0's rule and the floats beside it
    cp = SplitConformalClassifier("lac", mondrian=mondrian).fit(probs[:3000], target[:3000])
    q = cp.quantile_.to(dtype)
    edge = lac_threshold(q.reshape(-1)[0], dtype)
    near = torch.stack([edge, torch.nextafter(edge, edge + 1), torch.nextafter(edge, edge - 1)])
    test = probs[3000:].clone()
    test[:3, 0] = near
    test[:3, 1] = 1 - near
    test[:3, 2:] = 0
    sets = cp.predict_sets(test)
    assert torch.equal(sets, conformity_scores(test, score="lac") <= q)
    assert sets[:3, 0].tolist() == [True, True, False]


# ---------------------------------------------------------------- coverage that can fail


def _split_coverages(n: int, m: int, alpha: float, splits: int, quantile, score="lac"):
    gen = torch.Generator().manual_seed(n)
    out = torch.empty(splits, dtype=torch.float64)
    for i in range(splits):
        probs, target = synthetic(n + m, gen)
        cal = conformity_scores(probs[:n], target[:n], score=score, generator=gen)
        q = quantile(cal, alpha)
        test = conformity_scores(probs[n:], score=score, generator=gen)
        out[i] = coverage(test <= q, target[n:])
    return out


def _bounds(n: int, m: int, alpha: float, splits: int, z: float = 4.0):
    """Mean coverage over the splits: k / (n + 1) exactly (continuous scores); its standard
    error from the Beta(k, n + 1 - k) law of a split's coverage plus the binomial test noise."""
    k = quantile_rank(n, alpha)
    a, b = k, n + 1 - k
    mean = a / (a + b)
    var_beta = a * b / ((a + b) ** 2 * (a + b + 1))
    var = var_beta + (mean * (1 - mean) - var_beta) / m
    se = math.sqrt(var / splits)
    return 1 - alpha - z * se, 1 - alpha + 1 / (n + 1) + z * se


@pytest.mark.parametrize("score", ["lac", "aps", "raps"])
def test_mean_coverage_over_200_splits_within_binomial_bounds(score):
    n, m, alpha = 500, 200, 0.1
    covs = _split_coverages(n, m, alpha, 200, conformal_quantile, score)
    lo, hi = _bounds(n, m, alpha, 200)
    assert lo <= covs.mean().item() <= hi, (lo, covs.mean().item(), hi)


@pytest.mark.parametrize(("n", "alpha"), [(9, 0.1), (10, 0.1), (19, 0.1), (19, 0.05), (4, 0.2)])
def test_small_n_never_below_the_bounds_and_the_uncorrected_quantile_fails(n, alpha):
    m, splits = 100, 200
    lo, hi = _bounds(n, m, alpha, splits)
    covs = _split_coverages(n, m, alpha, splits, conformal_quantile)
    assert lo <= covs.mean().item() <= hi, (lo, covs.mean().item(), hi)
    if (n, alpha) != (10, 0.1):
        return

    # shown once: the plain empirical (1 - alpha) quantile, without the n + 1 correction
    # (the ceil(n (1 - alpha))-th smallest score, 9 of 10 here) under-covers: 9 / 11 = 0.82
    def uncorrected(scores, a):
        return torch.quantile(scores, 1 - a, interpolation="lower")

    naive = _split_coverages(n, m, alpha, splits, uncorrected)
    assert naive.mean().item() < lo, (naive.mean().item(), lo)
    assert naive.mean().item() == pytest.approx(9 / 11, abs=0.03)


def test_mondrian_covers_every_class():
    gen = torch.Generator().manual_seed(3)
    probs, target = synthetic(40_000, gen)
    cal, test = slice(0, 20_000), slice(20_000, None)
    marginal = SplitConformalClassifier("lac", alpha=0.1).fit(probs[cal], target[cal])
    mondrian = SplitConformalClassifier("lac", alpha=0.1, mondrian=True)
    mondrian.fit(probs[cal], target[cal])
    assert mondrian.quantile_.shape == (C,)
    per_class = class_conditional_coverage(mondrian.predict_sets(probs[test]), target[test])
    assert per_class.count.sum().item() == 20_000
    assert (per_class.coverage > 0.9 - 4 * (0.09 / per_class.count).sqrt()).all()
    plain = class_conditional_coverage(marginal.predict_sets(probs[test]), target[test])
    # the marginal sets cover unevenly: the spread across classes is wider than Mondrian's
    assert plain.coverage.std() > per_class.coverage.std()


# ---------------------------------------------------------------- prediction objects, dense


def _mc_prediction(num: int, gen: torch.Generator, spread: torch.Tensor | None = None):
    logits = 1.5 * torch.randn(num, C, generator=gen, dtype=torch.float64)
    target = torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0]
    spread = torch.rand(num, 1, 1, generator=gen, dtype=torch.float64) if spread is None else spread
    noise = torch.randn(20, num, C, generator=gen, dtype=torch.float64)
    samples = (2.0 * logits + 3 * spread.transpose(0, 1) * noise).softmax(-1)
    return bayesdrop.ClassificationPrediction.from_samples(samples), target


@pytest.mark.parametrize("score", ["lac", "aps", "raps", "mi", "spread"])
def test_every_score_covers_on_mc_predictions(score):
    gen = torch.Generator().manual_seed(5)
    pred, target = _mc_prediction(6000, gen)
    cal = bayesdrop.ClassificationPrediction.from_samples(pred.samples[:, :3000])
    test = bayesdrop.ClassificationPrediction.from_samples(pred.samples[:, 3000:])
    cp = SplitConformalClassifier(score, alpha=0.1, generator=gen).fit(cal, target[:3000])
    sets = cp.predict_sets(test)
    assert abs(coverage(sets, target[3000:]) - 0.9) < 4 * math.sqrt(0.09 / 1500)
    assert 1.0 <= mean_set_size(sets) < C


def _shifted_prediction(num: int, gen: torch.Generator):
    """A fifth of the points lie where the model is wrong (labels at random) and its dropout
    samples disagree (large spread); elsewhere the labels follow the truth."""
    logits = 1.5 * torch.randn(num, C, generator=gen, dtype=torch.float64)
    far = torch.rand(num, generator=gen, dtype=torch.float64) < 0.2
    target = torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0]
    target = torch.where(far, torch.randint(0, C, (num,), generator=gen), target)
    spread = torch.where(far, 1.0, 0.1).double()[:, None]
    noise = torch.randn(20, num, C, generator=gen, dtype=torch.float64)
    samples = (2 * logits + 3 * spread * noise).softmax(-1)
    return bayesdrop.ClassificationPrediction.from_samples(samples), target


def test_uncertainty_aware_scores_cover_the_uncertain_points():
    gen = torch.Generator().manual_seed(6)
    pred, target = _shifted_prediction(16_000, gen)
    half = slice(0, 8000), slice(8000, None)
    cal, test = (bayesdrop.ClassificationPrediction.from_samples(pred.samples[:, h]) for h in half)
    mi = test.mutual_information
    high = mi > mi.quantile(0.8)
    y = target[half[1]]
    cp_lac = SplitConformalClassifier("lac", alpha=0.1).fit(cal, target[half[0]])
    lac = cp_lac.predict_sets(test)
    assert coverage(lac[high], y[high]) < 0.87  # LAC under-covers where the samples disagree
    for score, at_least in (("mi", 0.9), ("spread", 0.875)):
        sets = SplitConformalClassifier(score, alpha=0.1, beta=3.0).fit(cal, target[half[0]])
        sets = sets.predict_sets(test)
        assert coverage(sets[high], y[high]) > at_least
        assert abs(coverage(sets, y) - 0.9) < 0.015
        assert mean_set_size(sets) <= mean_set_size(lac) + 0.05
    # beta = 0 is LAC exactly
    cp_lac = SplitConformalClassifier("lac", alpha=0.1).fit(pred, target)
    flat = SplitConformalClassifier("mi", alpha=0.1, beta=0.0).fit(pred, target)
    assert torch.equal(flat.predict_sets(pred), cp_lac.predict_sets(pred))
    # the formulas
    probs, mi = pred.probs, pred.mutual_information
    torch.testing.assert_close(
        conformity_scores(pred, score="mi", beta=2.0),
        (1 - probs) / (1 + 2 * mi.clamp_min(0))[:, None],
    )
    std = pred.samples.std(0, correction=0)
    torch.testing.assert_close(
        conformity_scores(pred, score="spread", beta=2.0), (1 - probs) / (1 + 2 * std)
    )


def test_dense_outputs_and_ignore_index():
    gen = torch.Generator().manual_seed(7)
    probs, target = synthetic(4 * 6 * 7, gen)
    dense, labels = probs.reshape(4, 6, 7, C), target.reshape(4, 6, 7).clone()
    labels[0, :, :3] = -100
    cp = SplitConformalClassifier("aps", alpha=0.2, ignore_index=-100, randomized=False)
    cp.fit(dense, labels)
    keep = labels.reshape(-1) != -100
    flat = SplitConformalClassifier("aps", alpha=0.2, randomized=False)
    flat.fit(probs[keep], target[keep])
    assert cp.calibration_scores_.shape == (int(keep.sum()),)
    torch.testing.assert_close(cp.quantile_, flat.quantile_)
    sets = cp.predict_sets(dense, target=labels)
    assert sets.shape == (4, 6, 7, C)
    assert not sets[0, :, :3].any()  # ignored points: all-False sets
    assert torch.equal(sets.reshape(-1, C)[keep], flat.predict_sets(probs[keep]))
    assert coverage(sets, labels, ignore_index=-100) == coverage(
        flat.predict_sets(probs[keep]), target[keep]
    )
    # sequences (N, T, C) as well
    seq = SplitConformalClassifier("lac").fit(probs.reshape(12, 14, C), target.reshape(12, 14))
    assert seq.predict_sets(probs.reshape(12, 14, C)).shape == (12, 14, C)


def test_a_raw_tensor_is_never_read_as_samples():
    gen = torch.Generator().manual_seed(8)
    probs, target = synthetic(3 * 40, gen)
    three = probs.reshape(3, 40, C)  # (N, T, C): 120 points, not 3 samples of 40
    cp = SplitConformalClassifier("lac").fit(three, target.reshape(3, 40))
    assert cp.calibration_scores_.shape == (120,)
    with pytest.raises(ValueError, match=r"of shape \(3, 40\)"):
        SplitConformalClassifier("lac").fit(three, target[:40])


def test_randomized_sets_are_reproducible_and_alpha_can_change():
    gen = torch.Generator().manual_seed(9)
    probs, target = synthetic(2000, gen)

    def sets(seed):
        g = torch.Generator().manual_seed(seed)
        cp = SplitConformalClassifier("raps", lam=0.1, k_reg=1, generator=g)
        return cp.fit(probs[:1000], target[:1000]).predict_sets(probs[1000:])

    assert torch.equal(sets(1), sets(1)) and not torch.equal(sets(1), sets(2))
    cp = SplitConformalClassifier("lac", alpha=0.1).fit(probs[:1000], target[:1000])
    wide = cp.predict_sets(probs[1000:], alpha=0.02)
    narrow = cp.predict_sets(probs[1000:], alpha=0.3)
    assert (narrow <= cp.predict_sets(probs[1000:])).all() and (
        cp.predict_sets(probs[1000:]) <= wide
    ).all()
    assert torch.equal(
        conformal_sets(probs[:1000], target[:1000], probs[1000:], alpha=0.1),
        cp.predict_sets(probs[1000:]),
    )


# ---------------------------------------------------------------- quality functions


def test_quality_functions():
    sets = torch.tensor(
        [[True, False, False], [True, True, False], [False, True, True], [False] * 3]
    )
    target = torch.tensor([0, 1, 0, 2])
    assert coverage(sets, target) == 0.5
    assert mean_set_size(sets) == 1.25
    by_class = class_conditional_coverage(sets, target)
    assert by_class.count.tolist() == [2, 1, 1]
    assert by_class.coverage.tolist() == [0.5, 1.0, 0.0]
    by_size = size_stratified_coverage(sets, target)
    assert by_size.count.tolist() == [1, 1, 2, 0]
    assert by_size.coverage[:3].tolist() == [0.0, 1.0, 0.5] and math.isnan(by_size.coverage[3])
    bundle = set_quality(sets, target)
    assert bundle.coverage == 0.5 and bundle.mean_set_size == 1.25
    lower, upper = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 2.0, 1.0])
    assert interval_coverage(lower, upper, torch.tensor([0.5, 3.0, 1.0])) == pytest.approx(2 / 3)
    assert mean_interval_width(lower, upper) == 1.0


# ---------------------------------------------------------------- regression


def _regression(num: int, gen: torch.Generator):
    std = 0.2 + torch.rand(num, generator=gen, dtype=torch.float64) * 2
    y = std * torch.randn(num, generator=gen, dtype=torch.float64)
    model_std = std * 0.6  # over-confident, heteroscedastic in the right direction
    pred = bayesdrop.RegressionPrediction(
        mean=torch.zeros(num, dtype=torch.float64),
        epistemic_variance=0.5 * model_std**2,
        aleatoric_variance=0.5 * model_std**2,
        total_variance=model_std**2,
        num_samples=10,
    )
    return pred, y


def _part(pred, index):
    import dataclasses

    return dataclasses.replace(
        pred,
        mean=pred.mean[index],
        epistemic_variance=pred.epistemic_variance[index],
        aleatoric_variance=pred.aleatoric_variance[index],
        total_variance=pred.total_variance[index],
    )


@pytest.mark.parametrize("score", ["normalized", "residual"])
def test_regression_intervals_cover_at_any_level(score):
    gen = torch.Generator().manual_seed(10)
    pred, y = _regression(20_000, gen)
    cal, test = slice(0, 10_000), slice(10_000, None)
    cp = SplitConformalRegressor(score, alpha=0.1).fit(_part(pred, cal), y[cal])
    for alpha in (0.05, 0.1, 0.3):
        lower, upper = cp.predict_intervals(_part(pred, test), alpha=alpha)
        assert abs(interval_coverage(lower, upper, y[test]) - (1 - alpha)) < 0.012
    if score == "normalized":  # 1.645 / 0.6: the over-confidence undone
        assert cp.quantile_.item() == pytest.approx(1.645 / 0.6, rel=0.03)
    # the normalised intervals are narrower for the same coverage (they adapt)
    other = "residual" if score == "normalized" else "normalized"
    a = conformal_intervals(_part(pred, cal), y[cal], _part(pred, test), score=score)
    b = conformal_intervals(_part(pred, cal), y[cal], _part(pred, test), score=other)
    if score == "normalized":
        assert mean_interval_width(*a) < mean_interval_width(*b)


def test_regression_from_mc_samples_and_multi_output():
    gen = torch.Generator().manual_seed(11)
    samples = torch.randn(30, 400, 2, generator=gen, dtype=torch.float64)
    pred = bayesdrop.RegressionPrediction.from_samples(samples, tau=2.0)
    y = torch.randn(400, 2, generator=gen, dtype=torch.float64) * 1.2
    cp = SplitConformalRegressor().fit(pred, y)
    assert cp.calibration_scores_.shape == (800,)
    lower, upper = cp.predict_intervals(pred)
    assert lower.shape == (400, 2)
    torch.testing.assert_close((upper - lower) / 2, cp.quantile_ * pred.total_variance.sqrt())


# ---------------------------------------------------------------- distributed (gloo)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    gloo.init(rank, world, init_file)
    try:
        gen = torch.Generator().manual_seed(12)
        probs, target = synthetic(1003, gen)
        cuts = [0, 217, 1003] if world == 2 else [0, 1003]  # uneven shards
        mine = slice(cuts[rank], cuts[rank + 1])
        out = {}
        for mondrian in (False, True):
            cp = SplitConformalClassifier("aps", randomized=False, mondrian=mondrian)
            cp.fit(probs[mine], target[mine], sharded=True)
            out[f"q{mondrian}"] = cp.quantile_
        pred, y = _regression(1003, gen)
        reg = SplitConformalRegressor().fit(_part(pred, mine), y[mine], sharded=True)
        out["reg"] = reg.quantile_
        out["gathered"] = gather_scores(torch.arange(cuts[rank], cuts[rank + 1]).double())
    except Exception:
        out = {"error": traceback.format_exc()}
    finally:
        dist.destroy_process_group()
    torch.save(out, f"{out_dir}/rank{rank}.pt")


@pytest.mark.parametrize("world", [1, 2])
def test_sharded_quantile_equals_one_process(world, tmp_path):
    gloo.spawn(_worker, world, tmp_path, timeout=120)
    gen = torch.Generator().manual_seed(12)
    probs, target = synthetic(1003, gen)
    pred, y = _regression(1003, gen)
    for r in range(world):
        out = torch.load(tmp_path / f"rank{r}.pt", weights_only=False)
        assert "error" not in out, out.get("error")
        for mondrian in (False, True):
            one = SplitConformalClassifier("aps", randomized=False, mondrian=mondrian)
            assert torch.equal(out[f"q{mondrian}"], one.fit(probs, target).quantile_)
        assert torch.equal(out["reg"], SplitConformalRegressor().fit(pred, y).quantile_)
        assert torch.equal(out["gathered"], torch.arange(1003).double())


def test_gather_outside_a_job_is_the_identity():
    scores = torch.rand(5)
    assert gather_scores(scores) is scores


# ---------------------------------------------------------------- bad input


def test_bad_input():
    probs, target = synthetic(50, torch.Generator().manual_seed(13))
    for alpha in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(
            ValueError, match=r"Expected `alpha` to be a miscoverage level in \(0, 1\)"
        ):
            SplitConformalClassifier(alpha=alpha)
    with pytest.raises(TypeError, match="Expected `alpha` to be a real number"):
        SplitConformalClassifier(alpha="0.1")
    cp = SplitConformalClassifier()
    with pytest.raises(ValueError, match=r"labels in \[0, 4\], but got labels in \[0, 5\]"):
        cp.fit(probs, torch.cat([target[:-1], torch.tensor([5])]))
    with pytest.raises(ValueError, match=r"labels in \[0, 4\].*ignore_index"):
        cp.fit(probs, torch.cat([target[:-1], torch.tensor([-100])]))
    with pytest.raises(TypeError, match="integer class labels"):
        cp.fit(probs, target.double())
    with pytest.raises(ValueError, match=r"Expected `target` to be of shape \(50,\)"):
        cp.fit(probs, target[:10])
    with pytest.raises(ValueError, match="Expected `x` to be probabilities"):
        cp.fit(probs.log(), target)
    with pytest.raises(ValueError, match="rows sum to 1"):
        cp.fit(probs * 0.5, target)
    with pytest.raises(ValueError, match="finite"):
        cp.fit(torch.full((50, C), float("nan")), target)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., C\) with C >= 2"):
        cp.fit(probs[:, 0], target)
    with pytest.raises(
        ValueError, match="Expected `target` to be integer class labels of the calibration"
    ):
        cp.fit(probs, None)
    with pytest.raises(ValueError, match="Call fit first"):
        SplitConformalClassifier().predict_sets(probs)
    cp.fit(probs, target)
    with pytest.raises(ValueError, match="over the 5 classes"):
        cp.predict_sets(probs[:, :3] / probs[:, :3].sum(-1, keepdim=True))
    with pytest.raises(ValueError, match="Expected `score` to be one of 'lac', 'aps'"):
        SplitConformalClassifier("thr")
    with pytest.raises(ValueError, match="Expected `lam` to be non-negative"):
        SplitConformalClassifier("raps", lam=-1).fit(probs, target)
    with pytest.raises(ValueError, match="Expected `k_reg` to be a non-negative integer"):
        SplitConformalClassifier("raps", k_reg=-1)
    with pytest.raises(TypeError, match='ClassificationPrediction for score="mi"'):
        SplitConformalClassifier("mi").fit(probs, target)
    pred = bayesdrop.ClassificationPrediction.from_samples(probs[None].expand(3, -1, -1))
    with pytest.raises(TypeError, match="return_samples=True"):
        import dataclasses

        SplitConformalClassifier("spread").fit(dataclasses.replace(pred, samples=None), target)
    with pytest.raises(
        ValueError, match=r"at least .* = 1 points of every class .* but got class 4: n = 0"
    ):
        labels = target.clone()
        labels[labels == 4] = 3
        SplitConformalClassifier(alpha=0.5, mondrian=True).fit(probs, labels)


def test_wrong_task():
    reg, y = _regression(50, torch.Generator().manual_seed(14))
    probs, target = synthetic(50, torch.Generator().manual_seed(14))
    with pytest.raises(
        TypeError,
        match=r"Expected `x` to be a ClassificationPrediction or probabilities.*Regression",
    ):
        SplitConformalClassifier().fit(reg, target)
    cls = bayesdrop.ClassificationPrediction.from_samples(probs[None])
    with pytest.raises(
        TypeError, match=r"Expected `pred` to be a RegressionPrediction.*ClassificationPrediction"
    ):
        SplitConformalRegressor().fit(cls, y)
    with pytest.raises(ValueError, match="Expected `target` to be shaped like the mean"):
        SplitConformalRegressor().fit(reg, y[:10])
    zero = _part(reg, slice(None))
    import dataclasses

    zero = dataclasses.replace(zero, total_variance=torch.zeros(50, dtype=torch.float64))
    with pytest.raises(ValueError, match='score="residual"'):
        SplitConformalRegressor().fit(zero, y)
    SplitConformalRegressor("residual").fit(zero, y)  # no variance needed
    with pytest.raises(ValueError, match="Expected `score` to be one of 'normalized', 'residual'"):
        SplitConformalRegressor("cqr")
    with pytest.raises(ValueError, match="n = 5"):
        SplitConformalRegressor(alpha=0.1).fit(_part(reg, slice(0, 5)), y[:5])
    with pytest.raises(ValueError, match="Expected `upper` to be at least lower"):
        mean_interval_width(torch.ones(3), torch.zeros(3))
    with pytest.raises(TypeError, match="boolean"):
        coverage(torch.ones(3, 2), torch.zeros(3).long())
