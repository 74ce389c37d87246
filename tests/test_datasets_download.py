"""Opt-in download with SHA-256 verification, against a local HTTP server on 127.0.0.1.

The server (http.server in a thread) serves small fixture files that each test writes itself;
no test touches the internet, and a guard fails any request to another host.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bayesdrop import BayesdropValueError
from bayesdrop.datasets import (
    DataSource,
    RemoteFile,
    download,
    load_fashion_mnist,
    load_mnist,
    load_notmnist,
    load_ptb,
    load_uci,
    sources,
    write_idx,
)
from bayesdrop.datasets import _remote as remote_module


class _Server:
    """A static file server on 127.0.0.1 that records the paths it was asked for."""

    def __init__(self, directory: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:  # keep the test output clean
                pass

        handler = functools.partial(Handler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    folder = tmp_path / "served"
    folder.mkdir()
    with _Server(folder) as server:
        yield server, folder


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any request that is not for 127.0.0.1, and ignore a mirror set outside."""
    real = urllib.request.urlopen

    def guarded(url: str, *args: object, **kwargs: object):
        assert url.startswith("http://127.0.0.1:"), f"a test tried to reach {url}"
        return real(url, *args, **kwargs)

    monkeypatch.setattr(remote_module.urllib.request, "urlopen", guarded)
    monkeypatch.delenv(remote_module.MIRROR_ENV, raising=False)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _serve(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return _sha256(data)


def _source(
    server: _Server, folder: Path, files: dict[str, bytes], name: str = "toy"
) -> DataSource:
    entries = tuple(
        RemoteFile(path, f"{server.url}/{path}", _serve(folder, path, data))
        for path, data in files.items()
    )
    return DataSource(name=name, folder=name, files=entries)


def test_download_fetches_and_verifies(served, tmp_path):
    server, folder = served
    files = {"a.txt": b"alpha\n", "sub/b.bin": bytes(range(256)) * 10}
    lines: list[str] = []
    target = download(_source(server, folder, files), tmp_path / "root", progress=lines.append)
    assert target == tmp_path / "root" / "toy"
    for path, data in files.items():
        assert (target / path).read_bytes() == data
    assert not list(target.rglob("*.part"))
    assert sorted(server.requests) == ["/a.txt", "/sub/b.bin"]
    assert len(lines) == 2 and all(line.startswith("bayesdrop: downloading toy/") for line in lines)


def test_checksum_mismatch_keeps_no_file(served, tmp_path):
    server, folder = served
    _serve(folder, "a.txt", b"what the server has\n")
    wrong = _sha256(b"what the registry expects\n")
    source = DataSource("toy", "toy", (RemoteFile("a.txt", f"{server.url}/a.txt", wrong),))
    with pytest.raises(
        BayesdropValueError,
        match=(
            rf"Expected `toy/a.txt` to be a file with SHA-256 {wrong}, but got a download from "
            r".* with SHA-256 [0-9a-f]{64}\. The file was not kept"
        ),
    ):
        download(source, tmp_path, progress=None)
    assert list((tmp_path / "toy").iterdir()) == []


def test_existing_files_are_kept_unless_forced(served, tmp_path):
    server, folder = served
    source = _source(server, folder, {"a.txt": b"remote\n", "b.txt": b"second\n"})
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.txt").write_text("placed by hand\n")
    download(source, tmp_path, progress=None)
    assert server.requests == ["/b.txt"]
    assert (tmp_path / "toy" / "a.txt").read_text() == "placed by hand\n"
    download(source, tmp_path, progress=None, force=True)
    assert sorted(server.requests) == ["/a.txt", "/b.txt", "/b.txt"]
    assert (tmp_path / "toy" / "a.txt").read_text() == "remote\n"


def test_http_error_names_the_url_and_keeps_no_file(served, tmp_path):
    server, _ = served
    url = f"{server.url}/missing.txt"
    source = DataSource("toy", "toy", (RemoteFile("missing.txt", url, "0" * 64),))
    with pytest.raises(OSError, match=rf"could not download {re.escape(url)} .*404"):
        download(source, tmp_path, progress=None)
    assert list((tmp_path / "toy").iterdir()) == []


def test_mirror_replaces_the_url(served, tmp_path, monkeypatch):
    server, folder = served
    data = b"from the mirror\n"
    # The registry's URL points nowhere; the mirror serves <folder>/<path>.
    entry = RemoteFile("a.txt", "http://127.0.0.1:9/unreachable/a.txt", _sha256(data))
    _serve(folder, "toy/a.txt", data)
    monkeypatch.setenv(remote_module.MIRROR_ENV, server.url + "/")
    download(DataSource("toy", "toy", (entry,)), tmp_path, progress=None)
    assert server.requests == ["/toy/a.txt"]
    assert (tmp_path / "toy" / "a.txt").read_bytes() == data


def test_root_from_environment_and_errors(served, tmp_path, monkeypatch):
    server, folder = served
    source = _source(server, folder, {"a.txt": b"x"})
    monkeypatch.setenv("BAYESDROP_DATA", str(tmp_path / "env-root"))
    assert download(source, progress=None) == tmp_path / "env-root" / "toy"
    monkeypatch.delenv("BAYESDROP_DATA")
    with pytest.raises(
        BayesdropValueError, match=r"Expected `root` to be the folder to download into"
    ):
        download(source, progress=None)
    with pytest.raises(
        BayesdropValueError, match=r"Expected `source` to be one of 'fashion-mnist'"
    ):
        download("imagenet", tmp_path)
    bad = DataSource("toy", "toy", (RemoteFile("a", "u", "0" * 64, checked="trusted"),))
    with pytest.raises(BayesdropValueError, match=r"Expected `checked` to be one of 'published'"):
        download(bad, tmp_path)


# --- the loaders' download=True, with the registry pointed at fixture files ---------------------


def _register(
    monkeypatch, server: _Server, folder: Path, name: str, sub: str, files: dict[str, bytes]
):
    entries = []
    for path, data in files.items():
        entries.append(
            RemoteFile(path, f"{server.url}/{sub}/{path}", _serve(folder, f"{sub}/{path}", data))
        )
    monkeypatch.setitem(remote_module._SOURCES, name, DataSource(name, sub, tuple(entries)))


def _idx_gz(tmp_path: Path, array: np.ndarray) -> bytes:
    return write_idx(tmp_path / "fixture.gz", array).read_bytes()


def test_loaders_download_on_request(served, tmp_path, monkeypatch):
    server, folder = served
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 9], dtype=np.uint8)
    idx = {
        f"{split}-{kind}": _idx_gz(tmp_path, array)
        for split in ("train", "t10k")
        for kind, array in (("images-idx3-ubyte.gz", images), ("labels-idx1-ubyte.gz", labels))
    }
    _register(monkeypatch, server, folder, "fashion-mnist", "fashion-mnist", idx)
    _register(monkeypatch, server, folder, "notmnist", "notmnist", idx)
    csv = ",".join(["0"] * 784 + ["5"]).encode() + b"\n"
    import gzip

    mnist = {k: v for k, v in idx.items() if k.startswith("t10k")}
    _register(
        monkeypatch,
        server,
        folder,
        "mnist",
        "mnist",
        {**mnist, "train-5k.csv.gz": gzip.compress(csv)},
    )
    ptb = {"ptb.train.txt": b"a b\nb c\n", "ptb.valid.txt": b"c\n", "ptb.test.txt": b"a\n"}
    _register(monkeypatch, server, folder, "ptb", "ptb", ptb)
    uci = {
        "data/data.txt": b"1 2 3\n4 5 6\n7 8 9\n",
        "data/index_features.txt": b"0\n1\n",
        "data/index_target.txt": b"2\n",
        "data/index_train_0.txt": b"0\n1\n",
        "data/index_test_0.txt": b"2\n",
    }
    _register(monkeypatch, server, folder, "uci-yacht", "uci/yacht", uci)

    root = tmp_path / "root"
    x, y = load_fashion_mnist(root, split="test", download=True)
    assert x.shape == (2, 1, 28, 28) and y.tolist() == [3, 9]
    assert float(x[0, 0, 0, 1]) == pytest.approx(1 / 255)
    assert load_notmnist(root, download=True)[1].tolist() == [3, 9]
    assert load_mnist(root, split="train-5k", download=True)[1].tolist() == [5]
    assert load_ptb(root, download=True).vocab == ("a", "b", "<eos>", "c")
    ds = load_uci("yacht", root, download=True)
    assert ds.X.shape == (3, 2) and ds.y.tolist() == [3.0, 6.0, 9.0] and ds.num_splits == 1
    requested = len(server.requests)
    load_ptb(root, download=True)  # everything present: nothing fetched again
    assert len(server.requests) == requested
    with pytest.raises(
        BayesdropValueError,
        match=r"Expected `name` to be one of \['concrete', 'energy', 'yacht'\] for download=True",
    ):
        load_uci("boston", root, download=True)


