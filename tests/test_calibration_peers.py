"""Peer cross-check: bayesdrop against netcal, torchmetrics, scikit-learn and uncertainty-toolbox
on random Dirichlet predictions, N in {1, 7, 1000, 10^6}, C in {2, 10, 1000}, four dtypes.

The legitimate convention differences (docs/theory/calibration.rst) are handled here, not hidden:
netcal reads two-class input as the binary calibration of p(y = 1), so two classes are checked
against a NumPy top-label reference instead; torchmetrics sums in float32 (a looser tolerance);
half-precision inputs are compared with references computed on the same values in float64.
N x C is capped at 10^7 entries (10^6 x 1000 would need 4 GB).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesdrop.calibration import (
    classification_metrics,
    gaussian_crps,
    gaussian_negative_log_likelihood,
    picp,
    quantile_calibration_error,
)

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def dirichlet(n: int, c: int, dtype: torch.dtype, seed: int = 0):
    gen = np.random.default_rng(seed)
    probs = gen.dirichlet(np.full(c, 0.3), size=n)
    target = (
        np.array([gen.choice(c, p=p) for p in probs])
        if n < 5000
        else ((probs.cumsum(1) < gen.random((n, 1))).sum(1).clip(max=c - 1))
    )
    p = torch.from_numpy(probs).to(dtype)
    return p, torch.from_numpy(target)


def numpy_reference(p64: np.ndarray, y: np.ndarray, num_bins: int) -> dict[str, float]:
    """Top-label ECE / MCE (numpy.digitize on linspace edges), Brier, NLL, accuracy in float64."""
    conf, pred = p64.max(1), p64.argmax(1)
    index = np.clip(np.digitize(conf, np.linspace(0, 1, num_bins + 1)) - 1, 0, num_bins - 1)
    gaps, weights = [], []
    for b in range(num_bins):
        inside = index == b
        if inside.any():
            gaps.append(abs((pred[inside] == y[inside]).mean() - conf[inside].mean()))
            weights.append(inside.mean())
    onehot = np.eye(p64.shape[1])[y]
    p_true = np.maximum(p64[np.arange(len(y)), y], np.finfo(np.float32).tiny)
    return {
        "ece": float(np.dot(gaps, weights)),
        "mce": float(max(gaps)),
        "brier": float(((p64 - onehot) ** 2).sum(1).mean()),
        "nll": float(-np.log(p_true).mean()),
        "accuracy": float((pred == y).mean()),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("c", [2, 10, 1000])
@pytest.mark.parametrize("n", [1, 7, 1000, 1_000_000])
def test_classification_against_peers(n, c, dtype):
    if n * c > 10_000_000:
        pytest.skip("N x C above 10^7 entries")
    probs, target = dirichlet(n, c, dtype)
    if dtype in (torch.float16, torch.bfloat16):
        # half-precision Dirichlet rows can miss 1 by more than the dtype allows: renormalise
        probs = (probs.double() / probs.double().sum(1, keepdim=True)).to(dtype)
    p64, y = probs.double().numpy(), target.numpy()
    ours = classification_metrics(probs, target, num_bins=15)
    ref = numpy_reference(p64, y, 15)
    # float64 in, float64 sums; lower precisions are summed in float64 from float32 per-row values
    rel = 1e-9 if dtype == torch.float64 else 1e-6
    for key in ("ece", "mce", "brier", "nll", "accuracy"):
        assert getattr(ours, key) == pytest.approx(ref[key], rel=rel, abs=1e-9), key
    if dtype == torch.float64 and c > 2 and n >= 1000:
        from netcal.metrics import ECE, MCE

        assert ours.ece == pytest.approx(ECE(bins=15).measure(p64, y), abs=1e-9)
        assert ours.mce == pytest.approx(MCE(bins=15).measure(p64, y), abs=1e-9)
    if dtype == torch.float64 and n > 1:
        from sklearn.metrics import log_loss

        labels = np.arange(c)
        assert ours.nll == pytest.approx(log_loss(y, p64, labels=labels), rel=1e-9)
    if dtype == torch.float32 and n >= 1000:
        from torchmetrics.functional.classification import multiclass_calibration_error

        tm = multiclass_calibration_error(probs, target, num_classes=c, n_bins=15).item()
        # torchmetrics sums the bins in float32: 2.6e-4 off at N = 10^6, C = 2 (ours equals the
        # float64 reference above)
        assert ours.ece == pytest.approx(tm, abs=1e-4 if n <= 1000 else 1e-3)


@pytest.mark.parametrize("n", [7, 1000, 100_000])
def test_regression_against_uncertainty_toolbox(n):
    uct = pytest.importorskip("uncertainty_toolbox")
    gen = np.random.default_rng(n)
    mean = gen.normal(size=n)
    std = 0.5 + gen.random(n)
    y = mean + 1.3 * std * gen.normal(size=n)
    m, s, t = (torch.from_numpy(v) for v in (mean, std, y))
    assert gaussian_crps(m, s, t).item() == pytest.approx(uct.crps_gaussian(mean, std, y), rel=1e-9)
    assert gaussian_negative_log_likelihood(m, s, t).item() == pytest.approx(
        uct.nll_gaussian(mean, std, y), rel=1e-9
    )
    for q in (0.5, 0.9, 0.95):
        ours = picp(m, s, t, level=q).item()
        theirs = uct.get_proportion_in_interval(mean, std, y, quantile=q)
        assert ours == pytest.approx(theirs, abs=1e-12)
    # uncertainty-toolbox's MACE averages over linspace(0, 1, 100), endpoints included, where
    # the gap is 0 by construction; ours takes levels strictly inside (0, 1)
    levels = np.linspace(0, 1, 100)[1:-1]
    ours = quantile_calibration_error(m, s, t, levels=levels).item() * 98 / 100
    theirs = uct.mean_absolute_calibration_error(mean, std, y, num_bins=100, prop_type="interval")
    assert ours == pytest.approx(theirs, abs=1e-12)
