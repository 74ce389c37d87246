"""Data-set files and download sources a hostile but realistic user hands over (issue 21): each
is a bayesdrop error naming the file or argument, what was expected and what was found."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from bayesdrop import BayesdropTypeError, BayesdropValueError
from bayesdrop.datasets import (
    PTB,
    DataSource,
    RemoteFile,
    batchify,
    bptt_batches,
    download,
    load_fashion_mnist,
    load_mnist,
    load_ptb,
    load_uci,
    read_idx,
    write_idx,
)
from bayesdrop.datasets import _remote as remote_module

# --- IDX image sets -----------------------------------------------------------------------------


def _image_set(root: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    write_idx(root / "t10k-images-idx3-ubyte.gz", images)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", labels)
    return root


IMAGES = np.zeros((2, 28, 28), np.uint8)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (
            IMAGES,
            np.array([1, 2, 3], np.uint8),
            r"Expected `t10k-labels-idx1-ubyte.gz` to be one label per image \(2 labels\), "
            r"but got 3 labels\. The images and labels files come from different",
        ),
        (IMAGES, np.array([[1, 2]], np.uint8), r"one label per image.*shape \(1, 2\) labels"),
        (
            IMAGES,
            np.array([3, 10], np.uint8),
            r"Expected `t10k-labels-idx1-ubyte.gz` to be class labels in \[0, 10\), but got "
            r"values in \[3, 10\]",
        ),
        (IMAGES, np.array([0.5, 1.0]), r"labels-idx1-ubyte.gz` to be whole class labels.*0.5"),
        (IMAGES, np.array([-1, 2], np.int8), r"class labels in \[0, 10\).*\[-1, 2\]"),
        (
            IMAGES.astype(np.float32),
            np.array([1, 2], np.uint8),
            r"Expected `t10k-images-idx3-ubyte.gz` to be grey images of shape \(N, height, "
            r"width\) and dtype uint8, but got shape \(2, 28, 28\) and dtype >f4",
        ),
    ],
)
def test_image_files_that_do_not_match(tmp_path, images, labels, message):
    _image_set(tmp_path, images, labels)
    with pytest.raises(BayesdropValueError, match=message):
        load_fashion_mnist(tmp_path, split="test")


def test_truncated_gzip_names_the_file(tmp_path):
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", np.arange(4000, dtype=np.uint8).reshape(4, -1))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        BayesdropValueError,
        match=r"Expected `x-idx3-ubyte.gz` to be a complete gzip file, but got .*x-idx3-ubyte.gz, "
        r"which is truncated or corrupt \(.*\)\. Download it again",
    ):
        read_idx(path)
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(BayesdropValueError, match=r"complete gzip file.*truncated or corrupt"):
        read_idx(path)


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (-10, r"with 2,390 bytes of data where its header declares shape \(3, 800\) \(2,400"),
        (6, r"with 6 bytes, fewer than its 2-D header needs"),
    ],
)
def test_truncated_idx_names_the_file(tmp_path, cut, message):
    path = write_idx(tmp_path / "x-idx2-ubyte", np.ones((3, 800), np.uint8))
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(
        BayesdropValueError,
        match=r"Expected `x-idx2-ubyte` to be a complete IDX file, but got .*" + message,
    ):
        read_idx(path)


def test_idx_with_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "x-idx1-ubyte", np.ones(5, np.uint8))
    path.write_bytes(path.read_bytes() + b"\0\0")
    with pytest.raises(BayesdropValueError, match=r"7 bytes of data where its header declares"):
        read_idx(path)


def test_write_idx_refuses_sizes_beyond_32_bits(tmp_path):
    with pytest.raises(BayesdropValueError, match=r"sizes below 2\*\*32.*\(4294967296, 0\)"):
        write_idx(tmp_path / "x", np.zeros((2**32, 0), np.uint8))


def _csv(root: Path, rows: list[list[object]] | str) -> Path:
    text = rows if isinstance(rows, str) else "".join(",".join(map(str, r)) + "\n" for r in rows)
    with gzip.open(root / "train-5k.csv.gz", "wt") as f:
        f.write(text)
    return root


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[0] * 784 + [2.5]], r"Expected `train-5k.csv.gz` to be whole class labels.*2.5"),
        ([[0] * 784 + [12]], r"`train-5k.csv.gz` to be class labels in \[0, 10\).*12"),
        ([[0] * 783 + [1]], r"rows of 784 pixel values and a label, but got 784 columns"),
        ([[300] * 784 + [1]], r"pixel values in \[0, 255\], but got values in \[300, 300\]"),
        ("", r"rows of 784 pixel values and a label, but got no rows"),
        ("a,b,c\n", r"Expected `train-5k.csv.gz` to be comma-separated numbers"),
    ],
)
def test_bad_csv(tmp_path, rows, message):
    _csv(tmp_path, rows)
    with pytest.raises(BayesdropValueError, match=message):
        load_mnist(tmp_path, split="train-5k")


def test_truncated_csv(tmp_path):
    path = _csv(tmp_path, [[0] * 784 + [1]] * 50) / "train-5k.csv.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(BayesdropValueError, match=r"train-5k.csv.gz` to be a complete gzip file"):
        load_mnist(tmp_path, split="train-5k")


# --- Penn Treebank ------------------------------------------------------------------------------


def _ptb(root: Path, **texts: bytes) -> Path:
    files = {"train": b"a b\nb c\n", "valid": b"c a\n", "test": b"b\n", **texts}
    for split, data in files.items():
        (root / f"ptb.{split}.txt").write_bytes(data)
    return root


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ({"valid": b""}, r"Expected `ptb.valid.txt` to be a file of sentences, but got .*an empty"),
        ({"train": b"\n\n  \n"}, r"`ptb.train.txt` to be a file of sentences.*blank lines only"),
        ({"test": b"caf\xe9\n"}, r"`ptb.test.txt` to be UTF-8 text.*undecodable bytes at posit"),
        (
            {"test": b"a zebra\n"},
            r"Expected `ptb.test.txt` to be words that all occur in ptb.train.txt, but got 1 "
            r"unknown word\(s\), e.g. \['zebra'\]\. Mikolov's files map rare words to <unk>",
        ),
    ],
)
def test_bad_ptb_files(tmp_path, texts, message):
    with pytest.raises(BayesdropValueError, match=message):
        load_ptb(_ptb(tmp_path, **texts))


def test_ptb_streams_stay_in_the_vocabulary():
    ok = torch.tensor([0, 1])
    with pytest.raises(
        BayesdropValueError,
        match=r"Expected `valid` to be token indices below the vocabulary size 2, but got a "
        r"maximum of 7\. Index every word through `vocab`",
    ):
        PTB(train=ok, valid=torch.tensor([7]), test=ok, vocab=("a", "b"))
    with pytest.raises(BayesdropValueError, match=r"`test` to be non-negative token indices"):
        PTB(train=ok, valid=ok, test=torch.tensor([-1]), vocab=("a", "b"))
    with pytest.raises(BayesdropValueError, match=r"`vocab` to be distinct words"):
        PTB(train=ok, valid=ok, test=ok, vocab=("a", "a"))


def test_token_batching_errors():
    with pytest.raises(BayesdropTypeError, match=r"Expected `data` to be a torch.Tensor"):
        batchify([1, 2, 3], 1)
    with pytest.raises(BayesdropTypeError, match=r"`data` to be integer token indices.*float32"):
        batchify(torch.ones(6), 2)
    with pytest.raises(BayesdropValueError, match=r"`data` to be non-negative token indices"):
        batchify(torch.tensor([0, -3, 1]), 1)
    with pytest.raises(BayesdropValueError, match=r"`source` to be a \(T, N\) batch.*\(1, 3\)"):
        next(bptt_batches(batchify(torch.arange(3), 3), 2))
    with pytest.raises(BayesdropTypeError, match=r"`source` to be integer token indices"):
        next(bptt_batches(torch.ones(4, 2), 2))


# --- UCI ----------------------------------------------------------------------------------------


def _uci(root: Path, **files: str) -> Path:
    data = root / "uci" / "toy" / "data"
    data.mkdir(parents=True)
    contents = {
        "data.txt": "".join(f"{i} {i + 1} {i + 2} {i + 3}\n" for i in range(6)),
        "index_features.txt": "0\n2\n3\n",
        "index_target.txt": "1\n",
        "index_train_0.txt": "0\n1\n2\n3\n",
        "index_test_0.txt": "4\n5\n",
        **files,
    }
    for name, text in contents.items():
        (data / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"index_train_0.txt": "0\n-1\n2\n"},
            r"Expected `index_train_0.txt` to be row indices in \[0, 6\), but got values in "
            r"\[-1, 2\]\. Indices are 0-based; a negative one is not counted from the end",
        ),
        ({"index_test_0.txt": "4\n5.5\n"}, r"`index_test_0.txt` to be whole row indices.*5.5"),
        ({"index_test_0.txt": "4\n6\n"}, r"`index_test_0.txt` to be row indices in \[0, 6\)"),
        ({"index_test_0.txt": ""}, r"`index_test_0.txt` to be at least one row index.*empty"),
        ({"index_test_0.txt": "3\n4\n"}, r"index_train_0.txt`?, but got 1 row\(s\) in both"),
        ({"index_features.txt": "0\n4\n"}, r"`index_features.txt` to be column indices in \[0, 4"),
        ({"index_features.txt": "0\n1.5\n"}, r"`index_features.txt` to be whole column indices"),
        (
            {"index_features.txt": "0\n1\n2\n"},
            r"Expected `index_features.txt` to be columns other than the target column 1 "
            r"\(index_target.txt\), but got \[0, 1, 2\]\. The target would leak into X",
        ),
        ({"index_features.txt": "0\n2\n2\n"}, r"`index_features.txt` to be distinct columns"),
        ({"index_target.txt": "1\n2\n"}, r"`index_target.txt` to be one target column, but got 2"),
        ({"index_target.txt": "-1\n"}, r"`index_target.txt` to be column indices in \[0, 4\)"),
        ({"data.txt": "1 2 3 4\n5 6 7\n"}, r"Expected `data.txt` to be a table of whitespace-sep"),
        ({"data.txt": "1 2 nan 4\n" * 6}, r"`data.txt` to be finite numbers, but got 6 NaN"),
        ({"data.txt": ""}, r"`data.txt` to be a table with at least one row.*empty file"),
        ({"index_train_0.txt": "0\none\n"}, r"`index_train_0.txt` to be whitespace-separated"),
        ({"n_epochs.txt": "40.5\n"}, r"Expected `n_epochs.txt` to be a positive whole number"),
        ({"dropout_rates.txt": "0.1 1.5\n"}, r"`dropout_rates.txt` to be dropout rates in \[0, 1"),
        ({"tau_values.txt": "0.25 -1\n"}, r"`tau_values.txt` to be positive finite numbers"),
    ],
)
def test_bad_uci_files(tmp_path, files, message):
    with pytest.raises(BayesdropValueError, match=message):
        load_uci("toy", _uci(tmp_path, **files))


def test_uci_name_and_split_arguments(tmp_path):
    root = _uci(tmp_path)
    for name in ("../toy", "/etc", "uci/toy", "..", ""):
        with pytest.raises(BayesdropValueError, match=r"Expected `name` to be a data set folder"):
            load_uci(name, root)
    ds = load_uci("toy", root)
    assert ds.X.shape == (6, 3) and ds.y.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    with pytest.raises(BayesdropTypeError, match=r"Expected `k` to be an integer, but got '0'"):
        ds.split("0")


# --- downloads never write outside root/<folder> ----------------------------------------------


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A file served by a file:// URL, and its SHA-256; any other URL fails the test."""
    monkeypatch.delenv(remote_module.MIRROR_ENV, raising=False)
    real = remote_module.urllib.request.urlopen

    def guarded(url: str, *args: object, **kwargs: object):
        assert url.startswith("file://"), f"a test tried to reach {url}"
        return real(url, *args, **kwargs)

    monkeypatch.setattr(remote_module.urllib.request, "urlopen", guarded)
    source = tmp_path / "served.txt"
    source.write_bytes(b"payload\n")
    return source.as_uri(), hashlib.sha256(b"payload\n").hexdigest()


