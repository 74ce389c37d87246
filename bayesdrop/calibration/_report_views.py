"""What a :class:`~bayesdrop.calibration.CalibrationReport` shows: its summary rows, its
plain-value dictionary and its figures (the report's class holds the numbers)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from bayesdrop._validation import fail
from bayesdrop.calibration import _conformal_quality as cq
from bayesdrop.calibration._binning import bin_statistics
from bayesdrop.calibration._display import ClasswiseReliabilityDisplay, ReliabilityDisplay
from bayesdrop.calibration._inputs import PROBS_SUM_ATOL
from bayesdrop.calibration._score_displays import (
    RejectionCurveDisplay,
    UncertaintyHistogramDisplay,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayesdrop.calibration._report import CalibrationReport

__all__ = ["classification_dict", "classification_figures", "classification_rows"]


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def classification_rows(report: CalibrationReport) -> list[tuple[str, str]]:
    """The summary's rows of :class:`CalibrationReport`."""
    m = report.metrics
    rows = [
        ("accuracy", _fmt(m.accuracy)),
        (f"ECE ({m.num_bins} bins, l1)", _fmt(m.ece)),
        (f"MCE ({m.num_bins} bins)", _fmt(m.mce)),
        ("Brier score", _fmt(m.brier)),
        ("NLL (nats)", _fmt(m.nll)),
        ("AURC (risk-coverage)", _fmt(report.rejection.aurc)),
        ("E-AURC", _fmt(report.rejection.eaurc)),
    ]
    for label, scores in (("misclassification", report.misclassification), ("OOD", report.ood)):
        if scores is not None:
            rows += [
                (f"{label} AUROC", _fmt(scores.auroc)),
                (f"{label} AUPR", _fmt(scores.aupr)),
                (f"{label} FPR at 95% TPR", _fmt(scores.fpr_at_95_tpr)),
            ]
    return rows + cq.section_rows(report.conformal)


def classification_dict(report: CalibrationReport) -> dict[str, Any]:
    """:meth:`CalibrationReport.to_dict`."""
    return {
        "name": report.name,
        "kind": "classification",
        "num_classes": report.num_classes,
        "data_shape": list(report.data_shape),
        "num_ignored": report.num_ignored,
        "ignore_index": report.ignore_index,
        "metrics": dataclasses.asdict(report.metrics),
        "uncertainty": report.uncertainty,
        "misclassification": None
        if report.misclassification is None
        else dataclasses.asdict(report.misclassification),
        "ood": None if report.ood is None else dataclasses.asdict(report.ood),
        "rejection": {
            "rejection_rate": report.rejection.rejection_rate.tolist(),
            "accuracy": report.rejection.accuracy.tolist(),
            "oracle_accuracy": report.rejection.oracle_accuracy.tolist(),
            "aurc": report.rejection.aurc,
            "eaurc": report.rejection.eaurc,
        },
        "bins": {
            "edges": report.bins.edges.tolist(),
            "counts": [int(n) for n in report.bins.counts.tolist()],
            "mean_confidence": report.bins.mean_confidence().tolist(),
            "accuracy": report.bins.mean_accuracy().tolist(),
            "note": "empty bins have count 0 and report 0 for confidence and accuracy",
        },
        "conventions": {
            "binning": "equal_width",
            "last_bin_closed": True,
            "probs_sum_atol": PROBS_SUM_ATOL,
            "log": "natural",
        },
        "conformal": cq.section_dict(report.conformal),
    }


def classification_figures(report: CalibrationReport) -> dict[str, Figure]:
    """:meth:`CalibrationReport.figures`."""
    num_bins, score = report.metrics.num_bins, report.uncertainty.replace("_", " ")
    equal_mass = bin_statistics(
        report.confidence, report.correct, num_bins=num_bins, binning="equal_mass"
    )
    if report.classwise_bins is not None:
        classwise = ClasswiseReliabilityDisplay(list(report.classwise_bins))
    elif report.probs is not None and report.target is not None:
        classwise = ClasswiseReliabilityDisplay.from_predictions(
            report.probs, report.target, num_bins=num_bins
        )
    else:
        fail("classwise_bins", "given when probs is None", "None")
    displays = {
        "Reliability diagram": ReliabilityDisplay(report.bins, name=report.name),
        "Equal-mass reliability diagram": ReliabilityDisplay(
            equal_mass, name=report.name, binning="equal_mass"
        ),
        "Classwise reliability": classwise,
        "Uncertainty": UncertaintyHistogramDisplay.from_scores(
            report.id_scores, report.ood_scores, name=score
        ),
        "Accuracy-rejection curve": RejectionCurveDisplay(report.rejection, name=score),
    }
    figures = {title: display.plot().figure_ for title, display in displays.items()}
    return figures | cq.section_figures(report.conformal)
