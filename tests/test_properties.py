"""Property tests: the public calibration, objective and active-learning functions either return
a correct value or raise a bayesdrop error, never another exception, never NaN from finite input.

Two parts:

* a declared table of every front door's parameter constraints (as scikit-learn's
  ``_parameter_constraints``), from which the bad values of each parameter are generated: a new
  argument declared here gets its bad-input tests for free;
* hypothesis strategies over data (dtypes float16/32/64, bool, uint8/16/32/64, int; shapes, empty,
  NaN/inf, huge and tiny values), checked against brute-force float64 references where cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

import bayesdrop
from bayesdrop import active
from bayesdrop import calibration as cal
from bayesdrop.calibration._binning import MAX_BINS
from bayesdrop.exceptions import BayesdropError

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def outcome(call: Callable[[], Any]) -> Any:
    """The value of ``call()``, or None when it raised a bayesdrop error in the one template.

    Any other exception (a raw torch, numpy, netcal or matplotlib error) fails the test.
    """
    try:
        return call()
    except BayesdropError as error:
        assert isinstance(error, (ValueError, TypeError))
        assert str(error).startswith("Expected `"), str(error)
        return None


def no_nan(value: Any) -> None:
    if isinstance(value, torch.Tensor):
        assert not bool(torch.isnan(value).any()), value
    elif isinstance(value, float):
        assert not math.isnan(value)


# --------------------------------------------------------------------------------------------
# Declared parameter constraints of the front doors, and the bad values they generate
# --------------------------------------------------------------------------------------------

_NOT_NUMBERS = ["3", None, [1], object()]
BAD_VALUES: dict[str, list[Any]] = {
    "positive_int": [0, -1, 2.5, True, float("nan"), *_NOT_NUMBERS],
    "bins": [0, -3, 1.5, False, MAX_BINS + 1, 10**12, float("inf"), *_NOT_NUMBERS],
    "count": [0, -2, 0.5, 1e-3, True, float("nan"), float("inf"), *_NOT_NUMBERS],
    "positive_real": [0.0, -1.0, float("nan"), float("inf"), True, *_NOT_NUMBERS],
    "nonneg_real": [-1e-9, -1.0, float("nan"), float("-inf"), *_NOT_NUMBERS],
    "open_probability": [0.0, 1.0, -0.5, 1.5, float("nan"), "0.5", None],
    "integer": [1.5, "1", None, True],
}


def choice(*allowed: str) -> list[Any]:
    """Bad values of a Literal option: unknown, wrong case, wrong type."""
    return ["not-an-option", allowed[0].upper() + "X", 1, None]


PROBS = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
TARGET = torch.tensor([0, 1, 1, 0])
MEAN, STD, Y = torch.zeros(6), torch.ones(6), torch.linspace(-2, 2, 6)
NET = nn.Sequential(bayesdrop.MCDropout(nn.Linear(2, 2), p=0.1))
SCORES = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.0])

#: front door -> (call with keyword arguments, {parameter: constraint or list of bad values})
FRONT_DOORS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "expected_calibration_error": (
        lambda **kw: cal.expected_calibration_error(PROBS, TARGET, **kw),
        {
            "num_bins": "bins",
            "binning": choice("equal_width", "equal_mass"),
            "norm": choice("l1", "l2", "max"),
        },
    ),
    "classwise_calibration_error": (
        lambda **kw: cal.classwise_calibration_error(PROBS, TARGET, **kw),
        {"num_bins": "bins"},
    ),
    "classification_metrics": (
        lambda **kw: cal.classification_metrics(PROBS, TARGET, **kw),
        {"num_bins": "bins"},
    ),
    "bin_statistics": (
        lambda **kw: cal.bin_statistics(PROBS[:, 0], TARGET, **kw),
        {"num_bins": "bins", "binning": choice("equal_width", "equal_mass")},
    ),
    "accuracy_rejection_curve": (
        lambda **kw: cal.accuracy_rejection_curve(PROBS, TARGET, PROBS[:, 1], **kw),
        {"num_rates": "positive_int"},
    ),
    "CalibrationReport.from_predictions": (
        lambda **kw: cal.CalibrationReport.from_predictions(PROBS, TARGET, **kw),
        {
            "num_bins": "bins",
            "uncertainty": choice("predictive_entropy"),
            "layout": ["not-an-option", "PROBS", 1],  # None is its default
        },
    ),
    "ReliabilityDisplay.from_predictions": (
        lambda **kw: cal.ReliabilityDisplay.from_predictions(PROBS, TARGET, **kw),
        {"num_bins": "bins", "binning": choice("equal_width", "equal_mass")},
    ),
    "UncertaintyHistogramDisplay.plot": (
        lambda **kw: cal.UncertaintyHistogramDisplay.from_scores(SCORES).plot(**kw),
        {"num_bins": "bins"},
    ),
    "CalibrationError": (lambda **kw: cal.CalibrationError(**kw), {"num_bins": "bins"}),
    "HistogramBinning": (lambda **kw: cal.HistogramBinning(**kw), {"num_bins": "bins"}),
    "TemperatureScaling": (
        lambda **kw: cal.TemperatureScaling(**kw),
        {"inputs": choice("logits", "probs", "log_probs"), "max_iter": "positive_int"},
    ),
    "picp": (lambda **kw: cal.picp(MEAN, STD, Y, **kw), {"level": "open_probability"}),
    "quantile_calibration_error": (
        lambda **kw: cal.quantile_calibration_error(MEAN, STD, Y, **kw),
        {"levels": [[0.5, 1.0], [0.0], "high", [[0.2, float("nan")]], [-0.1]]},
    ),
    "regression_calibration_curve": (
        lambda **kw: cal.regression_calibration_curve(MEAN, STD, Y, **kw),
        {"num_levels": [1, *BAD_VALUES["positive_int"]]},
    ),
    "expected_normalized_calibration_error": (
        lambda **kw: cal.expected_normalized_calibration_error(MEAN, STD, Y, **kw),
        {"num_bins": "bins"},
    ),
    "RegressionReport.from_predictions": (
        lambda **kw: cal.RegressionReport.from_predictions(MEAN, STD, Y, **kw),
        {"num_bins": "bins"},
    ),
    "ELBO": (
        lambda **kw: bayesdrop.ELBO(**{"num_data": 10, **kw}),
        {
            "num_data": "count",
            "likelihood": choice("categorical", "gaussian", "heteroscedastic"),
            "tau": "positive_real",
            "beta": "nonneg_real",
            "ignore_index": "integer",
        },
    ),
    "top_k": (
        lambda **kw: active.top_k(SCORES, **{"k": 2, **kw}),
        {"k": [6, *BAD_VALUES["positive_int"]]},
    ),
    "stochastic_batch": (
        lambda **kw: active.stochastic_batch(SCORES, **{"k": 2, "seed": 0, **kw}),
        {
            "k": [6, *BAD_VALUES["positive_int"]],
            "mode": choice("power", "softmax", "softrank"),
            "temperature": "positive_real",
        },
    ),
    "ActiveSplit": (
        lambda **kw: active.ActiveSplit(**{"num_points": 5, **kw}),
        {
            "num_points": "positive_int",
            "labelled": [[0.5], [-1], [5], [1, 1], [True], "ab", torch.tensor([2.0])],
        },
    ),
}


def _bad_cases() -> list[Any]:
    cases = []
    for door, (_, params) in FRONT_DOORS.items():
        for param, constraint in params.items():
            bad = BAD_VALUES[constraint] if isinstance(constraint, str) else constraint
            for i, value in enumerate(bad):
                cases.append(pytest.param(door, param, value, id=f"{door}-{param}-{i}"))
    return cases


@pytest.mark.parametrize("door,param,value", _bad_cases())
def test_declared_bad_values_raise_bayesdrop_errors_naming_the_parameter(door, param, value):
    call, _ = FRONT_DOORS[door]
    with pytest.raises(BayesdropError, match=rf"^Expected `[^`]*{param}[^`]*` to be "):
        call(**{param: value})


@pytest.mark.parametrize("door", list(FRONT_DOORS))
def test_front_doors_accept_their_defaults(door):
    """The declared calls are valid as they stand: every failure above is the bad value's."""
    assert FRONT_DOORS[door][0]() is not None


