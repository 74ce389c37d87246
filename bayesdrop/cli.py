"""The ``bayesdrop`` command line.

``bayesdrop report PREDICTIONS.npz --out report.html`` reads a ``.npz`` file (``numpy.savez``)
holding either a classifier's ``probs (N, ..., C)`` or MC ``samples (S, N, ..., C)`` with integer
``target (N, ...)`` and optionally ``ood_scores``, or a regressor's ``mean``, ``std`` and
``target``. It prints the summary and writes the report as HTML, Markdown or JSON
(``--format``). Every error is one line on stderr and exit status 1 (2 for bad options), never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bayesdrop._validation import fail
from bayesdrop.calibration import CalibrationReport, RegressionReport
from bayesdrop.calibration.report import Layout
from bayesdrop.exceptions import BayesdropError

__all__ = ["main"]

_SUFFIX = {"html": ".html", "md": ".md", "json": ".json"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesdrop", description="bayesdrop command line tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser(
        "report",
        help="calibration report of saved predictions",
        description=(
            "Calibration report of saved predictions. PREDICTIONS.npz holds a classifier's "
            "`probs` (N, C) or (N, ..., C) with the classes last, or `samples` (S, N, ..., C), "
            "with integer `target` (N, ...) and optionally `ood_scores`: the same uncertainty "
            "score on out-of-distribution inputs; or a regressor's `mean`, `std` and `target`."
        ),
    )
    report.add_argument("predictions", type=Path, help="a .npz file (numpy.savez)")
    report.add_argument(
        "--out", type=Path, default=None, help="output path (default: report.html / .md / .json)"
    )
    report.add_argument(
        "--format",
        choices=["html", "md", "json"],
        default=None,
        help="format of --out (default: from its suffix, else html)",
    )
    report.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")
    report.add_argument("--markdown", type=Path, default=None, help="also write a Markdown table")
    report.add_argument("--num-bins", type=int, default=15, help="bins (default 15)")
    report.add_argument(
        "--ignore-index", type=int, default=None, help="drop points with this label (e.g. 255)"
    )
    report.add_argument(
        "--uncertainty",
        default="predictive_entropy",
        choices=["predictive_entropy", "mutual_information", "max_probability"],
        help="uncertainty score for misclassification / OOD detection",
    )
    report.add_argument("--name", default=None, help="model name shown in the report")
    return parser


def _load(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a .npz file; every way it can be unreadable is a BayesdropError."""
    if path.is_dir():
        fail("predictions", "a .npz file", f"the folder {path}")
    if not path.is_file():
        fail("predictions", "an existing .npz file", str(path))
    with path.open("rb") as handle:
        magic = handle.read(6)
    if magic.startswith(b"\x93NUMPY"):
        fail(
            "predictions",
            "a .npz file of named arrays",
            f"{path}, a single-array .npy file",
            "Save with numpy.savez(path, probs=..., target=...).",
        )
    if not magic.startswith(b"PK"):
        got = "an empty file" if not magic else f"{path}, which is not a zip archive"
        fail("predictions", "a .npz file (numpy.savez)", got)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        reason = "arrays of Python objects" if "pickle" in str(error).lower() else "damaged"
        fail(
            "predictions",
            "a readable .npz file of numeric arrays",
            f"{path} ({reason}: {type(error).__name__})",
            "Write it again with numpy.savez.",
        )


def _check_out(out: Path) -> None:
    if out.is_dir():
        fail("--out", "a file path", f"the folder {out}", f"Name a file, e.g. {out / 'report'}.")
    if not out.parent.is_dir():
        fail("--out", "a path in an existing folder", str(out), f"Create {out.parent} first.")


def _build(arrays: dict[str, np.ndarray], args: argparse.Namespace) -> Any:
    name = args.name or args.predictions.stem
    keys = sorted(arrays)
    if "mean" in arrays or "std" in arrays:
        if not {"mean", "std", "target"} <= set(arrays):
            fail("predictions", "a .npz file with `mean`, `std` and `target`", f"arrays {keys}")
        return RegressionReport.from_predictions(
            arrays["mean"], arrays["std"], arrays["target"], num_bins=args.num_bins, name=name
        )
    if ("probs" in arrays) == ("samples" in arrays) or "target" not in arrays:
        fail(
            "predictions",
            "a .npz file holding `target` and exactly one of `probs` or `samples`",
            f"arrays {keys}",
            "Save them with numpy.savez(path, probs=..., target=...).",
        )
    layout: Layout = "probs" if "probs" in arrays else "samples"
    return CalibrationReport.from_predictions(
        arrays[layout],
        arrays["target"],
        layout=layout,
        ignore_index=args.ignore_index,
        ood_scores=arrays.get("ood_scores"),
        uncertainty=args.uncertainty,
        num_bins=args.num_bins,
        name=name,
    )


def _report(args: argparse.Namespace) -> None:
    fmt = args.format
    if fmt is None:
        suffix = "" if args.out is None else args.out.suffix.lower()
        fmt = {".md": "md", ".json": "json"}.get(suffix, "html")
    out = args.out if args.out is not None else Path("report" + _SUFFIX[fmt])
    for path in (out, args.json, args.markdown):
        if path is not None:
            _check_out(path)
    report = _build(_load(args.predictions), args)
    print(report.summary())
    out.write_text(report.render(fmt), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    for path, extra in ((args.json, "json"), (args.markdown, "md")):
        if path is not None:
            path.write_text(report.render(extra), encoding="utf-8")
            print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesdrop`` console script; returns the exit status.

    Examples
    --------
    >>> import contextlib
    >>> import sys
    >>> from bayesdrop.cli import main
    >>> with contextlib.redirect_stderr(sys.stdout):  # errors go to stderr, one line
    ...     status = main(["report", "missing.npz"])
    bayesdrop report: error: Expected `predictions` to be an existing .npz file, but got ...
    >>> status
    1
    """
    args = _parser().parse_args(argv)
    try:
        _report(args)
    except (BayesdropError, OSError) as error:
        print(f"bayesdrop report: error: {error}", file=sys.stderr)
        return 1
    return 0
