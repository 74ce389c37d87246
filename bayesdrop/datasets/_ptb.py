"""Penn Treebank (Mikolov's language-modelling version) and the batching of a token stream."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from bayesdrop._validation import check_positive_int, check_tensor, fail
from bayesdrop.datasets._remote import download as _download
from bayesdrop.datasets._root import data_root, require_file

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

    def __post_init__(self) -> None:
        if not all(isinstance(w, str) for w in self.vocab) or len(set(self.vocab)) != len(
            self.vocab
        ):
            fail("vocab", "distinct words (strings)", f"{len(self.vocab)} entries")
        for split in ("train", "valid", "test"):
            tokens = getattr(self, split)
            _check_tokens(split, tokens)
            if tokens.dim() != 1:
                fail(split, "a 1-D token stream", f"shape {tuple(tokens.shape)}")
            if tokens.numel() and int(tokens.max()) >= len(self.vocab):
                fail(
                    split,
                    f"token indices below the vocabulary size {len(self.vocab)}",
                    f"a maximum of {int(tokens.max())}",
                    "Index every word through `vocab`; a word outside it is out of vocabulary.",
                )

    @property
    def vocab_size(self) -> int:
        """Number of word types."""
        return len(self.vocab)


def _read_words(path: Path) -> list[str]:
    """The words of a PTB file, ``<eos>`` after every line; an empty or undecodable file is an
    error naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            words = [word for line in f for word in [*line.split(), EOS]]
    except UnicodeDecodeError as exc:
        fail(
            path.name,
            "UTF-8 text, one sentence a line",
            f"{path} with undecodable bytes at position {exc.start}",
            "Download it again (bayesdrop.datasets.download('ptb', root, force=True)).",
        )
    if all(word == EOS for word in words):
        fail(
            path.name,
            "a file of sentences",
            f"{path}, {'an empty file' if not words else 'blank lines only'}",
            "The file is truncated or was not written completely; download it again "
            "(bayesdrop.datasets.download('ptb', root, force=True)).",
        )
    return words


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
                f"ptb.{split}.txt",
                "words that all occur in ptb.train.txt",
                f"{len(unknown)} unknown word(s), e.g. {sorted(unknown)[:3]}",
                "Mikolov's files map rare words to <unk>; map them the same way.",
            )
        splits[split] = torch.tensor([index[w] for w in tokens], dtype=torch.long)
    return PTB(**splits, vocab=tuple(index))


def _check_tokens(name: str, tokens: Tensor, *, values: bool = True) -> None:
    """Token indices: an integer tensor (of non-negative values, when ``values``)."""
    check_tensor(name, tokens)
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        fail(
            name,
            "integer token indices",
            f"dtype {tokens.dtype}",
            "Use tokens.long().",
            type_error=True,
        )
    if values and tokens.numel() and int(tokens.min()) < 0:
        fail(name, "non-negative token indices", f"a minimum of {int(tokens.min())}")


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
    _check_tokens("data", data)
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
    _check_tokens("source", source, values=False)  # batchify checked them
    if source.dim() != 2 or source.shape[0] < 2:
        fail(
            "source",
            "a (T, N) batch of token columns with T >= 2 (an input and its next token)",
            f"shape {tuple(source.shape)}",
            "Make it with batchify(tokens, batch_size).",
        )
    for start in range(0, source.shape[0] - 1, bptt):
        length = min(bptt, source.shape[0] - 1 - start)
        yield source[start : start + length], source[start + 1 : start + 1 + length]