# --------------------------------------------------------------------------------------------
# Generated data
# --------------------------------------------------------------------------------------------

FLOATS = [np.float16, np.float32, np.float64]
LABEL_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
LABEL_DTYPES_ALL = [*LABEL_DTYPES, np.float32, np.bool_, ">i8", ">u4"]


@st.composite
def classification(draw):
    n = draw(st.integers(0, 25))
    c = draw(st.integers(1, 5))
    logits = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-30, 30)))
    probs = np.exp(logits - logits.max(-1, keepdims=True)) if n else logits
    probs = probs / probs.sum(-1, keepdims=True) if n else probs
    probs = probs.astype(draw(st.sampled_from(FLOATS)))
    corruption = draw(st.sampled_from(["none"] * 6 + ["nan", "inf", "negative", "logits", "3d"]))
    if n and corruption == "nan":
        probs[draw(st.integers(0, n - 1)), 0] = np.nan
    elif n and corruption == "inf":
        probs[0, -1] = np.inf
    elif n and corruption == "negative":
        probs[0, 0] = -0.25
    elif corruption == "logits":
        probs = logits.astype(probs.dtype)
    elif corruption == "3d":
        probs = np.stack([probs, probs])
    target = draw(hnp.arrays(np.int64, (n,), elements=st.integers(-1 if n > 3 else 0, c)))
    dtype = draw(st.sampled_from(LABEL_DTYPES_ALL))
    if np.dtype(dtype).kind == "u":
        target = np.abs(target)
    target = target.astype(dtype)
    as_torch = draw(st.booleans()) and np.dtype(dtype).isnative
    if as_torch:
        return torch.from_numpy(probs.copy()), torch.from_numpy(target.copy())
    return probs, target