def test_nothing_downloads_by_default_and_the_error_says_how(tmp_path, monkeypatch):
    def no_network(*args: object, **kwargs: object):
        raise AssertionError("a loader downloaded without download=True")

    monkeypatch.setattr(remote_module.urllib.request, "urlopen", no_network)
    monkeypatch.delenv("BAYESDROP_DATA", raising=False)
    (tmp_path / "ptb").mkdir()
    hint = r"To get it: bayesdrop.datasets.download\('{}', root\) fetches it.*'Data sets' page"
    with pytest.raises(
        BayesdropValueError, match=r"containing 'ptb.train.txt'.*" + hint.format("ptb")
    ):
        load_ptb(tmp_path)
    with pytest.raises(
        BayesdropValueError, match=r"t10k-images-idx3-ubyte.gz.*" + hint.format("notmnist")
    ):
        load_notmnist(tmp_path)
    with pytest.raises(
        BayesdropValueError,
        match=r"Expected `root` to be an existing folder.*" + hint.format("mnist"),
    ):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(
        BayesdropValueError, match=r"BAYESDROP_DATA.*" + hint.format("fashion-mnist")
    ):
        load_fashion_mnist()
    (tmp_path / "uci").mkdir()
    with pytest.raises(BayesdropValueError, match=r"Available: none.*" + hint.format("uci-energy")):
        load_uci("energy", tmp_path)


