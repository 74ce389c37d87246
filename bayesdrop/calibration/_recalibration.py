r"""Post-hoc recalibration behind one small interface: ``fit(x, target)``, ``transform(x)``.

:class:`TemperatureScaling` works on logits with Guo et al.'s temperature :math:`T`
(``softmax(logits / T)``; :math:`T > 1` softens over-confident predictions), or on probabilities
or log-probabilities when told so (``inputs="probs"``, ``"log_probs"``). netcal's
``TemperatureScaling.temperature`` is the reciprocal weight :math:`1/T` on log-probabilities.
The other three wrap netcal's estimators and take probabilities.
"""

from __future__ import annotations

import math
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor

from bayesdrop._optional import require
from bayesdrop._validation import check_choice, check_finite, check_positive_int, fail
from bayesdrop.calibration._binning import check_num_bins
from bayesdrop.calibration._inputs import (
    as_float_tensor,
    at_least_float32,
    check_probs,
    check_target,
    probs_sum_atol,
)

__all__ = ["BetaCalibration", "HistogramBinning", "IsotonicCalibration", "TemperatureScaling"]


TemperatureInputs = Literal["logits", "probs", "log_probs"]


class TemperatureScaling:
    r"""Temperature scaling (Guo et al., 2017): :math:`\hat p = \mathrm{softmax}(z / T)`.

    ``fit`` minimises the mean negative log-likelihood over :math:`\log T` with L-BFGS
    (strong Wolfe line search) on held-out predictions; ``transform`` returns probabilities.

    .. math:: T^\star = \arg\min_{T > 0} -\frac1N\sum_i \log \mathrm{softmax}(z_i / T)_{y_i}

    What ``fit`` and ``transform`` receive is declared, never guessed:

    * ``inputs="logits"`` (default): logits :math:`z` of shape ``(N, C)``. Rows that are
      probabilities (in ``[0, 1]``, summing to 1) are rejected: a temperature fitted on them
      means nothing (0.30 instead of 1.99 on one data set).
    * ``inputs="probs"``: probabilities ``(N, C)`` or MC samples ``(S, N, C)`` (averaged), such
      as ``mc_predict(...).probs``; the logits are :math:`z = \log p`, so
      :math:`\hat p \propto p^{1/T}`.
    * ``inputs="log_probs"``: log-probabilities ``(N, C)`` (``-inf`` allowed), e.g. the log of an
      MC mean; they are logits up to a constant per row, which the softmax ignores.

    Parameters
    ----------
    inputs : {"logits", "probs", "log_probs"}, default "logits"
        What ``fit`` and ``transform`` receive.
    max_iter : int, default 100
        L-BFGS iterations.

    Attributes
    ----------
    temperature_ : float
        The fitted :math:`T` (netcal reports :math:`1/T`).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import TemperatureScaling
    >>> _ = torch.manual_seed(0)
    >>> true_logits = 3 * torch.randn(4000, 5)
    >>> target = torch.distributions.Categorical(logits=true_logits).sample()
    >>> ts = TemperatureScaling().fit(2.5 * true_logits, target)  # over-confident by 2.5
    >>> round(ts.temperature_, 1)
    2.5
    >>> probs = (2.5 * true_logits).softmax(-1)  # what mc_predict returns
    >>> round(TemperatureScaling(inputs="probs").fit(probs, target).temperature_, 1)
    2.5
    """

    def __init__(self, *, inputs: TemperatureInputs = "logits", max_iter: int = 100) -> None:
        self.inputs: TemperatureInputs = inputs
        check_choice("inputs", inputs, ("logits", "probs", "log_probs"))
        self.max_iter = check_positive_int("max_iter", max_iter)
        self.temperature_: float | None = None

    def _logits(self, values: Any) -> Tensor:
        """Validate ``values`` as declared by ``inputs`` and return logits ``(N, C)``."""
        if self.inputs == "probs":
            probs = check_probs(values).double()
            return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
        name = self.inputs
        values = as_float_tensor(name, values, check_values=False)
        if values.ndim != 2 or values.shape[1] < 2:
            fail(name, "of shape (N, C) with C >= 2", f"shape {tuple(values.shape)}")
        if self.inputs == "logits":
            check_finite(name, values)
            _reject_probabilities(values)
            return values
        return _check_log_probs(values)

    def fit(self, x: Any, target: Any) -> TemperatureScaling:
        """Fit :math:`T` on ``x`` (as declared by ``inputs``) and integer ``target (N,)``;
        returns ``self``."""
        logits = self._logits(x).detach().double()
        target = check_target(target, logits.shape[0], logits.shape[1]).to(logits.device)
        log_t = torch.zeros((), dtype=logits.dtype, device=logits.device, requires_grad=True)
        opt = torch.optim.LBFGS(
            [log_t], lr=1.0, max_iter=self.max_iter, line_search_fn="strong_wolfe"
        )

        def closure() -> Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), target)
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        self.temperature_ = float(log_t.exp().item())
        return self

    def transform(self, x: Any) -> Tensor:
        """Calibrated probabilities ``softmax(z / T)`` of ``x`` (as declared by ``inputs``)."""
        if self.temperature_ is None:
            fail("self", "fitted", "an unfitted TemperatureScaling", "Call fit first.")
        logits = self._logits(x)
        return (logits / cast(float, self.temperature_)).softmax(-1)

    def fit_transform(self, x: Any, target: Any) -> Tensor:
        """``fit(x, target).transform(x)``."""
        return self.fit(x, target).transform(x)


