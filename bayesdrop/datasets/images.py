"""Readers for the IDX image sets: MNIST, Fashion-MNIST, notMNIST."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bayesdrop._validation import check_choice, fail
from bayesdrop.datasets._root import data_root, require_file

__all__ = ["load_fashion_mnist", "load_mnist", "load_notmnist", "read_idx"]

_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array.

    The format: two zero bytes, a type code, the number of dimensions, then big-endian 32-bit
    sizes and the data.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        fail("path", "an IDX file", str(path))
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=_IDX_DTYPES[data[2]], offset=4 + 4 * ndim)
    return array.reshape(shape)


def _load(folder: Path, prefix: str) -> tuple[Tensor, Tensor]:
    images = read_idx(require_file(folder, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(require_file(folder, f"{prefix}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def load_fashion_mnist(
    root: str | os.PathLike[str] | None = None, *, split: str = "train"
) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST as ``(images (N, 1, 28, 28) in [0, 1], labels (N,))``.

    ``root`` (or ``BAYESDROP_DATA``) is the folder holding ``fashion-mnist/`` or the IDX files.
    """
    check_choice("split", split, ("train", "test"))
    folder = data_root(root, "fashion-mnist")
    return _load(folder, "train" if split == "train" else "t10k")


def load_mnist(
    root: str | os.PathLike[str] | None = None, *, split: str = "test"
) -> tuple[Tensor, Tensor]:
    """MNIST as ``(images (N, 1, 28, 28) in [0, 1], labels (N,))``.

    ``split="test"`` reads the IDX test set; ``split="train-5k"`` the 5,000-image CSV subset.
    """
    check_choice("split", split, ("test", "train-5k"))
    folder = data_root(root, "mnist")
    if split == "test":
        return _load(folder, "t10k")
    table = np.loadtxt(require_file(folder, "train-5k.csv.gz"), delimiter=",", dtype=np.float32)
    x = torch.from_numpy(table[:, :784] / 255.0).reshape(-1, 1, 28, 28)
    return x, torch.from_numpy(table[:, 784].astype(np.int64))


def load_notmnist(root: str | os.PathLike[str] | None = None) -> tuple[Tensor, Tensor]:
    """notMNIST letters A-J (10,000 test images) for out-of-distribution tests."""
    return _load(data_root(root, "notmnist"), "t10k")
