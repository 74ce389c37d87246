"""A calibration report for Gaussian regression predictions ``N(mean, std^2)``.

:class:`RegressionReport` holds, beside the classification report's counterpart: the quantile
calibration curve and its error, the PICP of central intervals at several levels, ENCE with the
per-bin RMV / RMSE (and counts), the CRPS, the Gaussian NLL, the sharpness (root mean predicted
variance) and the RMSE; it renders as text, Markdown, JSON or a self-contained HTML page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from bayesdrop._optional import require
from bayesdrop._validation import fail
from bayesdrop.calibration import _conformal_quality as cq
from bayesdrop.calibration._binning import check_num_bins
from bayesdrop.calibration._inputs import as_float_tensor
from bayesdrop.calibration._regression import (
    RegressionCalibrationCurve,
    ence_bins,
    expected_normalized_calibration_error,
    gaussian_crps,
    gaussian_negative_log_likelihood,
    picp,
    quantile_calibration_error,
    regression_calibration_curve,
    root_mean_square,
)
from bayesdrop.calibration._render import ReportRendering
from bayesdrop.calibration._score_displays import RegressionCalibrationDisplay

__all__ = ["RegressionReport"]

_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class RegressionReport(ReportRendering):
    r"""Calibration and sharpness of Gaussian regression predictions.

    Build it with :meth:`from_predictions`.

    Attributes
    ----------
    num_data : int
        Number of points (all predictions flattened).
    quantile_calibration_error : float
        Mean absolute gap of the quantile calibration curve (``curve.error``).
    picp : dict of float to float
        Prediction-interval coverage probability of the central interval of each level.
    ence : float
        Expected normalised calibration error over ``num_bins`` std bins.
    crps : float
        Mean continuous ranked probability score of the Gaussian predictives.
    nll : float
        Mean Gaussian negative log-likelihood, in nats.
    sharpness : float
        Root mean predicted variance, :math:`\sqrt{\frac1N \sum_i \sigma_i^2}`.
    rmse : float
        Root mean squared error of the predictive means.
    curve : RegressionCalibrationCurve
        The quantile calibration curve.
    ence_bins : dict of str to list of float
        Per std bin: ``"counts"``, ``"rmv"`` (root mean variance) and ``"rmse"``.
    num_bins : int
        Number of std bins of the ENCE.
    mean, std, target : Tensor, shape ``(N,)``
        The predictions and targets, flattened, float64, on the CPU.
    name : str
        The model's name in the summary and the HTML.
    conformal : ConformalIntervalQuality or None
        Coverage and width of a conformal predictor's intervals on the points, beside the
        Gaussian interval's at the same level (with ``conformal=``).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import RegressionReport
    >>> _ = torch.manual_seed(0)
    >>> mean, std = torch.randn(2000), torch.full((2000,), 2.0)
    >>> target = mean + 2.0 * torch.randn(2000)  # calibrated
    >>> report = RegressionReport.from_predictions(mean, std, target)
    >>> print(report.summary().splitlines()[0])
    Regression calibration report: 2000 points, 15 std bins for ENCE
    >>> round(report.picp[0.9], 2)
    0.91
    """

    _TITLE: ClassVar[str] = "Regression calibration report"

    num_data: int
    quantile_calibration_error: float
    picp: dict[float, float]
    ence: float
    crps: float
    nll: float
    sharpness: float
    rmse: float
    curve: RegressionCalibrationCurve
    ence_bins: dict[str, list[float]]
    num_bins: int
    mean: Tensor
    std: Tensor
    target: Tensor
    name: str = "model"
    conformal: cq.ConformalIntervalQuality | None = None

    @classmethod
    def from_predictions(
        cls,
        mean: Any,
        std: Any = None,
        target: Any = None,
        *,
        levels: tuple[float, ...] = _LEVELS,
        num_bins: int = 15,
        name: str = "model",
        conformal: Any = None,
    ) -> RegressionReport:
        """Compute the report.

        Parameters
        ----------
        mean : Tensor, ndarray or prediction result
            Predictive means of any shape, or an object with ``mean`` and ``total_variance``
            (such as a regression result of ``mc_predict``); ``std`` is then omitted.
        std : Tensor or ndarray
            Predictive standard deviations, the shape of ``mean``.
        target : Tensor or ndarray
            Observed values, the shape of ``mean``.
        levels : tuple of float
            Central-interval levels of the PICP rows.
        num_bins : int, default 15
            Equal-width bins of the predicted std for ENCE.
        name : str, default "model"
            The model's name in the summary and the HTML.
        conformal : SplitConformalRegressor, optional
            Fitted on a calibration split: its intervals of these points are measured
            (coverage, width, per predicted-std bin, against the Gaussian interval at the same
            level) in the ``conformal`` field. With tensors, ``std`` is the total predictive
            standard deviation the normalised score divides by.
        """
        prediction = None
        if hasattr(mean, "mean") and hasattr(mean, "total_variance"):
            prediction = mean
            if std is not None:
                fail("std", "omitted with a prediction result", "a value", type_error=True)
            mean, std = mean.mean, mean.total_variance.sqrt()
        if std is None or target is None:
            fail("std and target", "given", "None", "Pass mean, std and target.", type_error=True)
        num_bins = check_num_bins(num_bins)
        mean = as_float_tensor("mean", mean).detach().cpu().double()
        std = as_float_tensor("std", std).detach().cpu().double()
        target = as_float_tensor("target", target).detach().cpu().double()
        for label, value in (("std", std), ("target", target)):
            if value.shape != mean.shape:
                want = f"of the shape of `mean` {tuple(mean.shape)}"
                fail(label, want, f"shape {tuple(value.shape)}")
        mean, std, target = mean.reshape(-1), std.reshape(-1), target.reshape(-1)
        levels = tuple(float(q) for q in levels)
        curve = regression_calibration_curve(mean, std, target)
        if conformal is not None:
            conformal = cq.interval_quality(conformal, prediction, mean, std, target)
        return cls(
            num_data=mean.numel(),
            quantile_calibration_error=quantile_calibration_error(mean, std, target).item(),
            picp={q: picp(mean, std, target, level=q).item() for q in levels},
            ence=expected_normalized_calibration_error(mean, std, target, num_bins=num_bins).item(),
            crps=gaussian_crps(mean, std, target).item(),
            nll=gaussian_negative_log_likelihood(mean, std, target).item(),
            sharpness=root_mean_square(std).item(),
            rmse=(2 * root_mean_square(0.5 * target - 0.5 * mean)).item(),  # halved: no overflow
            curve=curve,
            ence_bins=_ence_bins(mean, std, target, num_bins),
            num_bins=num_bins,
            mean=mean,
            std=std,
            target=target,
            name=name,
            conformal=conformal,
        )

    def _rows(self) -> list[tuple[str, str]]:
        rows = [
            ("quantile calibration error", f"{self.quantile_calibration_error:.4f}"),
            ("calibration curve error", f"{self.curve.error:.4f}"),
        ]
        rows += [(f"PICP at {q:g} (ideal {q:g})", f"{v:.4f}") for q, v in self.picp.items()]
        rows += [
            (f"ENCE ({self.num_bins} std bins)", f"{self.ence:.4f}"),
            ("CRPS", f"{self.crps:.4f}"),
            ("Gaussian NLL (nats)", f"{self.nll:.4f}"),
            ("sharpness (root mean variance)", f"{self.sharpness:.4f}"),
            ("RMSE", f"{self.rmse:.4f}"),
        ]
        return rows + cq.section_rows(self.conformal)

    def _header(self) -> str:
        return f"{self.num_data} points, {self.num_bins} std bins for ENCE"

    def to_dict(self) -> dict[str, Any]:
        """The numbers, the curve, the ENCE bins and the conventions as plain values."""
        return {
            "name": self.name,
            "kind": "regression",
            "num_data": self.num_data,
            "quantile_calibration_error": self.quantile_calibration_error,
            "picp": {f"{q:g}": v for q, v in self.picp.items()},
            "ence": self.ence,
            "crps": self.crps,
            "nll": self.nll,
            "sharpness": self.sharpness,
            "rmse": self.rmse,
            "calibration_curve": {
                "expected": self.curve.expected.tolist(),
                "observed": self.curve.observed.tolist(),
                "error": self.curve.error,
            },
            "ence_bins": self.ence_bins,
            "conventions": {
                "predictive": "Gaussian N(mean, std^2)",
                "picp": "central intervals mean +- std * Phi^-1((1 + q) / 2)",
                "sharpness": "sqrt(mean(std^2))",
                "ence_bins": "equal width between the smallest and the largest std",
                "log": "natural",
            },
            "conformal": cq.section_dict(self.conformal),
        }

    def figures(self) -> dict[str, Any]:
        """The calibration curve, the coverage per level and RMSE against RMV per std bin."""
        Figure = require("matplotlib.figure", "RegressionReport.figures").Figure

        curve = RegressionCalibrationDisplay(
            self.curve.expected, self.curve.observed, self.curve.error
        ).plot()
        coverage = Figure(figsize=(5.0, 4.0), layout="constrained")
        ax = coverage.add_subplot()
        levels = np.linspace(0.01, 0.99, 50)
        observed = [picp(self.mean, self.std, self.target, level=q).item() for q in levels]
        ax.plot(levels, observed, label="observed coverage")
        ax.plot([0, 1], [0, 1], ls="--", color="0.4", lw=1, label="ideal")
        ax.scatter(
            list(self.picp),
            list(self.picp.values()),
            color="tab:red",
            zorder=3,
            label="reported levels",
        )
        ax.set_xlabel("central interval level q")
        ax.set_ylabel("fraction of targets inside (PICP)")
        ax.set_title("interval coverage")
        ax.legend(loc="upper left")
        ence = Figure(figsize=(5.0, 4.0), layout="constrained")
        ax = ence.add_subplot()
        rmv, rmse = np.asarray(self.ence_bins["rmv"]), np.asarray(self.ence_bins["rmse"])
        counts = np.asarray(self.ence_bins["counts"])
        filled = counts > 0
        ax.plot(rmv[filled], rmse[filled], marker="o", ms=4, label="std bins")
        for x, y, n in zip(rmv[filled], rmse[filled], counts[filled], strict=True):
            ax.annotate(str(int(n)), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=8)
        top = float(max(rmv[filled].max(), rmse[filled].max())) * 1.05
        ax.plot([0, top], [0, top], ls="--", color="0.4", lw=1, label="ideal")
        ax.set_xlabel("root mean predicted variance (RMV)")
        ax.set_ylabel("RMSE")
        ax.set_title(f"ENCE {self.ence:.4f} (n per bin written)")
        ax.legend(loc="upper left")
        return {
            "Regression calibration curve": curve.figure_,
            "Interval coverage": coverage,
            "Error against predicted std": ence,
        } | cq.section_figures(self.conformal)

    def _intro(self) -> str:
        return f"{self._header()}. Gaussian predictive distributions N(mean, std^2)."


def _ence_bins(mean: Tensor, std: Tensor, target: Tensor, num_bins: int) -> dict[str, list]:
    """Per std bin (equal width between the smallest and largest std): counts, RMV, RMSE."""
    counts, rmv, rmse = ence_bins(mean, std, target, num_bins)
    return {"counts": counts.tolist(), "rmv": rmv.tolist(), "rmse": rmse.tolist()}
