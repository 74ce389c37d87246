"""Opt-in download of the data sets the loaders read, with SHA-256 verification.

Nothing downloads unless asked: call :func:`download` or pass ``download=True`` to a loader.
Where each file comes from and the SHA-256 it must have are data, in ``sources.json`` beside
this module; :func:`sources` returns them. Each file records how its checksum was obtained
(``checked``):

* ``"published"``: the SHA-256 of the file at that URL as recorded by independent public
  sources (which pair it with the MD5 the data set's authors publish);
* ``"md5"``: the SHA-256 of a reference copy whose MD5 equals the MD5 published for that URL;
* ``"local"``: the SHA-256 of the reference copy the project tests with, taken from that URL's
  repository but not compared with a fresh download. If the remote file has changed since,
  the download fails with a checksum error instead of giving you different data.

``BAYESDROP_DATA_MIRROR`` (a URL prefix) fetches every file from ``<mirror>/<folder>/<path>``
instead, with the same checksums.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from bayesdrop._validation import check_choice, check_positive, fail
from bayesdrop.datasets._root import root_or_env

__all__ = ["MIRROR_ENV", "DataSource", "RemoteFile", "download", "sources"]

#: The environment variable that names a mirror (a URL prefix) :func:`download` fetches every
#: file from, instead of the sources' own addresses.
MIRROR_ENV = "BAYESDROP_DATA_MIRROR"
_CHECKED = ("published", "md5", "local")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: where it is read from, where it comes from, its checksum.

    Attributes
    ----------
    path : str
        Path relative to the data set's folder, as the loader reads it (``"data/data.txt"``).
    url : str
        Where :func:`download` fetches it.
    sha256 : str
        The hex SHA-256 digest the downloaded bytes must have.
    checked : {"published", "md5", "local"}
        How the checksum was obtained (see :doc:`/datasets`).
    """

    path: str
    url: str
    sha256: str
    checked: str = "local"


@dataclass(frozen=True)
class DataSource:
    """A downloadable data set: the folder it goes to under the data root, and its files.

    Attributes
    ----------
    name : str
        The name :func:`download` takes (``"ptb"``, ``"uci-yacht"``, ...).
    folder : str
        Folder under the data root that the loaders read (``"ptb"``, ``"uci/yacht"``).
    files : tuple of RemoteFile
    description, homepage, licence : str
        What it is, where it is described, and its licence as stated by its source.
    """

    name: str
    folder: str
    files: tuple[RemoteFile, ...]
    description: str = ""
    homepage: str = ""
    licence: str = ""


def _load_registry() -> dict[str, DataSource]:
    raw = json.loads((Path(__file__).with_name("sources.json")).read_text(encoding="utf-8"))
    return {
        name: DataSource(
            name=name,
            folder=entry["folder"],
            files=tuple(RemoteFile(**f) for f in entry["files"]),
            description=entry.get("description", ""),
            homepage=entry.get("homepage", ""),
            licence=entry.get("licence", ""),
        )
        for name, entry in raw.items()
    }


_SOURCES = _load_registry()


def sources() -> dict[str, DataSource]:
    """The data sets :func:`download` knows, by name.

    Examples
    --------
    >>> from bayesdrop.datasets import sources
    >>> sorted(sources())
    ['fashion-mnist', 'mnist', 'notmnist', 'ptb', 'uci-concrete', 'uci-energy', 'uci-yacht']
    >>> ptb = sources()["ptb"]
    >>> ptb.folder, [f.path for f in ptb.files], {f.checked for f in ptb.files}
    ('ptb', ['ptb.train.txt', 'ptb.valid.txt', 'ptb.test.txt'], {'md5'})
    """
    return dict(_SOURCES)


_SCHEMES = ("https://", "http://", "file://")


def _check_path(label: str, value: object, *, plain: bool = False) -> str:
    """A relative POSIX path of plain components (one component when ``plain``): no absolute
    path, no drive, no backslash, no ``..``, ``.`` or empty component."""
    what = "a plain name (no path separators)" if plain else "a relative path inside the folder"
    if not isinstance(value, str):
        fail(label, what, type(value).__name__, type_error=True)
    parts = value.split("/")
    if (
        not value
        or "\\" in value
        or "\0" in value
        or value.startswith("/")
        or PureWindowsPath(value).drive
        or any(part in ("", ".", "..") for part in parts)
        or (plain and len(parts) > 1)
    ):
        fail(
            label,
            what + " without '..', '.', empty parts or backslashes",
            repr(value),
            "Downloads are written only inside root/<folder>.",
        )
    return value


