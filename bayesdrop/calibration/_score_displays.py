"""Displays of uncertainty scores and regression calibration (see :mod:`.display` for the
reliability diagrams): the same ``from_*`` / ``plot(ax=None)`` protocol, no pyplot state."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bayesdrop._validation import fail
from bayesdrop.calibration._binning import check_num_bins
from bayesdrop.calibration._inputs import Layout, check_scores
from bayesdrop.calibration._plotting import _axes, _diagonal, _np
from bayesdrop.calibration._regression import regression_calibration_curve
from bayesdrop.calibration._uncertainty_quality import RejectionCurve, accuracy_rejection_curve

__all__ = ["RegressionCalibrationDisplay", "RejectionCurveDisplay", "UncertaintyHistogramDisplay"]


class RegressionCalibrationDisplay:
    """Quantile calibration curve of Gaussian regression predictions.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import RegressionCalibrationDisplay
    >>> d = RegressionCalibrationDisplay.from_predictions(torch.zeros(50), torch.ones(50),
    ...                                                   torch.randn(50)).plot()
    >>> d.ax_.get_xlabel()
    'expected cumulative probability'
    """

    def __init__(self, expected: torch.Tensor, observed: torch.Tensor, error: float) -> None:
        self.expected, self.observed, self.error = expected, observed, error

    @classmethod
    def from_predictions(cls, mean: Any, std: Any, target: Any, *, num_levels: int = 21):
        curve = regression_calibration_curve(mean, std, target, num_levels=num_levels)
        return cls(curve.expected, curve.observed, curve.error)

    def plot(self, ax: Any = None) -> RegressionCalibrationDisplay:
        self.figure_, self.ax_ = _axes(ax, (5.0, 5.0))
        self.ax_.plot(_np(self.expected), _np(self.observed), marker="o", ms=3, label="model")
        _diagonal(self.ax_)
        self.ax_.set_xlabel("expected cumulative probability")
        self.ax_.set_ylabel("observed frequency")
        self.ax_.set_title(f"regression calibration (error {self.error:.4f})")
        self.ax_.legend(loc="lower right")
        return self


class UncertaintyHistogramDisplay:
    """Histograms of an uncertainty score on in-distribution and (optionally) OOD data.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import UncertaintyHistogramDisplay
    >>> d = UncertaintyHistogramDisplay.from_scores(torch.rand(100), torch.rand(80) + 0.5).plot()
    >>> len(d.ax_.patches) > 0
    True
    """

    def __init__(self, id_scores: np.ndarray, ood_scores: np.ndarray | None, name: str) -> None:
        self.id_scores, self.ood_scores, self.name = id_scores, ood_scores, name

    @classmethod
    def from_scores(cls, id_scores: Any, ood_scores: Any = None, *, name: str = "uncertainty"):
        id_np = _np(check_scores(id_scores, "id_scores"))
        ood_np = None if ood_scores is None else _np(check_scores(ood_scores, "ood_scores"))
        return cls(id_np, ood_np, name)

    def plot(self, ax: Any = None, *, num_bins: int = 30) -> UncertaintyHistogramDisplay:
        num_bins = check_num_bins(num_bins)
        both = np.concatenate(
            [
                np.asarray(s, dtype=np.float64).reshape(-1)
                for s in (self.id_scores, self.ood_scores)
                if s is not None
            ]
        )
        if both.size == 0 or not np.isfinite(both).all():
            got = "no scores" if both.size == 0 else "non-finite scores"
            fail("id_scores, ood_scores", "finite scores, at least one", got)
        lo, hi = both.min(), both.max()
        if hi <= lo:  # one value: a bin around it
            pad = max(abs(lo) * 1e-6, 1e-12)
            lo, hi = lo - pad, hi + pad
        bins = 2 * np.linspace(lo / 2, hi / 2, num_bins + 1)  # halved: hi - lo cannot overflow
        self.figure_, self.ax_ = _axes(ax, (5.0, 3.5))
        self.ax_.hist(self.id_scores, bins=bins, density=True, alpha=0.6, label="in-distribution")
        if self.ood_scores is not None:
            self.ax_.hist(
                self.ood_scores, bins=bins, density=True, alpha=0.6, label="out-of-distribution"
            )
        self.ax_.set_xlabel(self.name, parse_math=False)
        self.ax_.set_ylabel("density")
        self.ax_.legend()
        return self


class RejectionCurveDisplay:
    """Accuracy of the retained points against the fraction rejected (most uncertain first),
    with the oracle that rejects the errors first.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import RejectionCurveDisplay
    >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.55, 0.45]])
    >>> d = RejectionCurveDisplay.from_predictions(
    ...     probs, torch.tensor([0, 1, 0, 1]), 1 - probs.amax(-1), num_rates=4
    ... ).plot()
    >>> d.ax_.get_xlabel()
    'fraction rejected (most uncertain first)'
    """

    def __init__(self, curve: RejectionCurve, *, name: str = "uncertainty") -> None:
        if not isinstance(curve, RejectionCurve):
            fail("curve", "a RejectionCurve", type(curve).__name__, type_error=True)
        self.curve, self.name = curve, name

    @classmethod
    def from_predictions(
        cls,
        probs: Any,
        target: Any,
        scores: Any,
        *,
        num_rates: int = 21,
        layout: Layout | None = None,
        ignore_index: int | None = None,
        name: str = "uncertainty",
    ) -> RejectionCurveDisplay:
        """The curve of :func:`~bayesdrop.calibration.accuracy_rejection_curve`."""
        curve = accuracy_rejection_curve(
            probs, target, scores, num_rates=num_rates, layout=layout, ignore_index=ignore_index
        )
        return cls(curve, name=name)

    def plot(self, ax: Any = None) -> RejectionCurveDisplay:
        self.figure_, self.ax_ = _axes(ax, (5.0, 3.5))
        c = self.curve
        self.ax_.plot(c.rejection_rate, c.accuracy, marker="o", ms=3, label=self.name)
        self.ax_.plot(c.rejection_rate, c.oracle_accuracy, ls="--", label="oracle")
        self.ax_.set_xlabel("fraction rejected (most uncertain first)")
        self.ax_.set_ylabel("accuracy of the rest")
        self.ax_.set_title(f"AURC {c.aurc:.4f}, E-AURC {c.eaurc:.4f}", fontsize="medium")
        self.ax_.legend()
        return self
