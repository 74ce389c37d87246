"""Where data sets live, and the smoke-mode switch of tutorials and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

from bayesdrop._validation import fail

__all__ = [
    "DATA_ENV",
    "SMOKE_ENV",
    "as_path",
    "data_root",
    "missing_data_hint",
    "require_file",
    "smoke_mode",
]

#: The environment variable that names the data folder, read when a loader gets no ``root``.
DATA_ENV = "BAYESDROP_DATA"
#: The environment variable that, set to a true value, makes the tutorials train briefly
#: (:func:`smoke_mode`).
SMOKE_ENV = "BAYESDROP_SMOKE"


def smoke_mode() -> bool:
    """True when ``BAYESDROP_SMOKE`` is set to a true value (tutorials then train briefly).

    Examples
    --------
    >>> import os
    >>> from bayesdrop.datasets import smoke_mode
    >>> os.environ["BAYESDROP_SMOKE"] = "0"
    >>> smoke_mode()
    False
    """
    return os.environ.get(SMOKE_ENV, "0").strip().lower() not in ("", "0", "false", "no")


def missing_data_hint(source: str | None = None) -> str:
    """The fix appended to every missing-data error: where to read how to get the data."""
    get = (
        f"To get it: bayesdrop.datasets.download({source!r}, root) fetches it with checksums "
        "verified (or pass download=True to the loader). "
        if source
        else ""
    )
    return (
        f"{get}The 'Data sets' page of the bayesdrop documentation lists every data set's "
        "layout, source and licence."
    )


def as_path(name: str, value: object) -> Path:
    """``value`` as a path: a ``str`` or ``os.PathLike``, else a bayesdrop ``TypeError``."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, (str, os.PathLike)):
        fail(name, "a path (str or os.PathLike)", type(value).__name__, type_error=True)
    return Path(value).expanduser()


def root_or_env(root: str | os.PathLike[str] | None, expected: str, fix: str) -> Path:
    """``root``, else the ``BAYESDROP_DATA`` environment variable, as a path; a ValueError
    naming ``expected`` (what the folder is for) and ``fix`` when neither is set."""
    if root is None:
        root = os.environ.get(DATA_ENV) or None
    if root is None:
        wanted = f"{expected} (argument or the {DATA_ENV} environment variable)"
        fail("root", wanted, "neither", fix)
    return as_path("root", root)


def data_root(
    root: str | os.PathLike[str] | None = None,
    name: str | None = None,
    *,
    source: str | None = None,
) -> Path:
    """Resolve the folder of a data set.

    ``root`` wins; else the ``BAYESDROP_DATA`` environment variable. With ``name``, the
    sub-folder ``root/name`` is returned when it exists, else ``root`` itself (so ``root`` may
    point at the data set's own folder). ``source`` names the downloadable data set that the
    error messages suggest.

    Raises
    ------
    ValueError
        If neither is given, or the folder does not exist.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bayesdrop.datasets import data_root
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "ptb").mkdir()
    >>> data_root(root, "ptb") == root / "ptb"
    True
    """
    path = root_or_env(
        root,
        "a data folder",
        "Pass root=... or export BAYESDROP_DATA=/path/to/data. " + missing_data_hint(source),
    )
    if not path.is_dir():
        fail("root", "an existing folder", str(path), missing_data_hint(source))
    if name is not None and (path / name).is_dir():
        path = path / name
    return path


def require_file(folder: Path, filename: str, source: str | None = None) -> Path:
    """``folder / filename``, or a ValueError that names the missing file and how to get it."""
    path = folder / filename
    if not path.is_file():
        fail(
            "root",
            f"a folder containing {filename!r}",
            f"{folder} without it",
            "Point root (or BAYESDROP_DATA) at the folder that holds the data set's files. "
            + missing_data_hint(source),
        )
    return path
