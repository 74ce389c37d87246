r"""Post-hoc recalibration behind one small interface: ``fit(x, target)``, ``transform(x)``.

:class:`TemperatureScaling` works on logits with Guo et al.'s temperature :math:`T`
(``softmax(logits / T)``; :math:`T > 1` softens over-confident predictions). netcal's
``TemperatureScaling.temperature`` is the reciprocal weight :math:`1/T` on log-probabilities.
The other three wrap netcal's estimators and take probabilities.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from bayesdrop._validation import check_positive_int, fail
from bayesdrop.calibration.inputs import as_float_tensor, check_probs, check_target

__all__ = ["BetaCalibration", "HistogramBinning", "IsotonicCalibration", "TemperatureScaling"]


class TemperatureScaling:
    r"""Temperature scaling (Guo et al., 2017): :math:`\hat p = \mathrm{softmax}(z / T)`.

    ``fit`` minimises the mean negative log-likelihood over :math:`\log T` with L-BFGS
    (strong Wolfe line search) on held-out logits; ``transform`` returns probabilities.

    .. math:: T^\star = \arg\min_{T > 0} -\frac1N\sum_i \log \mathrm{softmax}(z_i / T)_{y_i}

    Attributes
    ----------
    temperature_ : float
        The fitted :math:`T` (netcal reports :math:`1/T`).

    Examples
    --------
    >>> from bayesdrop.calibration import TemperatureScaling
    >>> true_logits = 3 * torch.randn(4000, 5)
    >>> target = torch.distributions.Categorical(logits=true_logits).sample()
    >>> ts = TemperatureScaling().fit(2.5 * true_logits, target)  # over-confident by 2.5
    >>> round(ts.temperature_, 1)
    2.5
    """

    def __init__(self, *, max_iter: int = 100) -> None:
        self.max_iter = check_positive_int("max_iter", max_iter)
        self.temperature_: float | None = None

    @staticmethod
    def _logits(logits: Any) -> Tensor:
        logits = as_float_tensor("logits", logits)
        if logits.ndim != 2 or logits.shape[1] < 2:
            fail("logits", "of shape (N, C) with C >= 2", f"shape {tuple(logits.shape)}")
        return logits

    def fit(self, logits: Tensor, target: Tensor) -> TemperatureScaling:
        """Fit :math:`T` on ``logits (N, C)`` and integer ``target (N,)``; returns ``self``."""
        logits = self._logits(logits).detach().double()
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

    def transform(self, logits: Tensor) -> Tensor:
        """Calibrated probabilities ``softmax(logits / T)``."""
        if self.temperature_ is None:
            fail("self", "fitted", "an unfitted TemperatureScaling", "Call fit first.")
        return (self._logits(logits) / cast(float, self.temperature_)).softmax(-1)

    def fit_transform(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.fit(logits, target).transform(logits)


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
    >>> from bayesdrop.calibration import IsotonicCalibration
    >>> probs = torch.rand(300, 3).softmax(-1)
    >>> out = IsotonicCalibration().fit_transform(probs, torch.randint(0, 3, (300,)))
    >>> out.shape, torch.allclose(out.sum(-1), torch.ones(300))
    (torch.Size([300, 3]), True)
    """

    def _make(self) -> Any:
        from netcal.binning import IsotonicRegression

        return IsotonicRegression()


class HistogramBinning(_NetcalCalibrator):
    """Histogram binning (Zadrozny & Elkan, 2001), netcal's ``HistogramBinning``."""

    def __init__(self, *, num_bins: int = 15) -> None:
        self.num_bins = check_positive_int("num_bins", num_bins)

    def _make(self) -> Any:
        from netcal.binning import HistogramBinning as _Histogram

        return _Histogram(bins=self.num_bins)


class BetaCalibration(_NetcalCalibrator):
    """Beta calibration (Kull et al., 2017), netcal's ``BetaCalibration`` (maximum likelihood).

    netcal fits it with SciPy and finite-difference gradients: fast for two classes, slow with
    many (about 15 s for 300 points and 3 classes on one CPU core).
    """

    def _make(self) -> Any:
        from netcal.scaling import BetaCalibration as _Beta

        return _Beta()