def _reject_probabilities(logits: Tensor) -> None:
    lo, hi = (v.item() for v in torch.aminmax(logits))
    if lo < 0.0 or hi > 1.0:
        return
    wide = at_least_float32(logits)
    if (wide.sum(-1) - 1).abs().max().item() <= probs_sum_atol(logits.dtype):
        fail(
            "logits",
            "logits (unnormalised log-probabilities)",
            "rows in [0, 1] that sum to 1, which are probabilities",
            'For probabilities (e.g. mc_predict(...).probs) use TemperatureScaling(inputs="probs");'
            ' for log-probabilities inputs="log_probs".',
        )


def _check_log_probs(values: Tensor) -> Tensor:
    bad = int((torch.isnan(values) | (values == float("inf"))).sum())
    if bad:
        fail(
            "log_probs",
            "log-probabilities (-inf allowed, no NaN or +inf)",
            f"{bad} NaN or +inf value(s)",
        )
    wide = at_least_float32(values)
    error = (wide.logsumexp(-1)).abs().max().item()
    if wide.max().item() > probs_sum_atol(values.dtype) or error > probs_sum_atol(values.dtype):
        fail(
            "log_probs",
            "log-probabilities (rows whose exp sums to 1)",
            f"a row with log-sum-exp {error:.4g} away from 0",
            'For logits use TemperatureScaling(inputs="logits").',
        )
    # -inf (a zero probability) becomes log of float64's tiny, as in inputs="probs"
    return values.double().clamp_min(math.log(torch.finfo(torch.float64).tiny))


def _to_netcal(probs: Tensor) -> np.ndarray:
    # float64: netcal's scipy fits use finite-difference gradients, which stall on float32 input.
    return probs.detach().cpu().double().numpy()


class _NetcalCalibrator:
    """Shared wrapper: probabilities in, probabilities out (same dtype and device)."""

    def _make(self) -> Any:
        raise NotImplementedError

    def fit(self, probs: Tensor, target: Tensor):
        """Fit on ``probs (N, C)`` (or MC samples) and ``target (N,)``; returns ``self``."""
        probs = check_probs(probs)
        target = check_target(target, probs.shape[0], probs.shape[1])
        if len(torch.unique(target)) < 3 and probs.shape[1] > 2:
            fail(
                "target",
                "at least 3 distinct labels for C > 2 classes",
                "fewer",
                "netcal treats two distinct labels as a binary problem.",
            )
        self.estimator_ = self._make()
        self.estimator_.fit(_to_netcal(probs), target.cpu().numpy())
        return self

    def transform(self, probs: Tensor) -> Tensor:
        """Calibrated probabilities for ``probs (N, C)``."""
        if not hasattr(self, "estimator_"):
            fail("self", "fitted", f"an unfitted {type(self).__name__}", "Call fit first.")
        probs = check_probs(probs)
        out = np.asarray(self.estimator_.transform(_to_netcal(probs)), dtype=np.float64)
        out = out.reshape(probs.shape[0], -1)
        if out.shape[1] == 1:  # binary estimators return P(class 1)
            out = np.concatenate([1 - out, out], axis=1)
        return torch.from_numpy(out).to(probs)

    def fit_transform(self, probs: Tensor, target: Tensor) -> Tensor:
        return self.fit(probs, target).transform(probs)


class IsotonicCalibration(_NetcalCalibrator):
    """Isotonic regression (Zadrozny & Elkan, 2002), netcal's ``IsotonicRegression``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import IsotonicCalibration
    >>> probs = torch.rand(300, 3).softmax(-1)
    >>> out = IsotonicCalibration().fit_transform(probs, torch.randint(0, 3, (300,)))
    >>> out.shape, torch.allclose(out.sum(-1), torch.ones(300))
    (torch.Size([300, 3]), True)
    """

    def _make(self) -> Any:
        IsotonicRegression = require("netcal.binning", "IsotonicCalibration").IsotonicRegression

        return IsotonicRegression()


class HistogramBinning(_NetcalCalibrator):
    """Histogram binning (Zadrozny & Elkan, 2001), netcal's ``HistogramBinning``."""

    def __init__(self, *, num_bins: int = 15) -> None:
        self.num_bins = check_num_bins(num_bins)

    def _make(self) -> Any:
        _Histogram = require("netcal.binning", "HistogramBinning").HistogramBinning

        return _Histogram(bins=self.num_bins)


class BetaCalibration(_NetcalCalibrator):
    """Beta calibration (Kull et al., 2017), netcal's ``BetaCalibration`` (maximum likelihood).

    netcal fits it with SciPy and finite-difference gradients: fast for two classes, slow with
    many (about 15 s for 300 points and 3 classes on one CPU core).
    """

    def _make(self) -> Any:
        _Beta = require("netcal.scaling", "BetaCalibration").BetaCalibration

        return _Beta()
