"""The ``bayesdrop`` command line.

``bayesdrop report PREDICTIONS.npz --out report.html`` reads a ``.npz`` file (``numpy.savez``)
holding either a classifier's ``probs (N, ..., C)`` or MC ``samples (S, N, ..., C)`` with integer
``target (N, ...)`` and optionally ``ood_scores``, or a regressor's ``mean``, ``std`` and
``target``. It prints the summary and writes the report as HTML, Markdown or JSON
(``--format``).

Every error is one paragraph on stderr and exit status 1 (2 for bad options, as argparse
reports them), never a traceback; an unexpected error says it is a bug of bayesdrop.

What the file may hold:

* Array headers are read before any array is allocated: an array whose declared size exceeds
  what its zip member holds, or :data:`MAX_ARRAY_BYTES` (16 GiB), is refused.
* Big-endian arrays are read in the native byte order; unsigned integers become ``int64``
  (a ``uint64`` above ``2**63 - 1`` is an error); boolean labels are 0 and 1.
* String labels are mapped to class indices only through a ``classes`` array in the same file
  (the ``C`` class names in the order of the probabilities' last axis); without it they are an
  error, as a guessed order (e.g. sorted names) would silently mislabel the classes. Datetime,
  complex, structured and object arrays are errors.
* File names that are not valid UTF-8 are printed with their bytes escaped (``\\xff``).
* ``--out``, ``--json`` and ``--markdown`` must be distinct files and none of them the input.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from bayesdrop._validation import fail
from bayesdrop.calibration import CalibrationReport, RegressionReport
from bayesdrop.calibration._report import Layout
from bayesdrop.exceptions import BayesdropError

__all__ = ["MAX_ARRAY_BYTES", "main"]

#: The largest array, in bytes, the command line loads from a file (16 GiB): a larger one is
#: refused before it is read.
MAX_ARRAY_BYTES = 16 * 2**30
"""The largest array (in bytes, as its header declares it) that ``bayesdrop report`` reads."""

_SUFFIX = {"html": ".html", "md": ".md", "json": ".json"}
_INT64 = (-(2**63), 2**63 - 1)


def _text(value: object) -> str:
    """``value`` as printable text: bytes of a non-UTF-8 file name (kept by Python as lone
    surrogates) become ``\\xff`` escapes instead of an encoding error."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _say(message: str, stream: Any = None) -> None:
    stream = sys.stderr if stream is None else stream
    text = _text(message)
    try:
        print(text, file=stream)
    except UnicodeEncodeError:  # a stream that cannot encode the text (e.g. ASCII)
        encoding = getattr(stream, "encoding", None) or "ascii"
        print(text.encode(encoding, "backslashreplace").decode(encoding), file=stream)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """As argparse's (usage, message, exit status 2), with the message made printable."""
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {_text(message)}\n")


def _int64(text: str) -> int:
    value = int(text)
    if not _INT64[0] <= value <= _INT64[1]:
        raise argparse.ArgumentTypeError(f"{text} does not fit in a 64-bit integer")
    return value