def _reference_ece(conf: np.ndarray, correct: np.ndarray, num_bins: int) -> float:
    """Top-label ECE with exact equal-width bins (``Fraction``), in float64."""
    total = 0.0
    bins: dict[int, list[tuple[float, float]]] = {}
    for x, hit in zip(conf.tolist(), correct.tolist(), strict=True):
        b = min(math.floor(Fraction(x) * num_bins), num_bins - 1)
        bins.setdefault(b, []).append((x, float(hit)))
    for members in bins.values():
        gap = abs(math.fsum(h for _, h in members) - math.fsum(x for x, _ in members))
        total += gap
    return total / len(conf)


@SETTINGS
@given(classification(), st.integers(1, 20))
def test_classification_metrics_are_right_or_refuse(data, num_bins):
    probs, target = data
    metrics = outcome(lambda: cal.classification_metrics(probs, target, num_bins=num_bins))
    ece = outcome(lambda: cal.expected_calibration_error(probs, target, num_bins=num_bins))
    mass = outcome(
        lambda: cal.expected_calibration_error(probs, target, binning="equal_mass", norm="max")
    )
    cw = outcome(lambda: cal.classwise_calibration_error(probs, target, num_bins=num_bins))
    assert (metrics is None) == (ece is None) == (cw is None)
    if metrics is None:
        return
    assert mass is not None and 0.0 <= mass.item() <= 1.0
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(target).astype(np.int64)
    if p.ndim == 3:
        p = np.asarray(torch.as_tensor(np.asarray(probs)).mean(0).double())
    assert np.all(np.isfinite(p)) and p.min() >= 0 and p.shape[1] >= 2
    pred = p.argmax(-1)
    correct = pred == y
    assert metrics.accuracy == pytest.approx(correct.mean(), abs=1e-12)
    onehot = np.eye(p.shape[1])[y]
    assert metrics.brier == pytest.approx(((p - onehot) ** 2).sum(-1).mean(), rel=1e-6, abs=1e-9)
    dtype = np.asarray(probs).dtype  # half precision is computed in float32
    tiny = np.finfo(np.float32 if dtype == np.float16 else dtype).tiny
    p_true = np.maximum(p[np.arange(len(y)), y], tiny)
    assert metrics.nll == pytest.approx(-np.log(p_true).mean(), rel=1e-5, abs=1e-6)
    if np.asarray(probs).ndim == 2:  # the exact bins of the given (not averaged) values
        conf_exact = np.asarray(probs).astype(np.float64).max(-1)  # exact for every dtype
        want = _reference_ece(conf_exact, correct, num_bins)
        assert metrics.ece == pytest.approx(want, abs=1e-9)
    assert ece.item() == pytest.approx(metrics.ece, abs=1e-12)
    for value in (ece, cw, mass):
        no_nan(value)
        assert 0.0 <= value.item() <= 1.0


