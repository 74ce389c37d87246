"""Penn Treebank (Mikolov's language-modelling version) and the batching of a token stream."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from bayesdrop._validation import check_positive_int, fail
from bayesdrop.datasets._root import data_root, require_file
from bayesdrop.datasets.remote import download as _download

__all__ = ["PTB", "batchify", "bptt_batches", "load_ptb"]

EOS = "<eos>"


@dataclass(frozen=True)
class PTB:
    """The three splits of Penn Treebank as token streams.

    Attributes
    ----------
    train, valid, test : LongTensor of shape (num_tokens,)
        Word indices, with ``<eos>`` at the end of every line (929,589 / 73,760 / 82,430).
    vocab : tuple of str
        The words, in order of first appearance in ``train`` (10,000 with ``<unk>``, ``<eos>``).
    """

    train: Tensor
    valid: Tensor
    test: Tensor
    vocab: tuple[str, ...]

    @property
    def vocab_size(self) -> int:
        """Number of word types."""
        return len(self.vocab)


def _read_words(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [word for line in f for word in [*line.split(), EOS]]


def load_ptb(root: str | os.PathLike[str] | None = None, *, download: bool = False) -> PTB:
    """Penn Treebank in Mikolov's language-modelling version: three token streams and the words.

    Reads ``ptb.{train,valid,test}.txt`` (one sentence a line, words separated by spaces) from
    ``root/ptb/`` or ``root``. Every line ends with ``<eos>``; the vocabulary is built from the
    training split (Mikolov's files are already restricted to 10,000 words with ``<unk>``).

    Parameters
    ----------
    root : path, optional
        The data root; defaults to the ``BAYESDROP_DATA`` environment variable.
    download : bool, default False
        Fetch missing files first (:func:`bayesdrop.datasets.download`, SHA-256 verified).

    Returns
    -------
    PTB

    Raises
    ------
    ValueError
        If a file is missing (the message says how to get it), or a validation or test word is
        not in the training vocabulary.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bayesdrop.datasets import load_ptb
    >>> root = Path(tempfile.mkdtemp())
    >>> for split, text in [("train", "a b\\nb c\\n"), ("valid", "c a\\n"), ("test", "b\\n")]:
    ...     _ = (root / f"ptb.{split}.txt").write_text(text)
    >>> ptb = load_ptb(root)
    >>> ptb.vocab, ptb.train.tolist(), ptb.test.tolist()
    (('a', 'b', '<eos>', 'c'), [0, 1, 2, 1, 3, 2], [1, 2])
    """
    if download:
        _download("ptb", root)
    folder = data_root(root, "ptb", source="ptb")
    words = {
        s: _read_words(require_file(folder, f"ptb.{s}.txt", "ptb"))
        for s in ("train", "valid", "test")
    }
    index: dict[str, int] = {}
    for word in words["train"]:
        index.setdefault(word, len(index))
    splits = {}
    for split, tokens in words.items():
        unknown = {w for w in tokens if w not in index}
        if unknown:
            fail(
                "root",
                "PTB files whose words all occur in ptb.train.txt",
                f"{len(unknown)} unknown word(s) in ptb.{split}.txt, e.g. {sorted(unknown)[:3]}",
            )
        splits[split] = torch.tensor([index[w] for w in tokens], dtype=torch.long)
    return PTB(**splits, vocab=tuple(index))


def batchify(data: Tensor, batch_size: int) -> Tensor:
    """Cut a token stream into ``batch_size`` contiguous rows: ``(T, N)``, the tail dropped.

    Row ``n`` holds tokens ``n*T .. (n+1)*T - 1``: each column is one long sequence whose state
    is carried from one BPTT chunk to the next.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.datasets import batchify
    >>> batchify(torch.arange(10), 3)
    tensor([[0, 3, 6],
            [1, 4, 7],
            [2, 5, 8]])
    """
    batch_size = check_positive_int("batch_size", batch_size)
    if data.dim() != 1 or data.numel() < batch_size:
        fail(
            "data",
            f"a 1-D token stream of at least batch_size={batch_size} tokens",
            f"shape {tuple(data.shape)}",
        )
    steps = data.numel() // batch_size
    return data[: steps * batch_size].view(batch_size, steps).t().contiguous()


def bptt_batches(source: Tensor, bptt: int) -> Iterator[tuple[Tensor, Tensor]]:
    """``(input, target)`` chunks of at most ``bptt`` steps; ``target`` is ``input`` shifted by one.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.datasets import batchify, bptt_batches
    >>> source = batchify(torch.arange(10), 2)  # (5, 2)
    >>> [(x[:, 0].tolist(), y[:, 0].tolist()) for x, y in bptt_batches(source, 3)]
    [([0, 1, 2], [1, 2, 3]), ([3], [4])]
    """
    bptt = check_positive_int("bptt", bptt)
    for start in range(0, source.shape[0] - 1, bptt):
        length = min(bptt, source.shape[0] - 1 - start)
        yield source[start : start + length], source[start + 1 : start + 1 + length]
