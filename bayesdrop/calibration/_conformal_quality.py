r"""The conformal section of the reports (private): how the sets or intervals of a fitted split
conformal predictor do on the report's points.

The reports sit below :mod:`bayesdrop.conformal` in the package's layers, so they never fit a
conformal predictor: they receive one fitted on a calibration split, call its ``predict_sets``
/ ``predict_intervals`` on the report's points and measure the result, the numbers of
:func:`bayesdrop.conformal.set_quality` (or :func:`~bayesdrop.conformal.interval_coverage` and
:func:`~bayesdrop.conformal.mean_interval_width`). Against uncertainty, the points are sorted by
the report's uncertainty score (the predicted standard deviation for regression) and cut into
``10`` bins of (nearly) equal count; each bin reports its mean score, its coverage and its mean
set size or interval width. A group without points has coverage NaN (``null`` in the JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import torch
from torch import Tensor

from bayesdrop._validation import fail
from bayesdrop.calibration._plotting import _new_figure, _np

__all__ = [
    "ConformalIntervalQuality",
    "ConformalSetQuality",
    "interval_quality",
    "section_dict",
    "section_figures",
    "section_rows",
    "set_quality_of",
]

#: Equal-count bins of the uncertainty score in the coverage-against-uncertainty figure.
NUM_UNCERTAINTY_BINS = 10


@dataclass(frozen=True)
class ConformalSetQuality:
    r"""How the prediction sets of a fitted split conformal classifier do on a report's points.

    The ``conformal`` field of a :class:`~bayesdrop.CalibrationReport` built with
    ``conformal=`` (a fitted :class:`~bayesdrop.conformal.SplitConformalClassifier`):

    .. math::

        \text{coverage} = \frac1N \sum_i \mathbb 1[y_i \in C(x_i)], \qquad
        \text{coverage}_c = P(y \in C(x) \mid y = c), \qquad
        \text{coverage}_{k} = P(y \in C(x) \mid |C(x)| = k).

    Conformal coverage holds on average over calibration splits for test points exchangeable
    with the calibration points; one test split may fall a little below :math:`1 - \alpha`
    (binomial noise), and under distribution shift nothing is promised.

    Attributes
    ----------
    score : str
        The conformity score ("lac", "aps", "raps", "mi" or "spread").
    alpha : float
        The miscoverage level the predictor was fitted at (target coverage ``1 - alpha``).
    mondrian : bool
        Whether the quantile is per class.
    num_calibration : int
        Number of calibration points.
    quantile : Tensor, shape ``()`` or ``(C,)``
        The conformal quantile (per class with ``mondrian``).
    coverage : float
        Marginal coverage on the report's points.
    mean_set_size : float
        Mean number of classes per set.
    class_coverage, class_count : Tensor, shape ``(C,)``
        Coverage per true class (NaN for a class without points) and the points per class.
    size_coverage, size_count : Tensor, shape ``(C + 1,)``
        Coverage per set size :math:`k = 0, \dots, C` (entry :math:`k`) and the points per size.
    uncertainty : str
        The uncertainty score the bins sort by (the report's).
    bin_uncertainty, bin_coverage, bin_size, bin_count : Tensor, shape ``(B,)``
        Per equal-count bin of that score (low to high): its mean score, coverage, mean set
        size and number of points.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop import CalibrationReport
    >>> from bayesdrop.conformal import SplitConformalClassifier
    >>> g = torch.Generator().manual_seed(0)
    >>> probs = torch.distributions.Dirichlet(torch.full((4,), 0.5)).sample((4000,))
    >>> target = torch.multinomial(probs, 1, generator=g)[:, 0]
    >>> cp = SplitConformalClassifier("lac", alpha=0.1).fit(probs[:2000], target[:2000])
    >>> report = CalibrationReport.from_predictions(probs[2000:], target[2000:], conformal=cp)
    >>> round(report.conformal.coverage, 1), report.conformal.size_count.sum().item()
    (0.9, 2000)
    """

    score: str
    alpha: float
    mondrian: bool
    num_calibration: int
    quantile: Tensor
    coverage: float
    mean_set_size: float
    class_coverage: Tensor
    class_count: Tensor
    size_coverage: Tensor
    size_count: Tensor
    uncertainty: str
    bin_uncertainty: Tensor
    bin_coverage: Tensor
    bin_size: Tensor
    bin_count: Tensor


@dataclass(frozen=True)
class ConformalIntervalQuality:
    r"""How the intervals of a fitted split conformal regressor do on a report's points, beside
    the Gaussian central interval at the same level.

    The ``conformal`` field of a :class:`~bayesdrop.calibration.RegressionReport` built with
    ``conformal=`` (a fitted :class:`~bayesdrop.conformal.SplitConformalRegressor`). The
    Gaussian interval is :math:`\mu \pm z\, \sigma` with :math:`z = \Phi^{-1}(1 - \alpha / 2)`,
    which covers :math:`1 - \alpha` only if the predictive is a calibrated Gaussian; the
    conformal one covers :math:`1 - \alpha` on average over calibration splits for exchangeable
    data, whatever the predictive.

    Attributes
    ----------
    score : str
        The conformity score ("normalized" or "residual").
    alpha : float
        The miscoverage level the predictor was fitted at.
    num_calibration : int
        Number of calibration points.
    quantile : float
        The conformal quantile :math:`\hat q`.
    coverage, mean_width : float
        Coverage and mean width of the conformal intervals.
    gaussian_coverage, gaussian_mean_width : float
        The same for the Gaussian central interval at level ``1 - alpha``.
    bin_std, bin_coverage, bin_gaussian_coverage, bin_width, bin_count : Tensor, shape ``(B,)``
        Per equal-count bin of the predicted standard deviation (low to high): its mean std,
        the conformal and the Gaussian coverage, the mean conformal width and the points.

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> from bayesdrop.calibration import RegressionReport
    >>> from bayesdrop.conformal import SplitConformalRegressor
    >>> _ = torch.manual_seed(0)
    >>> std = torch.rand(4000) + 0.5
    >>> y = 1.5 * std * torch.randn(4000)  # the predicted std is 1.5 times too small
    >>> pred = bayesdrop.RegressionPrediction(mean=torch.zeros(4000),
    ...     epistemic_variance=std**2 / 2, aleatoric_variance=std**2 / 2,
    ...     total_variance=std**2, num_samples=10)
    >>> half = lambda p, s: bayesdrop.RegressionPrediction(p.mean[s], p.epistemic_variance[s],
    ...     p.aleatoric_variance[s], p.total_variance[s], 10)
    >>> cp = SplitConformalRegressor(alpha=0.1).fit(half(pred, slice(0, 2000)), y[:2000])
    >>> test = half(pred, slice(2000, None))
    >>> q = RegressionReport.from_predictions(test, target=y[2000:], conformal=cp).conformal
    >>> round(q.gaussian_coverage, 2), round(q.coverage, 2)
    (0.72, 0.89)
    """

    score: str
    alpha: float
    num_calibration: int
    quantile: float
    coverage: float
    mean_width: float
    gaussian_coverage: float
    gaussian_mean_width: float
    bin_std: Tensor
    bin_coverage: Tensor
    bin_gaussian_coverage: Tensor
    bin_width: Tensor
    bin_count: Tensor


def _check_fitted(conformal: Any, method: str, kind: str) -> None:
    if not callable(getattr(conformal, method, None)):
        fail(
            "conformal",
            f"a fitted {kind} (bayesdrop.conformal)",
            type(conformal).__name__,
            type_error=True,
        )
    if getattr(conformal, "quantile_", None) is None:
        fail(
            "conformal",
            f"a fitted {kind}",
            f"an unfitted {type(conformal).__name__}",
            "Call its fit(...) on the calibration split first.",
        )


def _by_group(covered: Tensor, group: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    count = torch.bincount(group, minlength=num_groups)
    hits = torch.bincount(group, weights=covered, minlength=num_groups)
    nan = torch.full_like(hits, float("nan"))
    return torch.where(count > 0, hits / count.clamp_min(1), nan), count


def _bins(score: Tensor, *values: Tensor) -> list[Tensor]:
    """Per equal-count bin of ``score`` (ascending): the bin's count and the mean of ``score``
    and of each of ``values``."""
    order = torch.argsort(score, stable=True)
    chunks = torch.tensor_split(order, min(NUM_UNCERTAINTY_BINS, order.numel()))
    means = [torch.stack([v[c].mean() for c in chunks]) for v in (score, *values)]
    return [*means, torch.tensor([c.numel() for c in chunks])]


def _classification_input(predictions: Any, points: Any) -> tuple[Any, bool]:
    """What the classifier's ``predict_sets`` gets: the user's prediction result as it is
    (``True``: its sets are then flattened and the ignored points dropped), else the points."""
    from bayesdrop.predict._results import ClassificationPrediction

    if isinstance(predictions, ClassificationPrediction):
        return predictions, True
    if points.samples is not None:
        return ClassificationPrediction.from_samples(points.samples), False
    return points.probs, False


def set_quality_of(
    conformal: Any, predictions: Any, points: Any, scores: Tensor, uncertainty: str
) -> ConformalSetQuality:
    """The set quality of ``conformal`` on the report's ``points`` (see the module)."""
    _check_fitted(conformal, "predict_sets", "SplitConformalClassifier")
    x, raw = _classification_input(predictions, points)
    sets = conformal.predict_sets(x)
    sets = sets.reshape(-1, sets.shape[-1])
    if raw and points.keep is not None:
        sets = sets[points.keep.to(sets.device)]
    sets, target = sets.cpu(), points.labels.cpu()
    covered = sets.gather(1, target[:, None])[:, 0].double()
    size = sets.sum(-1)
    num_classes = sets.shape[-1]
    class_coverage, class_count = _by_group(covered, target, num_classes)
    size_coverage, size_count = _by_group(covered, size, num_classes + 1)
    bin_uncertainty, bin_coverage, bin_size, bin_count = _bins(
        scores.double(), covered, size.double()
    )
    return ConformalSetQuality(
        score=str(conformal.score),
        alpha=float(conformal.alpha),
        mondrian=bool(getattr(conformal, "mondrian", False)),
        num_calibration=int(conformal.calibration_scores_.numel()),
        quantile=conformal.quantile_.detach().cpu(),
        coverage=covered.mean().item(),
        mean_set_size=size.double().mean().item(),
        class_coverage=class_coverage,
        class_count=class_count,
        size_coverage=size_coverage,
        size_count=size_count,
        uncertainty=uncertainty,
        bin_uncertainty=bin_uncertainty,
        bin_coverage=bin_coverage,
        bin_size=bin_size,
        bin_count=bin_count,
    )


def interval_quality(
    conformal: Any, prediction: Any, mean: Tensor, std: Tensor, target: Tensor
) -> ConformalIntervalQuality:
    """The interval quality of ``conformal`` on flattened ``mean``, ``std``, ``target``;
    ``prediction`` is the user's regression result, or None for plain tensors."""
    from bayesdrop.predict._results import RegressionPrediction

    _check_fitted(conformal, "predict_intervals", "SplitConformalRegressor")
    if not isinstance(prediction, RegressionPrediction):  # only mean and total variance are read
        var = std.square()
        prediction = RegressionPrediction(mean, torch.zeros_like(var), var, var, num_samples=1)
    lower, upper = (
        b.detach().cpu().double().reshape(-1) for b in conformal.predict_intervals(prediction)
    )
    covered = ((lower <= target) & (target <= upper)).double()
    width = upper - lower
    z = NormalDist().inv_cdf(1 - float(conformal.alpha) / 2)
    gaussian = ((target - mean).abs() <= z * std).double()
    bin_std, bin_coverage, bin_gaussian, bin_width, bin_count = _bins(std, covered, gaussian, width)
    return ConformalIntervalQuality(
        score=str(conformal.score),
        alpha=float(conformal.alpha),
        num_calibration=int(conformal.calibration_scores_.numel()),
        quantile=float(conformal.quantile_),
        coverage=covered.mean().item(),
        mean_width=width.mean().item(),
        gaussian_coverage=gaussian.mean().item(),
        gaussian_mean_width=(2 * z * std).mean().item(),
        bin_std=bin_std,
        bin_coverage=bin_coverage,
        bin_gaussian_coverage=bin_gaussian,
        bin_width=bin_width,
        bin_count=bin_count,
    )


def _sizes_text(q: ConformalSetQuality, most: int = 6) -> str:
    filled = [k for k, n in enumerate(q.size_count.tolist()) if n > 0]
    parts = [f"{k}: {q.size_coverage[k]:.4f} (n {int(q.size_count[k])})" for k in filled[:most]]
    return "; ".join(parts) + ("; ..." if len(filled) > most else "")


def section_rows(q: ConformalSetQuality | ConformalIntervalQuality | None) -> list[tuple[str, str]]:
    """The rows the section adds to the report's table (none without a section)."""
    if q is None:
        return []
    level = f"{1 - q.alpha:g}"
    if isinstance(q, ConformalIntervalQuality):
        worst = int(torch.argmin(q.bin_coverage))
        return [
            (
                "conformal intervals",
                f"{q.score} score, alpha {q.alpha:g}, n_cal {q.num_calibration}",
            ),
            (f"conformal coverage (target {level})", f"{q.coverage:.4f}"),
            (f"Gaussian coverage at {level}", f"{q.gaussian_coverage:.4f}"),
            ("mean conformal interval width", f"{q.mean_width:.4f}"),
            (f"Gaussian mean width at {level}", f"{q.gaussian_mean_width:.4f}"),
            (
                "lowest std-bin coverage",
                f"{q.bin_coverage[worst]:.4f} (bin {worst + 1} of {len(q.bin_count)})",
            ),
        ]
    filled = q.class_count > 0
    worst = int(torch.where(filled, q.class_coverage, torch.inf).argmin())
    kind = f"{q.score} score{', Mondrian' if q.mondrian else ''}"
    return [
        ("conformal sets", f"{kind}, alpha {q.alpha:g}, n_cal {q.num_calibration}"),
        (f"conformal coverage (target {level})", f"{q.coverage:.4f}"),
        ("mean set size", f"{q.mean_set_size:.4f}"),
        (
            "lowest class coverage",
            f"{q.class_coverage[worst]:.4f} (class {worst}, n {int(q.class_count[worst])})",
        ),
        ("coverage by set size", _sizes_text(q)),
    ]


def section_dict(q: ConformalSetQuality | ConformalIntervalQuality | None) -> Any:
    """The section as plain values (tensors as lists; NaN stays NaN, the JSON writes null)."""
    if q is None:
        return None
    out: dict[str, Any] = {}
    for name in q.__dataclass_fields__:
        value = getattr(q, name)
        out[name] = value.tolist() if isinstance(value, Tensor) else value
    out["kind"] = "intervals" if isinstance(q, ConformalIntervalQuality) else "sets"
    out["binning"] = "equal-count bins sorted by the uncertainty score, low to high"
    return out


def _against_uncertainty(axes: Any, x: Tensor, q: Any, size: Tensor, xlabel: str) -> None:
    ax = axes[0]
    ax.plot(_np(x), _np(q.bin_coverage), marker="o", ms=4, label=f"conformal ({q.score})")
    if isinstance(q, ConformalIntervalQuality):
        ax.plot(_np(x), _np(q.bin_gaussian_coverage), marker="s", ms=4, label="Gaussian")
    ax.axhline(1 - q.alpha, ls="--", color="0.4", lw=1, label=f"target {1 - q.alpha:g}")
    ax.set_xlabel(f"{xlabel} (bin mean)")
    ax.set_ylabel("coverage")
    ax.set_title("coverage against uncertainty")
    ax.legend(loc="best", fontsize=8)
    ax = axes[1]
    ax.plot(_np(x), _np(size), marker="o", ms=4)
    ax.set_xlabel(f"{xlabel} (bin mean)")
    ax.set_ylabel(
        "mean interval width" if isinstance(q, ConformalIntervalQuality) else "mean set size"
    )
    ax.set_title("size against uncertainty")


def _size_stratified(ax: Any, q: ConformalSetQuality) -> None:
    filled = q.size_count > 0
    sizes, cov, count = (
        torch.arange(len(q.size_count))[filled],
        q.size_coverage[filled],
        q.size_count[filled],
    )
    ax.bar(_np(sizes), _np(cov), color="tab:blue")
    ax.axhline(1 - q.alpha, ls="--", color="0.4", lw=1)
    for k, c, n in zip(sizes.tolist(), cov.tolist(), count.tolist(), strict=True):
        ax.annotate(str(n), (k, c), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("set size (n per size written)")
    ax.set_ylabel("coverage")
    ax.set_title("size-stratified coverage")


def section_figures(q: ConformalSetQuality | ConformalIntervalQuality | None) -> dict[str, Any]:
    """The figure of coverage and size against uncertainty (none without a section)."""
    if q is None:
        return {}
    if isinstance(q, ConformalIntervalQuality):
        figure = _new_figure((8.0, 3.8))
        _against_uncertainty(figure.subplots(1, 2), q.bin_std, q, q.bin_width, "predicted std")
    else:
        figure = _new_figure((11.0, 3.8))
        axes = figure.subplots(1, 3)
        name = q.uncertainty.replace("_", " ")
        _against_uncertainty(axes, q.bin_uncertainty, q, q.bin_size, name)
        _size_stratified(axes[2], q)
    return {"Conformal coverage and size against uncertainty": figure}