@st.composite
def gaussian(draw):
    n = draw(st.integers(0, 30))
    scale = draw(st.sampled_from([1.0, 1e-200, 1e200, 1e-30, 1e30, 1e4]))
    dtypes = [draw(st.sampled_from(FLOATS)) for _ in range(3)]
    mean = draw(hnp.arrays(np.float64, (n,), elements=st.floats(-3, 3))) * scale
    std = draw(hnp.arrays(np.float64, (n,), elements=st.floats(1e-3, 3))) * scale
    y = draw(hnp.arrays(np.float64, (n,), elements=st.floats(-5, 5))) * scale
    with np.errstate(over="ignore", under="ignore"):  # 1e200 is inf in float16: refused
        arrays = [a.astype(d) for a, d in zip((mean, std, y), dtypes, strict=True)]
    corruption = draw(st.sampled_from(["none"] * 6 + ["zero_std", "nan", "shape", "int"]))
    if n and corruption == "zero_std":
        arrays[1][0] = 0
    elif n and corruption == "nan":
        arrays[2][-1] = np.nan
    elif corruption == "shape":
        arrays[2] = arrays[2][:, None]
    elif corruption == "int":
        with np.errstate(invalid="ignore"):
            arrays[0] = arrays[0].astype(np.int64)
    return [torch.from_numpy(a) for a in arrays]


def _reference_ence(mean, std, y, num_bins: int) -> float:
    """ENCE from exact sums of squares (``Fraction``): no overflow, no underflow."""
    lo, hi = std.min(), std.max()
    edges = lo + (hi - lo) * (np.arange(1, num_bins, dtype=np.float64) / num_bins)
    index = np.searchsorted(edges, std, side="right")
    gaps = []
    for b in np.unique(index):
        members = index == b
        var = sum(Fraction(float(s)) ** 2 for s in std[members])
        err = sum(
            (Fraction(float(t)) - Fraction(float(m))) ** 2
            for t, m in zip(y[members], mean[members], strict=True)
        )
        gaps.append(abs(1 - math.sqrt(float(err / var))))
    return float(np.mean(gaps))


@SETTINGS
@given(gaussian(), st.integers(1, 8))
def test_regression_metrics_are_right_or_refuse(data, num_bins):
    mean, std, y = data
    nll = outcome(lambda: cal.gaussian_negative_log_likelihood(mean, std, y))
    crps = outcome(lambda: cal.gaussian_crps(mean, std, y))
    ence = outcome(
        lambda: cal.expected_normalized_calibration_error(mean, std, y, num_bins=num_bins)
    )
    qce = outcome(lambda: cal.quantile_calibration_error(mean, std, y))
    cover = outcome(lambda: cal.picp(mean, std, y, level=0.9))
    curve = outcome(lambda: cal.regression_calibration_curve(mean, std, y, num_levels=5))
    results = (nll, crps, ence, qce, cover, curve)
    assert all(r is None for r in results) or all(r is not None for r in results)
    if nll is None:
        return
    m, s, t = (np.asarray(v, dtype=np.float64) for v in (mean, std, y))
    z = (t - m) / s
    with np.errstate(over="ignore"):
        want_nll = (0.5 * math.log(2 * math.pi) + np.log(s) + 0.5 * z**2).mean()
    assert nll.item() == pytest.approx(want_nll, rel=1e-9)  # inf only where the answer is
    for value in (crps, ence, qce, cover):
        no_nan(value)
        assert value.item() >= 0
    assert crps.item() <= np.abs(t - m).max() + s.max()  # CRPS <= E|X - y| <= |mu - y| + sigma
    assert 0 <= qce.item() <= 1 and 0 <= cover.item() <= 1
    assert curve.observed[0] == 0 and curve.observed[-1] == 1
    assert bool((curve.observed.diff() >= 0).all())
    want_ence = _reference_ence(m, s, t, num_bins)
    assert ence.item() == pytest.approx(want_ence, rel=1e-9, abs=1e-12)


