"""Regression calibration against netcal's metrics and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from netcal.metrics import ENCE, NLL, PICP, QCE
from scipy import integrate, stats

from bayesdrop.calibration import (
    expected_normalized_calibration_error,
    gaussian_crps,
    gaussian_negative_log_likelihood,
    picp,
    quantile_calibration_error,
    regression_calibration_curve,
)
from bayesdrop.exceptions import BayesdropTypeError, BayesdropValueError


def gaussian_data(seed: int = 0, n: int = 3000):
    """Predicted N(mean, std^2) whose true noise is 1.3x the predicted std for large std."""
    gen = np.random.default_rng(seed)
    mean = gen.normal(size=n)
    std = gen.uniform(0.2, 2.0, size=n)
    true_std = std * np.where(std > 1.0, 1.3, 0.8)
    target = mean + true_std * gen.normal(size=n)
    return mean, std, target


@pytest.mark.parametrize("seed", [0, 1])
def test_picp_equals_netcal(seed):
    mean, std, y = gaussian_data(seed)
    for q in (0.5, 0.9, 0.95):
        ours = picp(
            torch.from_numpy(mean), torch.from_numpy(std), torch.from_numpy(y), level=q
        ).item()
        theirs = PICP(bins=10).measure((mean, std), y, q=q, kind="meanstd").picp
        assert ours == pytest.approx(float(np.squeeze(theirs)), abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_quantile_calibration_error_equals_netcal_marginal_qce(seed):
    mean, std, y = gaussian_data(seed)
    levels = np.linspace(0.05, 0.95, 19)
    ours = quantile_calibration_error(mean, std, y, levels=levels).item()
    theirs = QCE(bins=10, marginal=True).measure(
        (mean, std), y, q=levels, kind="meanstd", reduction="mean"
    )
    assert ours == pytest.approx(float(theirs), abs=1e-6)
    assert ours > 0.01  # the data are miscalibrated on purpose


@pytest.mark.parametrize("num_bins", [5, 10])
def test_ence_equals_netcal(num_bins):
    mean, std, y = gaussian_data(2)
    ours = expected_normalized_calibration_error(mean, std, y, num_bins=num_bins).item()
    theirs = ENCE(bins=num_bins).measure((mean, std), y, kind="meanstd")
    assert ours == pytest.approx(float(theirs), abs=1e-6)


def test_gaussian_nll_equals_netcal_and_scipy():
    mean, std, y = gaussian_data(3)
    ours = gaussian_negative_log_likelihood(mean, std, y).item()
    assert ours == pytest.approx(
        float(NLL().measure((mean, std), y, kind="meanstd", reduction="mean")), abs=1e-6
    )
    assert ours == pytest.approx(-stats.norm.logpdf(y, mean, std).mean(), abs=1e-10)


@pytest.mark.parametrize(("mu", "sigma", "y"), [(0.0, 1.0, 0.0), (1.0, 0.5, 2.3), (-2.0, 3.0, 1.0)])
def test_crps_closed_form_equals_numeric_integral(mu, sigma, y):
    """CRPS(F, y) = integral of (F(x) - 1[x >= y])^2 dx."""

    def integrand(x):
        return (stats.norm.cdf(x, mu, sigma) - (x >= y)) ** 2

    lo, hi = mu - 12 * sigma, mu + 12 * sigma
    numeric = (
        integrate.quad(integrand, lo, y, epsabs=1e-12)[0]
        + integrate.quad(integrand, y, hi, epsabs=1e-12)[0]
    )
    ours = gaussian_crps(torch.tensor([mu]), torch.tensor([sigma]), torch.tensor([y])).item()
    assert ours == pytest.approx(numeric, abs=1e-7)


def test_crps_is_proper_and_shrinks_to_abs_error():
    y = torch.tensor([0.7], dtype=torch.float64)
    tiny = gaussian_crps(
        torch.tensor([0.0], dtype=torch.float64), torch.tensor([1e-8], dtype=torch.float64), y
    )
    assert tiny.item() == pytest.approx(0.7, abs=1e-7)


def test_calibrated_gaussians_lie_on_the_diagonal():
    gen = torch.Generator().manual_seed(0)
    n = 100_000
    mean, std = torch.randn(n, generator=gen), torch.rand(n, generator=gen) + 0.5
    y = mean + std * torch.randn(n, generator=gen)
    curve = regression_calibration_curve(mean, std, y)
    assert curve.error < 0.005
    assert curve.observed[0] == 0 and curve.observed[-1] == 1
    assert quantile_calibration_error(mean, std, y).item() < 0.005
    assert picp(mean, std, y, level=0.95).item() == pytest.approx(0.95, abs=0.005)
    assert expected_normalized_calibration_error(mean, std, y).item() < 0.05


def test_overconfident_curve_is_below_then_above():
    gen = torch.Generator().manual_seed(1)
    mean, std = torch.zeros(20_000), torch.ones(20_000)
    y = 2 * torch.randn(20_000, generator=gen)  # true std is twice the predicted
    curve = regression_calibration_curve(mean, std, y, num_levels=11)
    assert curve.observed[1] > curve.expected[1] and curve.observed[9] < curve.expected[9]
    assert picp(mean, std, y).item() < 0.7


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"std": torch.tensor([1.0, 0.0])}, BayesdropValueError, r"`std`.*positive"),
        ({"std": torch.tensor([1.0, -1.0])}, BayesdropValueError, r"`std`.*positive"),
        ({"std": torch.ones(3)}, BayesdropValueError, r"`std`.*shape of `mean`"),
        ({"target": torch.ones(3)}, BayesdropValueError, r"`target`.*shape of `mean`"),
        ({"target": torch.tensor([1.0, float("nan")])}, BayesdropValueError, r"`target`.*finite"),
        ({"mean": torch.tensor([1, 2])}, BayesdropTypeError, r"`mean`.*floating"),
        ({"mean": torch.empty(0)}, BayesdropValueError, r"`mean`.*non-empty"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = {"mean": torch.zeros(2), "std": torch.ones(2), "target": torch.zeros(2)} | kwargs
    with pytest.raises(error, match=match):
        gaussian_crps(**args)


def test_bad_levels():
    with pytest.raises(BayesdropValueError, match=r"`levels`.*inside \(0, 1\)"):
        picp(torch.zeros(2), torch.ones(2), torch.zeros(2), level=1.0)
    with pytest.raises(BayesdropValueError, match=r"`num_levels`.*at least 2"):
        regression_calibration_curve(torch.zeros(2), torch.ones(2), torch.zeros(2), num_levels=1)


def test_mixed_precision_is_computed_in_float64():
    """A float16 mean with float64 std and target: no cast down (issue 21: inf for 8.2e8)."""
    mean = torch.zeros(2, dtype=torch.float16)
    std = torch.tensor([1e-4, 1.0], dtype=torch.float64)
    target = torch.tensor([7e4, 1.0], dtype=torch.float64)  # 7e4 is inf in float16
    ref = float(-stats.norm(0.0, std.numpy()).logpdf(target.numpy()).mean())
    got = gaussian_negative_log_likelihood(mean, std, target)
    assert got.dtype == torch.float64 and np.isfinite(got.item())
    np.testing.assert_allclose(got.item(), ref, rtol=1e-12)


def test_ence_without_overflow_or_underflow():
    """std.square() overflowed at 1e200 (ENCE NaN): the scaled form gives the unscaled value."""
    gen = np.random.default_rng(3)
    std = gen.uniform(0.5, 2.0, 200)
    err = gen.normal(size=200) * std * 1.2
    base = expected_normalized_calibration_error(
        torch.zeros(200, dtype=torch.float64), torch.tensor(std), torch.tensor(err), num_bins=5
    ).item()
    for scale in (1e200, 1e-200, 1e300):
        got = expected_normalized_calibration_error(
            torch.zeros(200, dtype=torch.float64),
            torch.tensor(std * scale),
            torch.tensor(err * scale),
            num_bins=5,
        ).item()
        np.testing.assert_allclose(got, base, rtol=1e-12)


def test_calibration_curve_starts_at_zero_for_tiny_std():
    """ndtr(z) rounds to 0 below z = -38: such points were counted at the level 0."""
    mean, target = torch.zeros(4, dtype=torch.float64), torch.tensor([-1.0, -1.0, 0.0, 1.0])
    curve = regression_calibration_curve(
        mean, torch.full((4,), 1e-10, dtype=torch.float64), target.double(), num_levels=3
    )
    assert curve.observed.tolist() == [0.0, 0.75, 1.0]
    # (y - mu) / std overflowing to -inf is still above the level 0
    tiny = torch.full((4,), 1e-310, dtype=torch.float64)
    curve = regression_calibration_curve(mean, tiny, target.double() * 1e10, num_levels=3)
    assert curve.observed.tolist() == [0.0, 0.75, 1.0]


def test_crps_with_an_overflowing_z_is_the_absolute_error():
    std = torch.tensor([1e-300], dtype=torch.float64)
    got = gaussian_crps(torch.zeros(1), std, torch.tensor([1e10], dtype=torch.float64))
    np.testing.assert_allclose(got.item(), 1e10, rtol=1e-12)


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda m, s, y: expected_normalized_calibration_error(m, s, y, num_bins=0),
            "`num_bins` to be a positive integer, but got 0",
        ),
        (
            lambda m, s, y: expected_normalized_calibration_error(m, s, y, num_bins=10**12),
            r"`num_bins` to be at most 1048576 bins, but got 1000000000000\. Use fewer bins",
        ),
        (
            lambda m, s, y: quantile_calibration_error(m, s, y, levels=[0.5, 1.0]),
            r"`levels` to be probabilities strictly inside \(0, 1\), but got \[0.5, 1.0\]",
        ),
        (
            lambda m, s, y: quantile_calibration_error(m, s, y, levels="high"),
            "`levels` to be",
        ),
        (lambda m, s, y: picp(m, s, y, level=float("nan")), "`levels` to be finite"),
        (
            lambda m, s, y: regression_calibration_curve(m, s, y, num_levels=1),
            "`num_levels` to be at least 2, but got 1",
        ),
    ],
)
def test_bad_levels_and_bins_are_bayesdrop_errors(call, match):
    m, s, y = torch.zeros(5), torch.ones(5), torch.randn(5)
    with pytest.raises((BayesdropValueError, BayesdropTypeError), match=match):
        call(m, s, y)