def _files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize(
    ("name", "folder", "path", "message"),
    [
        ("toy", "../../escape", "a.txt", r"`toy: folder` to be a relative path inside the folder"),
        ("toy", "/tmp/escape", "a.txt", r"`toy: folder` to be a relative path.*'/tmp/escape'"),
        ("toy", "toy", "../../escape.txt", r"`toy: path` to be a relative path.*'\.\./\.\./esc"),
        ("toy", "toy", "/tmp/escape.txt", r"`toy: path` to be a relative path.*'/tmp/escape.txt'"),
        ("toy", "toy", "sub/../../x.txt", r"`toy: path` to be a relative path"),
        ("toy", "toy", "a\\..\\..\\x.txt", r"without '\.\.', '\.', empty parts or backslashes"),
        ("toy", "toy", "C:x.txt", r"`toy: path` to be a relative path.*'C:x.txt'"),
        ("toy", "a//b", "x.txt", r"`toy: folder`"),
        ("toy", "toy", "", r"`toy: path`"),
        ("../toy", "toy", "a.txt", r"Expected `name` to be a plain name \(no path separators\)"),
        ("a/b", "toy", "a.txt", r"Expected `name` to be a plain name"),
    ],
)
def test_names_that_would_escape_the_root(tmp_path, served, name, folder, path, message):
    url, sha = served
    root = tmp_path / "deep" / "er" / "root"
    root.mkdir(parents=True)
    before = _files_under(tmp_path)
    source = DataSource(name, folder, (RemoteFile(path, url, sha),))
    with pytest.raises(BayesdropValueError, match=message + r".*written only inside root"):
        download(source, root, progress=None)
    assert _files_under(tmp_path) == before