@SETTINGS
@given(
    st.sampled_from(FLOATS),
    st.sampled_from(FLOATS),
    hnp.arrays(np.float64, st.integers(0, 12), elements=st.floats(-1e4, 1e4)),
    hnp.arrays(np.float64, st.integers(0, 12), elements=st.floats(-1e4, 1e4)),
)
def test_ood_detection_matches_pairwise_auroc(id_dtype, ood_dtype, id_values, ood_values):
    id_scores, ood_scores = id_values.astype(id_dtype), ood_values.astype(ood_dtype)
    result = outcome(
        lambda: cal.ood_detection(torch.from_numpy(id_scores), torch.from_numpy(ood_scores))
    )
    if result is None:
        assert (
            id_scores.size == 0
            or ood_scores.size == 0
            or not (np.isfinite(id_scores).all() and np.isfinite(ood_scores).all())
        )
        return
    a, b = id_scores.astype(np.float64), ood_scores.astype(np.float64)
    pairs = (b[:, None] > a[None, :]).mean() + 0.5 * (b[:, None] == a[None, :]).mean()
    assert result.auroc == pytest.approx(pairs, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Objectives
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(
    st.integers(0, 12),
    st.integers(1, 5),
    st.sampled_from([torch.float16, torch.float32, torch.float64, torch.int64]),
    st.sampled_from([torch.int64, torch.int32, torch.uint8, torch.float32, torch.bool]),
    st.floats(0.0, 1.0),
    st.sampled_from([1.0, 1e3, 1e30]),
    st.integers(0, 2**32 - 1),
)
def test_categorical_elbo_is_cross_entropy_or_refuses(
    n, c, dtype, label_dtype, ignored, scale, seed
):
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=gen, dtype=torch.float64) * scale).clamp(-6e4, 6e4)
    logits = logits.to(dtype)
    target = torch.randint(0, c + 1, (n,), generator=gen)  # c is out of range
    drop = torch.rand(n, generator=gen) < ignored
    target = torch.where(drop, torch.full_like(target, -100), target)
    if label_dtype != torch.int64:
        target = target.clamp_min(0).to(label_dtype)
    elbo = bayesdrop.ELBO(100)
    nll = outcome(lambda: elbo.nll(logits, target))
    if nll is None:
        return
    assert logits.is_floating_point() and not target.is_floating_point()
    keep = target.long() != -100
    assert bool(keep.any()) and int(target.long()[keep].max()) < c
    want = F.cross_entropy(logits.double(), target.long(), ignore_index=-100)
    no_nan(nll)
    torch.testing.assert_close(
        nll.double(), want, rtol=2e-3 if dtype == torch.float16 else 1e-5, atol=1e-3
    )