def _check_source(src: DataSource) -> None:
    _check_path("name", src.name, plain=True)
    _check_path(f"{src.name}: folder", src.folder)
    seen: set[str] = set()
    for f in src.files:
        if not isinstance(f, RemoteFile):
            fail(f"{src.name}: files", "RemoteFile entries", type(f).__name__, type_error=True)
        path = _check_path(f"{src.name}: path", f.path)
        if path in seen:
            fail(f"{src.name}: path", "distinct file paths", f"{path!r} twice")
        seen.add(path)
        check_choice("checked", f.checked, _CHECKED)
        if not isinstance(f.url, str) or not f.url.startswith(_SCHEMES):
            fail(f"{src.name}/{path}: url", "an http(s):// or file:// URL", repr(f.url))
        if not isinstance(f.sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", f.sha256):
            fail(f"{src.name}/{path}: sha256", "64 lower-case hex digits", repr(f.sha256))


def _resolve_source(source: str | DataSource) -> DataSource:
    if isinstance(source, DataSource):
        _check_source(source)
        return source
    if not isinstance(source, str) or source not in _SOURCES:
        fail(
            "source",
            f"one of {', '.join(repr(n) for n in _SOURCES)} or a DataSource",
            repr(source),
        )
    _check_source(_SOURCES[source])
    return _SOURCES[source]


def _inside(folder: Path, path: str, label: str) -> Path:
    """``folder / path``, refused when, symbolic links resolved, it lies outside ``folder``."""
    base = folder.resolve()
    destination = (base / path).resolve()
    if not destination.is_relative_to(base):
        fail(
            label,
            f"a file inside {base}",
            f"{destination} (a symbolic link leads outside)",
            "Downloads are written only inside root/<folder>; remove the link.",
        )
    return destination


def _target_root(root: str | os.PathLike[str] | None) -> Path:
    return root_or_env(
        root, "the folder to download into", "Pass root=... or export BAYESDROP_DATA=/path/to/data."
    )


def _fetch(url: str, destination: Path, expected: str, label: str, timeout: float) -> None:
    """Stream ``url`` into ``destination`` if its SHA-256 is ``expected``; keep no bad file."""
    partial = destination.with_name(destination.name + ".part")
    partial.unlink(missing_ok=True)  # a stale partial file, or a link placed there: not followed
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except ValueError as exc:  # a URL urllib cannot parse (http.client.InvalidURL, ...)
        partial.unlink(missing_ok=True)
        fail(label, "a URL that can be fetched", f"{url!r} ({exc})")
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OSError(
            f"bayesdrop: could not download {url} ({exc}). Check the connection, set "
            f"{MIRROR_ENV} to a mirror, or place the file at {destination} yourself "
            "(see the 'Data sets' page of the bayesdrop documentation)."
        ) from exc
    if digest.hexdigest() != expected:
        partial.unlink()
        fail(
            label,
            f"a file with SHA-256 {expected}",
            f"a download from {url} with SHA-256 {digest.hexdigest()}",
            "The file was not kept. The source may have changed or the download was corrupted: "
            "try again, or get the file as described on the 'Data sets' page of the bayesdrop "
            "documentation.",
        )
    os.replace(partial, destination)


def download(
    source: str | DataSource,
    root: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    timeout: float = 60.0,
    progress: Callable[[str], None] | None = print,
) -> Path:
    """Download a data set into ``root/<folder>``, verifying every file's SHA-256.

    Files already present are kept as they are (a copy you placed yourself may differ byte for
    byte, e.g. a re-compressed archive); only missing files are fetched, unless ``force``.
    A download is written next to its target and moved into place only when its checksum
    matches, so a failed or corrupted download never leaves a file the loaders would read.

    Parameters
    ----------
    source : str or DataSource
        A name from :func:`sources` (``"fashion-mnist"``, ``"mnist"``, ``"notmnist"``,
        ``"ptb"``, ``"uci-concrete"``, ``"uci-energy"``, ``"uci-yacht"``) or your own
        :class:`DataSource`.
    root : path, optional
        The data root (created if needed); defaults to ``BAYESDROP_DATA``. The loaders read
        the same root.
    force : bool, default False
        Fetch every file again, also those already present.
    timeout : float, default 60
        Seconds to wait for the server, per request.
    progress : callable or None, default print
        Called with one line per file fetched; ``None`` for silence.

    Returns
    -------
    pathlib.Path
        The data set's folder, ``root/<folder>``.

    Nothing is written outside ``root/<folder>``: a :class:`DataSource`'s ``name`` must be a
    plain name, its ``folder`` and every file's ``path`` relative POSIX paths without ``..``,
    ``.``, empty parts, backslashes or drives, and a file whose path leads outside the folder
    through a symbolic link is refused. URLs are ``http(s)://`` or ``file://``.

    Raises
    ------
    BayesdropValueError
        For an unknown name, no root, a name or path that would leave ``root/<folder>``, or a
        file whose SHA-256 does not match (the file is not kept).
    OSError
        If a file cannot be fetched (no connection, HTTP error); the message names it.

    Examples
    --------
    Nothing below touches the network: every file of this source is already present.

    >>> import tempfile
    >>> from pathlib import Path, PureWindowsPath
    >>> from bayesdrop.datasets import DataSource, RemoteFile, download
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "toy").mkdir()
    >>> _ = (root / "toy" / "a.txt").write_text("hello")
    >>> file = RemoteFile("a.txt", "https://example.org/a.txt", sha256="0" * 64)
    >>> toy = DataSource("toy", "toy", (file,))
    >>> download(toy, root, progress=None) == root / "toy"
    True
    """
    src = _resolve_source(source)
    timeout = check_positive("timeout", timeout)
    if progress is not None and not callable(progress):
        fail("progress", "a callable or None", type(progress).__name__, type_error=True)
    folder = _target_root(root) / src.folder
    mirror = os.environ.get(MIRROR_ENV, "").rstrip("/")
    if mirror and not mirror.startswith(_SCHEMES):
        fail(MIRROR_ENV, "an http(s):// or file:// URL prefix", repr(mirror))
    folder.mkdir(parents=True, exist_ok=True)
    for f in src.files:
        destination = _inside(folder, f.path, f"{src.name}/{f.path}")
        if destination.is_file() and not force:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        url = f"{mirror}/{src.folder}/{f.path}" if mirror else f.url
        if progress is not None:
            progress(f"bayesdrop: downloading {src.name}/{f.path} from {url}")
        _fetch(url, destination, f.sha256, f"{src.name}/{f.path}", timeout)
    return folder