def _parser() -> argparse.ArgumentParser:
    from bayesdrop import __version__

    parser = _Parser(prog="bayesdrop", description="bayesdrop command line tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    report = sub.add_parser(
        "report",
        help="calibration report of saved predictions",
        description=(
            "Calibration report of saved predictions. PREDICTIONS.npz holds a classifier's "
            "`probs` (N, C) or (N, ..., C) with the classes last, or `samples` (S, N, ..., C), "
            "with integer `target` (N, ...) and optionally `ood_scores`: the same uncertainty "
            "score on out-of-distribution inputs; or a regressor's `mean`, `std` and `target`. "
            "String labels need `classes`: the C class names in the order of the last axis."
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
        "--ignore-index", type=_int64, default=None, help="drop points with this label (e.g. 255)"
    )
    report.add_argument(
        "--uncertainty",
        default="predictive_entropy",
        choices=["predictive_entropy", "mutual_information", "max_probability"],
        help="uncertainty score for misclassification / OOD detection",
    )
    report.add_argument("--name", default=None, help="model name shown in the report (as text)")
    return parser


def _check_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> None:
    """Read one member's .npy header and refuse what must not be allocated or unpickled."""
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as fp:
        try:
            version = np.lib.format.read_magic(fp)
        except ValueError:
            fail("predictions", "a .npz file of numpy arrays", f"{path} whose `{name}` is not one")
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            fail("predictions", "a .npz file of .npy format 1.0 or 2.0", f"{version} in {path}")
        held = info.file_size - fp.tell()
    if dtype.hasobject:
        fail(
            "predictions",
            "a readable .npz file of numeric arrays",
            f"{path} (arrays of Python objects: `{name}`)",
            "Write it again with numpy.savez from numeric arrays.",
        )
    declared = math.prod(shape) * dtype.itemsize
    if declared > held:
        fail(
            "predictions",
            "a .npz file whose arrays fit in it",
            f"`{name}` of shape {shape} ({declared:,} bytes) in a member of {held:,} bytes",
            "The file is truncated or damaged; write it again with numpy.savez.",
        )
    if declared > MAX_ARRAY_BYTES:
        fail(
            "predictions",
            f"arrays of at most {MAX_ARRAY_BYTES:,} bytes",
            f"`{name}` of shape {shape} ({declared:,} bytes)",
            "Report on a subset of the points.",
        )


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
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                _check_header(archive, info, path)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        if isinstance(error, BayesdropError):
            raise
        reason = "arrays of Python objects" if "pickle" in str(error).lower() else "damaged"
        fail(
            "predictions",
            "a readable .npz file of numeric arrays",
            f"{path} ({reason}: {type(error).__name__})",
            "Write it again with numpy.savez.",
        )


def _numeric(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` in the native byte order, unsigned integers as ``int64``, booleans as 0/1."""
    kind = array.dtype.kind
    if kind not in "biuf":
        what = {"U": "strings", "S": "strings", "M": "dates", "m": "time spans", "c": "complex"}
        fail(
            name,
            "an array of real numbers",
            f"{what.get(kind, 'values')} of dtype {array.dtype}",
            "Save numbers (class indices for `target`).",
            type_error=True,
        )
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if kind == "u" and array.dtype.itemsize == 8 and array.size and array.max() > _INT64[1]:
        fail(name, "values that fit in int64", f"a maximum of {int(array.max())}")
    if kind in "bu":
        array = array.astype(np.int64)
    return array


def _string_labels(target: np.ndarray, arrays: dict[str, np.ndarray], num_classes: int) -> Any:
    """String labels as indices into the file's ``classes`` (the C names in order)."""
    if "classes" not in arrays:
        fail(
            "target",
            "integer class labels, or strings with a `classes` array naming the classes",
            f"strings of dtype {target.dtype} and no `classes`",
            f"Save classes=np.array([...]) with the {num_classes} class names in the order of "
            "the probabilities' last axis, or integer labels.",
            type_error=True,
        )
    classes = arrays["classes"]
    if classes.dtype.kind not in "US" or classes.shape != (num_classes,):
        got = f"dtype {classes.dtype} and shape {classes.shape}"
        fail("classes", f"{num_classes} class names (strings), one per probability", got)
    classes, target = classes.astype(str), target.astype(str)
    if len(np.unique(classes)) != num_classes:
        fail("classes", "distinct class names", f"{classes.tolist()[:10]}")
    order = np.argsort(classes)
    pos = np.searchsorted(classes[order], target).clip(max=num_classes - 1)
    known = classes[order][pos] == target
    if not known.all():
        unknown = sorted(set(target[~known].tolist()))
        fail("target", "labels named in `classes`", f"{len(unknown)} unknown, e.g. {unknown[:3]}")
    return order[pos]


def _build(arrays: dict[str, np.ndarray], args: argparse.Namespace) -> Any:
    name = _text(args.name if args.name is not None else args.predictions.stem)
    keys = sorted(arrays)
    target = arrays.get("target")
    if "mean" in arrays or "std" in arrays:
        if not {"mean", "std", "target"} <= set(arrays):
            fail("predictions", "a .npz file with `mean`, `std` and `target`", f"arrays {keys}")
        mean, std, target = (_numeric(k, arrays[k]) for k in ("mean", "std", "target"))
        return RegressionReport.from_predictions(
            mean, std, target, num_bins=args.num_bins, name=name
        )
    if ("probs" in arrays) == ("samples" in arrays) or target is None:
        fail(
            "predictions",
            "a .npz file holding `target` and exactly one of `probs` or `samples`",
            f"arrays {keys}",
            "Save them with numpy.savez(path, probs=..., target=...).",
        )
    layout: Layout = "probs" if "probs" in arrays else "samples"
    predictions = _numeric(layout, arrays[layout])
    if target.dtype.kind in "US" and predictions.ndim:
        target = _string_labels(target, arrays, predictions.shape[-1])
    ood = arrays.get("ood_scores")
    return CalibrationReport.from_predictions(
        predictions,
        _numeric("target", target),
        layout=layout,
        ignore_index=args.ignore_index,
        ood_scores=None if ood is None else _numeric("ood_scores", ood),
        uncertainty=args.uncertainty,
        num_bins=args.num_bins,
        name=name,
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return a.resolve() == b.resolve()


def _check_outputs(args: argparse.Namespace, out: Path) -> None:
    """Every output is a file in an existing folder, none is the input, no two are the same."""
    named = (("--out", out), ("--json", args.json), ("--markdown", args.markdown))
    seen: list[tuple[str, Path]] = []
    for option, path in named:
        if path is None:
            continue
        if path.is_dir():
            fix = f"Name a file, e.g. {path / 'report'}."
            fail(option, "a file path", f"the folder {path}", fix)
        if not path.parent.is_dir():
            fail(option, "a path in an existing folder", str(path), f"Create {path.parent} first.")
        if _same_file(path, args.predictions):
            fail(
                option,
                "a file other than the predictions file",
                str(path),
                "Writing the report there would overwrite its input; choose another name.",
            )
        for other, earlier in seen:
            if _same_file(path, earlier):
                fail(option, f"a file other than that of {other}", str(path))
        seen.append((option, path))


def _report(args: argparse.Namespace) -> None:
    fmt = args.format
    if fmt is None:
        suffix = "" if args.out is None else args.out.suffix.lower()
        fmt = {".md": "md", ".json": "json"}.get(suffix, "html")
    out = args.out if args.out is not None else Path("report" + _SUFFIX[fmt])
    _check_outputs(args, out)
    report = _build(_load(args.predictions), args)
    _say(report.summary(), sys.stdout)
    out.write_text(report.render(fmt), encoding="utf-8")
    _say(f"wrote {out}")
    for path, extra in ((args.json, "json"), (args.markdown, "md")):
        if path is not None:
            path.write_text(report.render(extra), encoding="utf-8")
            _say(f"wrote {path}")


def _error(message: str) -> int:
    _say("bayesdrop report: error: " + " ".join(str(message).split()))
    return 1


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
        return _error(str(error))
    except MemoryError:
        return _error("Out of memory while computing the report. Report on a subset of the points.")
    except Exception as error:  # a bug of bayesdrop, not of the input: still no traceback
        return _error(
            f"{type(error).__name__}: {error}. This is a bug in bayesdrop, not in your file; "
            "please report it with the command you ran."
        )
    return 0
