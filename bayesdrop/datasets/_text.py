"""Sentence polarity (Pang and Lee, 2005): movie-review sentences labelled positive or negative."""

from __future__ import annotations

import os

import torch
from torch import Tensor

from bayesdrop._validation import fail
from bayesdrop.datasets._root import DATA_ENV, root_or_env

__all__ = ["load_polarity"]

# the Cornell movie-review data page's archive of the two files
_URL = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
_FILES = (("rt-polarity.pos", 1), ("rt-polarity.neg", 0))


def _how_to_get() -> str:
    return (
        "bayesdrop.datasets.download cannot fetch sentence polarity (its source states no "
        f"licence). Download {_URL} ('sentence polarity dataset v1.0'), put "
        "rt-polarity.pos and rt-polarity.neg in <data>/rt-polarity/, and pass root=<data> or "
        f"export {DATA_ENV}=<data>."
    )


def load_polarity(root: str | os.PathLike[str] | None = None) -> tuple[list[str], Tensor]:
    """Sentence polarity (Pang and Lee, 2005): 5,331 positive and 5,331 negative sentences.

    Reads ``rt-polarity.pos`` and ``rt-polarity.neg`` (latin-1 text, one tokenised, lower-case
    movie-review snippet a line) from ``root/rt-polarity/`` or ``root``. The data cannot be
    fetched with :func:`bayesdrop.datasets.download`; a missing file is an error that says
    where to get it: the archive
    ``rt-polaritydata.tar.gz`` of the Cornell movie-review data page
    (https://www.cs.cornell.edu/people/pabo/movie-review-data/).

    Parameters
    ----------
    root : path, optional
        The data root; defaults to the ``BAYESDROP_DATA`` environment variable.

    Returns
    -------
    sentences : list of str
        The positive sentences, then the negative ones, in file order, stripped of the
        surrounding white space (blank lines skipped).
    labels : LongTensor of shape (N,)
        1 for positive, 0 for negative.

    Raises
    ------
    ValueError
        If no data folder is given, or a file is missing or holds no sentence (the message
        says where to get the data and how to point ``BAYESDROP_DATA`` at it).

    References
    ----------
    Pang, B. and Lee, L. (2005). Seeing stars: Exploiting class relationships for sentiment
    categorization with respect to rating scales. ACL.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bayesdrop.datasets import load_polarity
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "rt-polarity").mkdir()
    >>> _ = (root / "rt-polarity" / "rt-polarity.pos").write_text("a fine film . \\n")
    >>> _ = (root / "rt-polarity" / "rt-polarity.neg").write_text("dull .\\nflat . \\n")
    >>> sentences, labels = load_polarity(root)
    >>> sentences, labels.tolist()
    (['a fine film .', 'dull .', 'flat .'], [1, 0, 0])
    """
    folder = root_or_env(root, "the data folder holding rt-polarity/", _how_to_get())
    if (folder / "rt-polarity").is_dir():
        folder = folder / "rt-polarity"
    sentences: list[str] = []
    labels: list[int] = []
    for filename, label in _FILES:
        path = folder / filename
        if not path.is_file():
            fail("root", f"a folder containing {filename!r}", f"{folder} without it", _how_to_get())
        lines = [s.strip() for s in path.read_text(encoding="latin-1").splitlines()]
        lines = [s for s in lines if s]
        if not lines:
            fail(filename, "a file of sentences, one a line", f"{path} without any", _how_to_get())
        sentences += lines
        labels += [label] * len(lines)
    return sentences, torch.tensor(labels, dtype=torch.long)