def test_symbolic_link_out_of_the_folder_is_refused(tmp_path, served):
    url, sha = served
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root" / "toy").mkdir(parents=True)
    (tmp_path / "root" / "toy" / "sub").symlink_to(outside)
    source = DataSource("toy", "toy", (RemoteFile("sub/a.txt", url, sha),))
    with pytest.raises(
        BayesdropValueError,
        match=r"Expected `toy/sub/a.txt` to be a file inside .*root/toy, but got .*outside/a.txt "
        r"\(a symbolic link leads outside\)",
    ):
        download(source, tmp_path / "root", progress=None)
    assert list(outside.iterdir()) == []


def test_a_link_in_place_of_the_partial_file_is_not_followed(tmp_path, served):
    url, sha = served
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (tmp_path / "root" / "toy").mkdir(parents=True)
    (tmp_path / "root" / "toy" / "a.txt.part").symlink_to(victim)
    download(
        DataSource("toy", "toy", (RemoteFile("a.txt", url, sha),)), tmp_path / "root", progress=None
    )
    assert victim.read_text() == "keep me\n"
    assert (tmp_path / "root" / "toy" / "a.txt").read_bytes() == b"payload\n"


def test_a_valid_nested_path_still_downloads(tmp_path, served):
    url, sha = served
    source = DataSource("toy", "uci/toy", (RemoteFile("data/a.txt", url, sha),))
    assert download(source, tmp_path, progress=None) == tmp_path / "uci" / "toy"
    assert (tmp_path / "uci" / "toy" / "data" / "a.txt").read_bytes() == b"payload\n"


