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
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bayesdrop._validation import check_choice, fail
from bayesdrop.datasets._root import root_or_env

__all__ = ["MIRROR_ENV", "DataSource", "RemoteFile", "download", "sources"]

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


def _resolve_source(source: str | DataSource) -> DataSource:
    if isinstance(source, DataSource):
        for f in source.files:
            check_choice("checked", f.checked, _CHECKED)
        return source
    if not isinstance(source, str) or source not in _SOURCES:
        fail(
            "source",
            f"one of {', '.join(repr(n) for n in _SOURCES)} or a DataSource",
            repr(source),
        )
    return _SOURCES[source]


def _target_root(root: str | os.PathLike[str] | None) -> Path:
    return root_or_env(
        root, "the folder to download into", "Pass root=... or export BAYESDROP_DATA=/path/to/data."
    )


def _fetch(url: str, destination: Path, expected: str, label: str, timeout: float) -> None:
    """Stream ``url`` into ``destination`` if its SHA-256 is ``expected``; keep no bad file."""
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
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

    Raises
    ------
    BayesdropValueError
        For an unknown name, no root, or a file whose SHA-256 does not match (the file is
        not kept).
    OSError
        If a file cannot be fetched (no connection, HTTP error); the message names it.

    Examples
    --------
    Nothing below touches the network: every file of this source is already present.

    >>> import tempfile
    >>> from pathlib import Path
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
    folder = _target_root(root) / src.folder
    mirror = os.environ.get(MIRROR_ENV, "").rstrip("/")
    for f in src.files:
        destination = folder / f.path
        if destination.is_file() and not force:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        url = f"{mirror}/{src.folder}/{f.path}" if mirror else f.url
        if progress is not None:
            progress(f"bayesdrop: downloading {src.name}/{f.path} from {url}")
        _fetch(url, destination, f.sha256, f"{src.name}/{f.path}", timeout)
    return folder