def test_registry_is_well_formed():
    registry = sources()
    assert set(registry) == {
        "fashion-mnist",
        "mnist",
        "notmnist",
        "ptb",
        "uci-concrete",
        "uci-energy",
        "uci-yacht",
    }
    for name, source in registry.items():
        assert source.name == name and source.description and source.licence and source.homepage
        paths = [f.path for f in source.files]
        assert len(paths) == len(set(paths))
        for f in source.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), (name, f.path)
            assert f.url.startswith(("https://", "http://")) and f.checked in (
                "published",
                "md5",
                "local",
            )
            assert ".." not in Path(f.path).parts and not Path(f.path).is_absolute()
    # every file a loader reads is in the registry, in the folder the loader reads
    images = {
        f"{s}-{k}-ubyte.gz" for s in ("train", "t10k") for k in ("images-idx3", "labels-idx1")
    }
    assert {f.path for f in registry["fashion-mnist"].files} == images
    assert {f.path for f in registry["mnist"].files} == {
        p for p in images if p.startswith("t10k")
    } | {"train-5k.csv.gz"}
    assert {f.path for f in registry["ptb"].files} == {
        f"ptb.{s}.txt" for s in ("train", "valid", "test")
    }
    for name in ("concrete", "energy", "yacht"):
        source = registry[f"uci-{name}"]
        paths = {f.path for f in source.files}
        assert source.folder == f"uci/{name}"
        assert {"data/data.txt", "data/index_features.txt", "data/index_target.txt"} <= paths
        assert {
            f"data/index_{kind}_{k}.txt" for kind in ("train", "test") for k in range(20)
        } <= paths


def test_registry_matches_the_reference_copies():
    """Where the project's reference data are present, they have the registered checksums
    (except Fashion-MNIST and MNIST's IDX files, whose reference copies were re-compressed)."""
    import os

    root = Path(os.environ.get("BAYESDROP_DATA", "../shared/data"))
    if not root.is_dir():
        pytest.skip("no reference data folder")
    checked = 0
    for source in sources().values():
        for f in source.files:
            path = root / source.folder / f.path
            if f.checked == "published" or not path.is_file():
                continue
            assert _sha256(path.read_bytes()) == f.sha256, path
            checked += 1
    assert checked >= 3
