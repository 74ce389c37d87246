"""Self-contained HTML pages for the reports (private): inline CSS, base64 PNG figures."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Any

__all__ = ["GLOSSARY", "definition", "html_page", "png_base64"]

# What every number a report's table shows means: (pattern matched at the start of the row's
# label, term, definition). Each report row must match one (tests/test_calibration_report.py).
GLOSSARY: tuple[tuple[str, str, str], ...] = (
    ("accuracy", "accuracy", "Fraction of points whose most probable class is the label."),
    ("ECE", "ECE (expected calibration error)",
     "Mean over the equal-width confidence bins, weighted by their share of the points, of "
     "|accuracy - mean top-label confidence| in the bin. 0 is perfectly calibrated."),
    ("MCE", "MCE (maximum calibration error)",
     "The largest |accuracy - mean confidence| over the non-empty bins of the ECE."),
    ("Brier score", "Brier score",
     "Mean over points of the squared distance between the probability vector and the one-hot "
     "label, sum over classes (0 to 2; lower is better)."),
    ("NLL", "NLL (negative log-likelihood)",
     "Mean over points of -log p(label), in nats (natural log); lower is better."),
    ("AURC", "AURC (area under the risk-coverage curve)",
     "Points are accepted from the most to the least certain (by the uncertainty score); the "
     "error rate among the accepted points, averaged over all coverages. Lower is better."),
    ("E-AURC", "E-AURC (excess AURC)",
     "AURC minus the AURC of an oracle that rejects the wrong points first: the part of the "
     "risk due to the score's ranking alone (0 is a perfect ranking)."),
    (r"(misclassification|OOD) AUROC", "AUROC",
     "Area under the ROC curve of the uncertainty score as a detector (of misclassified points, "
     "or of out-of-distribution inputs against in-distribution ones): the probability that a "
     "random positive scores higher than a random negative. 0.5 is chance, 1 perfect."),
    (r"(misclassification|OOD) AUPR", "AUPR",
     "Area under the precision-recall curve of the same detector, with the misclassified (or "
     "out-of-distribution) points as positives; chance is their share of the points."),
    (r"(misclassification|OOD) FPR at 95% TPR", "FPR@95 (FPR at 95% TPR)",
     "The fraction of negatives flagged when the score's threshold is set to flag 95% of the "
     "positives. Lower is better."),
    ("quantile calibration error", "quantile calibration error",
     "Mean over central-interval levels q = 0.05, ..., 0.95 of |fraction of targets inside the "
     "central predictive interval of level q - q|."),
    ("calibration curve error", "calibration curve error",
     "Mean absolute gap between the observed and the expected frequency of the quantile "
     "calibration curve (fraction of targets below the predicted q-quantile, against q)."),
    ("PICP", "PICP (prediction interval coverage probability)",
     "Fraction of targets inside the central predictive interval of the stated level; ideal: "
     "the level."),
    ("ENCE", "ENCE (expected normalised calibration error)",
     "Points binned by predicted standard deviation (equal-width bins); mean over bins of "
     "|RMSE - root mean variance| / root mean variance."),
    ("CRPS", "CRPS (continuous ranked probability score)",
     "Mean over points of the integrated squared difference between the predictive CDF and the "
     "step at the target, in the target's units; lower is better."),
    ("Gaussian NLL", "Gaussian NLL",
     "Mean negative log-density of the targets under the Gaussian predictive, in nats."),
    ("sharpness", "sharpness", "Root mean predictive variance: how wide the predictions are."),
    ("RMSE", "RMSE", "Root mean squared error of the predictive mean."),
    ("conformal sets", "conformal sets",
     "The split conformal predictor: its score, miscoverage level alpha and number of "
     "calibration points n_cal."),
    ("conformal intervals", "conformal intervals",
     "The split conformal regressor: its score, alpha and n_cal."),
    ("conformal coverage", "conformal coverage",
     "Fraction of points whose conformal set (interval) contains the label; guaranteed at least "
     "1 - alpha on average over calibration splits, for data like the calibration split."),
    ("Gaussian coverage", "Gaussian coverage",
     "Coverage of the central Gaussian interval of the same level, for comparison."),
    ("mean set size", "mean set size", "Mean number of classes in a conformal set."),
    ("mean conformal interval width", "mean conformal interval width",
     "Mean width of the conformal intervals, in the target's units."),
    ("Gaussian mean width", "Gaussian mean width",
     "Mean width of the central Gaussian intervals of the same level."),
    ("lowest class coverage", "lowest class coverage",
     "The coverage of the worst-covered class (the guarantee is marginal, not per class)."),
    ("lowest std-bin coverage", "lowest std-bin coverage",
     "The coverage in the worst bin of points grouped by predicted standard deviation."),
    ("coverage by set size", "coverage by set size",
     "Coverage among the points whose set has each size (size: coverage, number of points)."),
)  # fmt: skip


def definition(label: str) -> tuple[str, str] | None:
    """``(term, definition)`` of a report row, or None when the glossary has none."""
    for pattern, term, text in GLOSSARY:
        if re.match(pattern, label):
            return term, text
    return None


# Figures are stored at twice the resolution they are shown at (sharp on high-density screens
# and when zoomed in) and shown at 96 px per inch of the figure's size.
_SHOWN_DPI, _STORED_DPI = 96, 192


def png_base64(figure: Any) -> str:
    """A matplotlib figure as a base64-encoded PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_STORED_DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _shown_width(figure: Any) -> int:
    return round(figure.get_figwidth() * _SHOWN_DPI)


def html_page(
    title: str,
    intro: str,
    rows: list[tuple[str, str]],
    figures: dict[str, Any],
    path: str | Path | None = None,
) -> str:
    """The page (escaped text, one table whose labels carry their definition as a tooltip, a
    glossary of the terms shown, the figures), written to ``path`` when given."""
    terms: dict[str, str] = {}
    cells = []
    for k, v in rows:
        found = definition(k)
        tip = f' title="{html.escape(found[1])}"' if found else ""
        if found:
            terms.setdefault(*found)
        cells.append(f"<tr><td{tip}>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>")
    table = "".join(cells)
    glossary = "".join(
        f"<dt>{html.escape(t)}</dt><dd>{html.escape(d)}</dd>" for t, d in terms.items()
    )
    images = "".join(
        f'<figure><img alt="{html.escape(t)}" width="{_shown_width(f)}" '
        f'src="data:image/png;base64,{png_base64(f)}">'
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for t, f in figures.items()
    )
    page = _PAGE.format(
        title=html.escape(title),
        intro=html.escape(intro),
        rows=table,
        images=images,
        glossary=glossary,
    )
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td {{ border-bottom: 1px solid #ddd; padding: 0.3em 1.2em 0.3em 0; }}
td:last-child {{ font-family: monospace; text-align: right; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }}
figcaption {{ text-align: center; color: #555; }}
img {{ max-width: 100%; height: auto; }}
td[title] {{ text-decoration: underline dotted #999; cursor: help; }}
dl {{ max-width: 60em; }}
dt {{ font-weight: bold; margin-top: 0.5em; }}
dd {{ margin-left: 1.5em; color: #333; }}
</style></head>
<body><h1>{title}</h1>
<p>{intro}</p>
<table>{rows}</table>
<p>Hover over a metric for its definition, or read <a href="#glossary">what the numbers
mean</a>.</p>
{images}
<h2 id="glossary">What the numbers mean</h2>
<dl>{glossary}</dl>
</body></html>
"""
