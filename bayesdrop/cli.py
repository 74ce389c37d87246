"""The ``bayesdrop`` command line.

``bayesdrop report PREDICTIONS.npz --out report.html`` reads arrays ``probs (N, C)`` or
``samples (S, N, C)``, ``target (N,)`` and optionally ``ood_scores (M,)`` from a ``.npz`` file,
prints the calibration summary and writes a self-contained HTML report (and JSON / Markdown
when asked).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bayesdrop._validation import fail
from bayesdrop.calibration import CalibrationReport
from bayesdrop.exceptions import BayesdropError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesdrop", description="bayesdrop command line tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser(
        "report",
        help="calibration report of saved predictions",
        description=(
            "Calibration report of a classifier's saved predictions. PREDICTIONS.npz holds "
            "`probs` (N, C) or `samples` (S, N, C), `target` (N,) and optionally "
            "`ood_scores` (M,): the same uncertainty score computed on out-of-distribution inputs."
        ),
    )
    report.add_argument("predictions", type=Path, help="a .npz file (numpy.savez)")
    report.add_argument("--out", type=Path, default=Path("report.html"), help="HTML output path")
    report.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")
    report.add_argument("--markdown", type=Path, default=None, help="also write a Markdown table")
    report.add_argument("--num-bins", type=int, default=15, help="equal-width bins (default 15)")
    report.add_argument(
        "--uncertainty",
        default="predictive_entropy",
        choices=["predictive_entropy", "mutual_information", "max_probability"],
        help="uncertainty score for misclassification / OOD detection",
    )
    report.add_argument("--name", default=None, help="model name shown in the report")
    return parser


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected `predictions` to be an existing .npz file, but got {path}."
        )
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if ("probs" in arrays) == ("samples" in arrays) or "target" not in arrays:
        fail(
            "predictions",
            "a .npz file holding `target` and exactly one of `probs` or `samples`",
            f"arrays {sorted(arrays)}",
            "Save them with numpy.savez(path, probs=..., target=...).",
        )
    return arrays


def _report(args: argparse.Namespace) -> None:
    arrays = _load(args.predictions)
    layout = "probs" if "probs" in arrays else "samples"
    report = CalibrationReport.from_predictions(
        arrays[layout],
        arrays["target"],
        layout=layout,
        ood_scores=arrays.get("ood_scores"),
        uncertainty=args.uncertainty,
        num_bins=args.num_bins,
        name=args.name or args.predictions.stem,
    )
    print(report.summary())
    report.to_html(args.out)
    print(f"wrote {args.out}")
    if args.json is not None:
        args.json.write_text(report.to_json(indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    if args.markdown is not None:
        args.markdown.write_text(report.to_markdown(), encoding="utf-8")
        print(f"wrote {args.markdown}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesdrop`` console script; returns the exit status.

    Examples
    --------
    >>> main(["report", "missing.npz"])
    error: Expected `predictions` to be an existing .npz file, but got missing.npz.
    1
    """
    args = _parser().parse_args(argv)
    try:
        _report(args)
    except (BayesdropError, OSError, ValueError) as error:
        message = error.args[0] if error.args else str(error)
        print(f"error: {message}", file=sys.stdout)
        return 1
    return 0
