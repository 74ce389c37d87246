"""Data-set loaders. Data are read by path (``root`` or ``BAYESDROP_DATA``), never bundled;
:func:`download` fetches them on request, SHA-256 verified."""

from bayesdrop.datasets._images import (
    load_fashion_mnist,
    load_mnist,
    load_notmnist,
    read_idx,
    write_idx,
)
from bayesdrop.datasets._ptb import PTB, batchify, bptt_batches, load_ptb
from bayesdrop.datasets._remote import MIRROR_ENV, DataSource, RemoteFile, download, sources
from bayesdrop.datasets._root import DATA_ENV, SMOKE_ENV, data_root, smoke_mode
from bayesdrop.datasets._text import load_polarity
from bayesdrop.datasets._uci import PublishedResult, UCIDataset, available_uci, load_uci

__all__ = [
    "DATA_ENV",
    "MIRROR_ENV",
    "PTB",
    "SMOKE_ENV",
    "DataSource",
    "PublishedResult",
    "RemoteFile",
    "UCIDataset",
    "available_uci",
    "batchify",
    "bptt_batches",
    "data_root",
    "download",
    "load_fashion_mnist",
    "load_mnist",
    "load_notmnist",
    "load_polarity",
    "load_ptb",
    "load_uci",
    "read_idx",
    "smoke_mode",
    "sources",
    "write_idx",
]
