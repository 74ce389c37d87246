"""Put MathJax into ``docs/_static/mathjax`` so the built docs render math without the internet.

The files come from the npm registry's ``mathjax`` package (pinned version, its published
SHA-512 checked) through the ``npm`` client, and are not committed (``docs/.gitignore``).
``docs/conf.py`` runs this when the copy is missing; ``make docs`` runs it explicitly first.

Usage::

    python docs/_tools/fetch_mathjax.py              # fetch with npm (once; a no-op afterwards)
    python docs/_tools/fetch_mathjax.py PATH.tgz     # use a tarball fetched elsewhere
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.2.2"
# `npm view mathjax@3.2.2 dist.integrity`
INTEGRITY = (
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/"
    "O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
TARGET = Path(__file__).resolve().parents[1] / "_static" / "mathjax"
ENTRY = "tex-mml-chtml.js"  # the combined component Sphinx's default configuration loads
_PREFIX = "package/es5/"


def is_current(target: Path = TARGET) -> bool:
    """Whether ``target`` holds this script's MathJax version."""
    stamp = target / ".version"
    return (target / ENTRY).is_file() and stamp.is_file() and stamp.read_text() == VERSION


def _integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _npm_pack(folder: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "fetch_mathjax: npm not found. Install Node.js and npm (Debian: apt-get install npm), "
            "or pass a mathjax-3.2.2.tgz fetched elsewhere as the first argument."
        )
    print(f"fetch_mathjax: fetching mathjax@{VERSION} from the npm registry", flush=True)
    subprocess.run(
        [npm, "pack", f"mathjax@{VERSION}", "--pack-destination", str(folder), "--silent"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return folder / f"mathjax-{VERSION}.tgz"


def install(tarball: Path, target: Path = TARGET) -> int:
    """Check ``tarball`` against :data:`INTEGRITY`, unpack its ``es5/`` folder into ``target``."""
    got = _integrity(tarball)
    if got != INTEGRITY:
        raise SystemExit(f"fetch_mathjax: {tarball} has checksum {got}, expected {INTEGRITY}")
    if target.exists():
        shutil.rmtree(target)
    count = 0
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            relative = member.name[len(_PREFIX) :]
            if not member.isfile() or not member.name.startswith(_PREFIX):
                continue
            destination = (target / relative).resolve()
            if target.resolve() not in destination.parents:
                raise SystemExit(f"fetch_mathjax: unsafe path in the archive: {member.name}")
            destination.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            destination.write_bytes(source.read())
            count += 1
    (target / ".version").write_text(VERSION)
    return count


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv and is_current():
        print(f"fetch_mathjax: MathJax {VERSION} already in {TARGET}", flush=True)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(argv[0]) if argv else _npm_pack(Path(tmp))
        count = install(tarball)
    print(f"fetch_mathjax: MathJax {VERSION} ({count} files) in {TARGET}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