@pytest.mark.parametrize(
    ("entry", "kwargs", "message"),
    [
        (RemoteFile("a.txt", "ftp://host/a.txt", "0" * 64), {}, r"`toy/a.txt: url` to be an h"),
        (RemoteFile("a.txt", "file:///x", "XYZ"), {}, r"`toy/a.txt: sha256` to be 64 lower-case"),
        (RemoteFile("a.txt", "file:///x", "0" * 64), {"timeout": -1}, r"`timeout` to be positi"),
        (RemoteFile("a.txt", "file:///x", "0" * 64), {"progress": 3}, r"`progress` to be a call"),
    ],
)
def test_bad_source_entries(tmp_path, served, entry, kwargs, message):
    source = DataSource("toy", "toy", (entry,))
    with pytest.raises((BayesdropValueError, BayesdropTypeError), match=message):
        download(source, tmp_path, **{"progress": None, **kwargs})
    assert not (tmp_path / "toy").exists()


def test_duplicate_paths_and_a_bad_mirror(tmp_path, served, monkeypatch):
    url, sha = served
    twice = DataSource("toy", "toy", (RemoteFile("a.txt", url, sha),) * 2)
    with pytest.raises(BayesdropValueError, match=r"`toy: path` to be distinct file paths"):
        download(twice, tmp_path, progress=None)
    monkeypatch.setenv(remote_module.MIRROR_ENV, "mirror.example.org")
    with pytest.raises(BayesdropValueError, match=r"`BAYESDROP_DATA_MIRROR` to be an http"):
        download(DataSource("toy", "toy", (RemoteFile("a.txt", url, sha),)), tmp_path)


def test_paths_that_are_not_paths(tmp_path):
    with pytest.raises(BayesdropTypeError, match=r"Expected `path` to be a path .*, but got int"):
        read_idx(123)
    with pytest.raises(BayesdropTypeError, match=r"Expected `path` to be a path"):
        write_idx(3, np.zeros(2, np.uint8))
    with pytest.raises(BayesdropTypeError, match=r"Expected `root` to be a path .*, but got list"):
        load_ptb(root=[tmp_path])
    with pytest.raises(BayesdropTypeError, match=r"Expected `root` to be a path"):
        download("ptb", 5, progress=None)
