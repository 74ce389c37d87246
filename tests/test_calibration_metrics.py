"""Calibration metrics against netcal, torchmetrics, scikit-learn and closed forms.

Every test runs twice: on PyTorch's kernels and on the fused one-pass kernel (numba), which
``BAYESDROP_FUSED=always`` forces even for these small inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from netcal.metrics import ECE, MCE
from sklearn.metrics import brier_score_loss, log_loss
from torchmetrics.functional.classification import multiclass_calibration_error

import bayesdrop
import bayesdrop.calibration as cal
from bayesdrop.calibration import (
    PROBS_SUM_ATOL,
    accuracy,
    bin_statistics,
    brier_score,
    classification_metrics,
    classwise_calibration_error,
    equal_mass_edges,
    expected_calibration_error,
    negative_log_likelihood,
)
from bayesdrop.exceptions import BayesdropTypeError, BayesdropValueError

pytestmark = pytest.mark.usefixtures("metric_path")


def random_predictions(
    seed: int, n: int = 2000, c: int = 5, scale: float = 3.0, dtype=torch.float64
):
    gen = torch.Generator().manual_seed(seed)
    probs = (scale * torch.randn(n, c, generator=gen, dtype=dtype)).softmax(-1)
    # labels from a tempered version: under-confident below 0.7, over-confident above, so the
    # bin gaps change sign and the binning matters
    power = torch.where(probs.amax(-1, keepdim=True) < 0.7, 2.0, 0.5).to(dtype)
    target = torch.distributions.Categorical(probs=probs.pow(power)).sample()
    return probs, target


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_bins", [10, 15])
def test_ece_mce_equal_netcal(seed, num_bins):
    torch.manual_seed(seed)
    probs, target = random_predictions(seed)
    p, y = probs.numpy(), target.numpy()
    ece = expected_calibration_error(probs, target, num_bins=num_bins).item()
    mce = expected_calibration_error(probs, target, num_bins=num_bins, norm="max").item()
    assert ece == pytest.approx(ECE(bins=num_bins).measure(p, y), abs=1e-6)
    assert mce == pytest.approx(MCE(bins=num_bins).measure(p, y), abs=1e-6)
    assert 0.01 < ece < 0.5  # a non-trivial value, so the comparison has teeth


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_mass_ece_equals_netcal(seed):
    torch.manual_seed(seed)
    probs, target = random_predictions(seed, n=1001)
    ours = expected_calibration_error(probs, target, num_bins=10, binning="equal_mass").item()
    netcal = ECE(bins=10, equal_intervals=False).measure(probs.numpy(), target.numpy())
    assert ours == pytest.approx(netcal, abs=1e-6)
    assert ours != pytest.approx(expected_calibration_error(probs, target, num_bins=10).item())


def test_equal_mass_edges_are_numpy_quantiles():
    x = torch.rand(777, dtype=torch.float64)
    edges = equal_mass_edges(x, 7)
    expected = np.quantile(x.numpy(), np.linspace(0, 1, 8))
    expected[0], expected[-1] = 0.0, 1.0
    np.testing.assert_allclose(edges.numpy(), expected, rtol=0, atol=1e-15)
    counts = bin_statistics(x, torch.ones(777), num_bins=7, binning="equal_mass").counts
    assert counts.min() >= 110 and counts.max() <= 112


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_matches_torchmetrics_without_confidence_one(norm):
    probs, target = random_predictions(3, dtype=torch.float32)
    ours = expected_calibration_error(probs, target, num_bins=15, norm=norm).item()
    theirs = multiclass_calibration_error(probs, target, num_classes=5, n_bins=15, norm=norm).item()
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_confidence_exactly_one_goes_to_last_bin():
    """A confidence of exactly 1.0 lies in the last bin (closed on the right), as in netcal.

    torchmetrics puts it in an extra bin of its own, which changes the numbers whenever the last
    bin holds other points: here the last bin [0.9, 1] holds a wrong 1.0 and a right 0.91.
    """
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.91, 0.09, 0.0], [0.5, 0.3, 0.2], [0.2, 0.5, 0.3]])
    target = torch.tensor([1, 0, 0, 2])
    stats = bin_statistics(probs.amax(-1), torch.tensor([0, 1, 1, 0]), num_bins=10)
    assert stats.counts.tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]  # 0.5 opens the bin [0.5, 0.6)
    # ours: last bin acc 1/2, conf 0.955; bin [0.5, 0.6): acc 1/2, conf 0.5
    ours = expected_calibration_error(probs, target, num_bins=10).item()
    assert ours == pytest.approx((2 / 4) * abs(0.5 - 0.955), abs=1e-7)
    netcal = ECE(bins=10).measure(probs.double().numpy(), target.numpy())
    assert ours == pytest.approx(netcal, abs=1e-6)
    ours_mce = expected_calibration_error(probs, target, num_bins=10, norm="max").item()
    assert ours_mce == pytest.approx(0.455, abs=1e-6)
    # torchmetrics: bins [0.9, 1.0) and {1.0} apart
    theirs = multiclass_calibration_error(probs, target, num_classes=3, n_bins=10).item()
    assert theirs == pytest.approx((1 / 4) * (1.0 - 0.0) + (1 / 4) * (1.0 - 0.91), abs=1e-6)
    theirs_mce = multiclass_calibration_error(probs, target, num_classes=3, n_bins=10, norm="max")
    assert theirs_mce.item() == pytest.approx(1.0)
    assert theirs - ours > 0.04


def test_mc_samples_are_averaged_first():
    samples = torch.rand(7, 300, 4, dtype=torch.float64).softmax(-1)
    target = torch.randint(0, 4, (300,))
    for fn in (expected_calibration_error, brier_score, negative_log_likelihood, accuracy):
        mean = fn(samples.mean(0), target).item()
        assert fn(samples, target, layout="samples").item() == pytest.approx(mean)


def test_a_3d_input_is_never_guessed():
    """Breaking change (issue 25): a 3-D array was averaged as MC samples whatever it held;
    per-token probabilities (4, 50, 3) with a (50,) target gave an ECE of 0.0574 averaged over
    the batch. Every metric, streaming update, display and report now asks for the layout."""
    probs = torch.rand(4, 50, 3, dtype=torch.float64).softmax(-1)
    target = torch.randint(0, 3, (4, 50))
    fronts = [
        lambda **kw: expected_calibration_error(probs, target[0], **kw),
        lambda **kw: brier_score(probs, target[0], **kw),
        lambda **kw: cal.classification_metrics(probs, target[0], **kw),
        lambda **kw: cal.classwise_calibration_error(probs, target[0], **kw),
        lambda **kw: cal.CalibrationError().update(probs, target[0], **kw),
        lambda **kw: cal.ReliabilityDisplay.from_predictions(probs, target[0], **kw),
        lambda **kw: cal.CalibrationReport.from_predictions(probs, target[0], **kw),
        lambda **kw: cal.accuracy_rejection_curve(probs, target[0], target[0].double(), **kw),
    ]
    for front in fronts:
        with pytest.raises(BayesdropValueError, match=r'`layout`.*layout="samples"'):
            front()
    # declared, the same array means two different things, each computed faithfully
    dense = expected_calibration_error(probs, target, layout="probs").item()
    flat = expected_calibration_error(probs.reshape(-1, 3), target.reshape(-1)).item()
    assert dense == pytest.approx(flat)
    mc = expected_calibration_error(probs, target[0], layout="samples").item()
    assert mc == pytest.approx(expected_calibration_error(probs.mean(0), target[0]).item())


def test_every_metric_takes_a_prediction_result_and_ignore_index():
    samples = torch.rand(5, 2, 6, 3, dtype=torch.float64).softmax(-1)
    pred = bayesdrop.ClassificationPrediction.from_samples(samples.reshape(5, 12, 3))
    target = torch.randint(0, 3, (12,))
    target[::4] = -100
    keep = target != -100
    for fn in (expected_calibration_error, brier_score, negative_log_likelihood, accuracy):
        want = fn(pred.probs[keep], target[keep]).item()
        assert fn(pred, target, ignore_index=-100).item() == pytest.approx(want)


def test_permutation_invariance():
    probs, target = random_predictions(4)
    perm = torch.randperm(len(target))
    for norm in ("l1", "l2", "max"):
        a = expected_calibration_error(probs, target, norm=norm)
        b = expected_calibration_error(probs[perm], target[perm], norm=norm)
        assert a.item() == pytest.approx(b.item(), abs=1e-12)
    assert brier_score(probs, target).item() == pytest.approx(
        brier_score(probs[perm], target[perm]).item()
    )


def test_brier_nll_accuracy_equal_sklearn():
    probs, target = random_predictions(5)
    p, y = probs.numpy(), target.numpy()
    labels = list(range(5))
    assert brier_score(probs, target).item() == pytest.approx(
        brier_score_loss(y, p, labels=labels, scale_by_half=False), abs=1e-12
    )
    assert negative_log_likelihood(probs, target).item() == pytest.approx(
        log_loss(y, p, labels=labels), abs=1e-10
    )
    assert accuracy(probs, target).item() == pytest.approx((p.argmax(1) == y).mean())


def test_classification_metrics_equals_single_metrics():
    probs, target = random_predictions(6)
    m = classification_metrics(probs, target, num_bins=12)
    assert m.ece == pytest.approx(expected_calibration_error(probs, target, num_bins=12).item())
    assert m.mce == pytest.approx(
        expected_calibration_error(probs, target, num_bins=12, norm="max").item()
    )
    assert m.brier == pytest.approx(brier_score(probs, target).item())
    assert m.nll == pytest.approx(negative_log_likelihood(probs, target).item())
    assert m.accuracy == pytest.approx(accuracy(probs, target).item())
    assert (m.num_bins, m.num_data) == (12, 2000)


def test_classwise_ece_equals_a_loop():
    probs, target = random_predictions(7, n=500, c=4)
    p, y = probs.numpy(), target.numpy()
    per_class = []
    for c in range(4):
        idx = np.minimum((p[:, c] * 10).astype(int), 9)
        gaps = [
            (idx == b).sum() / len(y) * abs((y[idx == b] == c).mean() - p[idx == b, c].mean())
            for b in range(10)
            if (idx == b).any()
        ]
        per_class.append(sum(gaps))
    ours = classwise_calibration_error(probs, target, num_bins=10).item()
    assert ours == pytest.approx(np.mean(per_class), abs=1e-12)


def test_perfectly_calibrated_predictions_have_small_ece():
    gen = torch.Generator().manual_seed(8)
    probs = (2 * torch.randn(200_000, 3, generator=gen, dtype=torch.float64)).softmax(-1)
    target = torch.distributions.Categorical(probs=probs).sample()
    assert expected_calibration_error(probs, target).item() < 0.01


@st.composite
def predictions(draw):
    n = draw(st.integers(1, 40))
    c = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(0.0, 50.0))
    gen = torch.Generator().manual_seed(seed)
    probs = (scale * torch.randn(n, c, generator=gen, dtype=torch.float64)).softmax(-1)
    return probs, torch.randint(0, c, (n,), generator=gen), draw(st.integers(1, 30))


@settings(max_examples=40, deadline=None)
@given(predictions())
def test_bounds(data):
    probs, target, num_bins = data
    for binning in ("equal_width", "equal_mass"):
        for norm in ("l1", "l2", "max"):
            value = expected_calibration_error(
                probs, target, num_bins=num_bins, binning=binning, norm=norm
            )
            assert 0.0 <= value.item() <= 1.0
    assert 0.0 <= brier_score(probs, target).item() <= 2.0 + 1e-12
    assert 0.0 <= classwise_calibration_error(probs, target, num_bins=num_bins).item() <= 1.0
    assert negative_log_likelihood(probs, target).item() >= 0.0


# ---------------------------------------------------------------------------------------------
# bad input: every error names the argument
# ---------------------------------------------------------------------------------------------
GOOD = torch.tensor([[0.7, 0.3], [0.4, 0.6]])
Y = torch.tensor([0, 1])


@pytest.mark.parametrize(
    ("probs", "target", "kwargs", "error", "match"),
    [
        (
            torch.tensor([[0.7, 0.2], [0.4, 0.6]]),
            Y,
            {},
            BayesdropValueError,
            r"`probs`.*rows sum to 1",
        ),
        (
            torch.tensor([[2.0, -1.0], [0.4, 0.6]]),
            Y,
            {},
            BayesdropValueError,
            r"`probs`.*logits\.softmax",
        ),
        (
            torch.tensor([[float("nan"), 0.3], [0.4, 0.6]]),
            Y,
            {},
            BayesdropValueError,
            r"`probs`.*finite",
        ),
        (
            torch.tensor([[float("inf"), 0.3], [0.4, 0.6]]),
            Y,
            {},
            BayesdropValueError,
            r"`probs`.*finite",
        ),
        (GOOD, torch.tensor([0, 2]), {}, BayesdropValueError, r"`target`.*labels in \[0, 1\]"),
        (GOOD, torch.tensor([-1, 0]), {}, BayesdropValueError, r"`target`.*labels in \[0, 1\]"),
        (GOOD, torch.tensor([0, 1, 1]), {}, BayesdropValueError, r"`target`.*shape \(2,\)"),
        (GOOD, torch.tensor([0.0, 1.0]), {}, BayesdropTypeError, r"`target`.*integer"),
        (
            torch.empty(0, 3),
            torch.empty(0, dtype=torch.long),
            {},
            BayesdropValueError,
            r"`probs`.*non-empty",
        ),
        (GOOD, Y, {"num_bins": 0}, BayesdropValueError, r"`num_bins`.*positive integer"),
        (GOOD, Y, {"norm": "l3"}, BayesdropValueError, r"`norm`.*'l1', 'l2', 'max'"),
        (GOOD, Y, {"binning": "quantile"}, BayesdropValueError, r"`binning`.*'equal_width'"),
        (GOOD[0], Y, {}, BayesdropValueError, r"`probs`.*\(N, C\), \(N, \.\.\., C\)"),
        ([[0.7, 0.3]], Y, {}, BayesdropTypeError, r"`probs`.*a tensor, an array"),
        (torch.tensor([[1, 0], [0, 1]]), Y, {}, BayesdropTypeError, r"`probs`.*floating-point"),
    ],
)
def test_bad_input_raises(probs, target, kwargs, error, match):
    with pytest.raises(error, match=match):
        expected_calibration_error(probs, target, **kwargs)


def test_logits_are_never_softmaxed_silently():
    logits = torch.randn(50, 4)
    with pytest.raises(ValueError, match=r"If these are logits, pass logits\.softmax"):
        brier_score(logits, torch.randint(0, 4, (50,)))
    # logits that happen to lie in [0, 1] are still caught by the row-sum check
    with pytest.raises(ValueError, match=f"within {PROBS_SUM_ATOL:g}"):
        negative_log_likelihood(torch.rand(50, 4), torch.randint(0, 4, (50,)))


def test_numpy_inputs_are_accepted():
    probs, target = random_predictions(9, n=100)
    a = expected_calibration_error(probs.numpy(), target.numpy()).item()
    assert a == pytest.approx(expected_calibration_error(probs, target).item())


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64, ">i8", ">u2", "<i4"])
def test_unsigned_and_big_endian_labels_are_converted(dtype):
    """Valid NumPy labels torch cannot compute with (uint16/32/64, big-endian) give the value of
    int64 labels, not a raw torch error."""
    gen = np.random.default_rng(0)
    probs = torch.tensor(gen.dirichlet(np.ones(3), size=40))
    target = gen.integers(0, 3, 40)
    want = classification_metrics(probs, torch.tensor(target))
    assert classification_metrics(probs, target.astype(dtype)) == want
    assert (
        classification_metrics(
            probs,
            torch.from_numpy(target.astype(np.int64)).to(
                torch.uint16 if dtype == np.uint16 else torch.int64
            ),
        )
        == want
    )
    big_probs = probs.numpy().astype(">f8")
    assert classification_metrics(big_probs, target.astype(dtype)) == want


def test_uint64_labels_above_int64_are_an_error():
    probs = torch.full((2, 2), 0.5)
    with pytest.raises(BayesdropValueError, match="`target` to be values that fit in int64"):
        accuracy(probs, np.array([0, 2**63], dtype=np.uint64))


def test_ood_detection_keeps_the_wider_dtype():
    """float16 in-distribution scores with float64 OOD ones: casting the OOD scores down to
    float16 tied them (AUROC 0.5 where it is 1.0)."""
    from bayesdrop.calibration import ood_detection

    id_scores = torch.tensor([0.1, 0.1], dtype=torch.float16)  # 0.0999756 in float16
    ood_scores = torch.tensor([0.10001, 0.10002], dtype=torch.float64)
    assert ood_detection(id_scores, ood_scores).auroc == 1.0
    assert ood_detection(ood_scores - 0.1, id_scores.double() * 0 + 0.5).auroc == 1.0


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (
            lambda p, y: expected_calibration_error(p, y, num_bins=10**12),
            BayesdropValueError,
            r"`num_bins` to be at most 1048576 bins, but got 1000000000000",
        ),
        (
            lambda p, y: classwise_calibration_error(p, y, num_bins=True),
            BayesdropTypeError,
            "`num_bins` to be an integer, but got True",
        ),
        (
            lambda p, y: accuracy(p, y.double()),
            BayesdropTypeError,
            "`target` to be integer class labels, but got dtype torch.float64",
        ),
        (
            lambda p, y: brier_score(p.long(), y),
            BayesdropTypeError,
            "`probs` to be a floating-point tensor, but got dtype torch.int64",
        ),
        (
            lambda p, y: accuracy(p, np.array(["a"] * 4)),
            BayesdropTypeError,
            "`target` to be a numeric array, but got dtype <U1",
        ),
    ],
)
def test_bad_arguments_are_bayesdrop_errors(call, exc, match):
    probs, target = torch.full((4, 2), 0.5), torch.tensor([0, 1, 1, 0])
    with pytest.raises(exc, match=match):
        call(probs, target)