@SETTINGS
@given(
    st.integers(1, 6),
    st.integers(1, 3),
    st.sampled_from(["same", "transposed", "squeezed", "unsqueezed", "flat"]),
    st.sampled_from(["gaussian", "heteroscedastic"]),
    st.sampled_from([torch.float16, torch.float32, torch.float64]),
    st.integers(0, 2**32 - 1),
)
def test_gaussian_elbo_shapes(n, d, layout, likelihood, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    out = torch.randn(n, d, generator=gen, dtype=torch.float64).to(dtype)
    log_var = torch.randn(n, d, generator=gen, dtype=torch.float64).to(dtype)
    y = torch.randn(n, d, generator=gen, dtype=torch.float64)
    target = {
        "same": y,
        "transposed": y.T,
        "squeezed": y[:, 0] if d == 1 else y.reshape(-1),
        "unsqueezed": y[..., None],
        "flat": y.reshape(-1),
    }[layout]
    elbo = bayesdrop.ELBO(10, likelihood=likelihood, tau=2.0)
    output = out if likelihood == "gaussian" else (out, log_var)
    nll = outcome(lambda: elbo.nll(output, target))
    allowed = target.shape == y.shape or (d == 1 and target.numel() == n and target.dim() == 1)
    allowed = allowed or target.shape == (n, d, 1)
    assert (nll is not None) == allowed, (layout, tuple(target.shape))
    if nll is None:
        return
    mean, sd = (
        out.double(),
        (2.0**-0.5 if likelihood == "gaussian" else (0.5 * log_var.double()).exp()),
    )
    ref = -torch.distributions.Normal(mean, sd).log_prob(target.reshape(n, d)).sum(-1).mean()
    rtol = 3e-3 if dtype == torch.float16 else 1e-5  # exp(-s) is computed in the output's dtype
    torch.testing.assert_close(nll.double(), ref, rtol=rtol, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Active learning
# --------------------------------------------------------------------------------------------

SCORE_VALUES = st.one_of(
    st.floats(0, 10),
    st.just(0.0),
    st.just(float("-inf")),
    st.just(float("inf")),
    st.just(float("nan")),
    st.floats(-5, 0),
    st.just(1e300),
)


@SETTINGS
@given(
    st.lists(SCORE_VALUES, min_size=0, max_size=15),
    st.integers(-1, 17),
    st.sampled_from(["top_k", "power", "softmax", "softrank"]),
    st.sampled_from([torch.float16, torch.float32, torch.float64, torch.int64, torch.bool]),
    st.sampled_from([1e-300, 0.1, 1.0, 1e300]),
)
def test_batch_acquisition_is_a_valid_batch_or_refuses(values, k, mode, dtype, temperature):
    scores = (
        torch.tensor(values, dtype=torch.float64).to(dtype)
        if values
        else torch.zeros(0, dtype=dtype)
    )
    if mode == "top_k":
        chosen = outcome(lambda: active.top_k(scores, k, seed=0))
    else:
        chosen = outcome(
            lambda: active.stochastic_batch(scores, k, mode=mode, temperature=temperature, seed=0)
        )
    if chosen is None:
        return
    idx = chosen.indices
    assert scores.is_floating_point() and 1 <= k <= len(values)
    assert not bool(torch.isnan(scores).any())
    assert len(idx) == k and len(set(idx.tolist())) == k
    assert all(0 <= i < len(values) for i in idx.tolist())
    s = scores.double()
    if mode == "top_k":
        assert sorted(s[idx].tolist(), reverse=True) == sorted(s.tolist(), reverse=True)[:k]
        return
    weighted = {
        "power": s > 0,
        "softmax": s > float("-inf"),
        "softrank": torch.ones_like(s, dtype=torch.bool),
    }[mode]
    num_weighted = int(weighted.sum())
    first = idx[: min(k, num_weighted)]
    assert bool(weighted[first].all())  # weighted points come before the weightless ones
    if temperature == 1e-300 and mode in ("softmax", "power"):  # the top-k limit
        top = sorted(s[weighted].tolist(), reverse=True)[: len(first)]
        assert sorted(s[first].tolist(), reverse=True) == top


@SETTINGS
@given(
    st.integers(1, 10),
    st.lists(st.one_of(st.integers(-3, 12), st.floats(-2, 12), st.booleans()), max_size=6),
    st.sampled_from(["list", "tensor", "numpy_u16", "numpy_be"]),
)
def test_active_split_labels_exactly_the_valid_indices(num_points, indices, kind):
    split = active.ActiveSplit(num_points)
    if kind == "tensor":
        value = (
            outcome(lambda: torch.tensor(indices)) if indices else torch.zeros(0, dtype=torch.long)
        )
    elif kind.startswith("numpy") and all(type(i) is int and i >= 0 for i in indices):
        value = np.array(indices, dtype=np.uint16 if kind == "numpy_u16" else ">i8")
    else:
        value = indices
    if value is None:
        return
    labelled = outcome(lambda: split.label(value))
    if isinstance(value, torch.Tensor):  # torch.tensor([0, True]) is already int64 [0, 1]
        integer = not (value.is_floating_point() or value.dtype == torch.bool) or not len(value)
        items = value.tolist()
    else:
        integer, items = all(type(i) is int for i in indices), indices
    valid = integer and all(0 <= i < num_points for i in items) and len(set(items)) == len(items)
    assert (labelled is not None) == valid, (indices, kind)
    if labelled is not None:
        assert labelled.tolist() == [int(i) for i in items]
        assert split.num_labelled == len(indices)
    else:
        assert split.num_labelled == 0  # a refused call labels nothing
