"""Sequence-level dropout for embeddings and activations: word-type and locked dropout."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from bayesdrop import functional as BF
from bayesdrop._validation import check_positive, check_positive_int, check_probability, fail
from bayesdrop.nn._base import StochasticModule

__all__ = ["EmbeddingDropout", "LockedDropout"]


class EmbeddingDropout(StochasticModule):
    r"""Word-type dropout of an embedding, tied by word identity within each sequence.

    Gal & Ghahramani (2016) drop whole word types: in each sequence every occurrence of a
    word gets the same mask value, so the embedding row of a dropped word is zero for the
    whole sequence,

    .. math::

        e_{n,t} = E_{w_{n,t}} \cdot z_{n, w_{n,t}}, \qquad
        z_{n,v} \sim \mathrm{Bernoulli}(1-p) / (1-p).

    The KL is that of Bernoulli dropout on the rows of the embedding matrix (its
    :math:`K = V` inputs are the one-hot words):
    :math:`\frac{l^2(1-p)}{2}\lVert E\rVert^2 - V \mathcal H(p)`.

    The reference code switches word-type dropout off for MC evaluation;
    :func:`bayesdrop.models.perplexity` does so by default.

    Drawing: :meth:`sample_masks` draws the whole ``(N, V)`` table (needed when one mask must
    cover tokens not seen yet, e.g. across truncated-BPTT segments). A forward without
    ``masks`` on the CPU, with fewer tokens in the batch than word types, draws only the
    ``(N, U)`` values of the batch's ``U`` distinct words: the same distribution at a fraction
    of the cost (``benchmarks/embedding_dropout.py``: 3.6x faster at a 9,726-word vocabulary).

    Parameters
    ----------
    embedding : nn.Embedding
        The embedding whose word types are dropped.
    p : float, default 0.1
        Drop probability of a word type, in ``[0, 1)``.
    batch_first : bool, default False
        Tokens are ``(N, T)`` instead of ``(T, N)``.
    length_scale : float, default 1e-2
        Prior length-scale :math:`l`.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> drop = bayesdrop.EmbeddingDropout(nn.Embedding(5, 3), p=0.5).train()
    >>> tokens = torch.tensor([[1, 2], [1, 2], [1, 2]])  # (T, N): constant words
    >>> e = drop(tokens)
    >>> bool((e[0] == e[1]).all() and (e[1] == e[2]).all())
    True
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        p: float = 0.1,
        *,
        batch_first: bool = False,
        length_scale: float = 1e-2,
    ) -> None:
        super().__init__()
        if not isinstance(embedding, nn.Embedding):
            fail("embedding", "a torch.nn.Embedding", type(embedding).__name__, type_error=True)
        self.embedding = embedding
        self.p = check_probability("p", p)
        self.batch_first = bool(batch_first)
        self.length_scale = check_positive("length_scale", length_scale)

    def sample_masks(
        self, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Tensor | None:
        """Mask table ``(N, V)`` of one pass (``None`` when ``p = 0``)."""
        batch_size = check_positive_int("batch_size", batch_size)
        if self.p == 0.0:
            return None
        w = self.embedding.weight
        shape = (batch_size, self.embedding.num_embeddings)
        return BF.bernoulli_mask(shape, self.p, dtype=w.dtype, device=w.device, generator=generator)

    def forward(self, tokens: Tensor, *, masks: Tensor | None = None) -> Tensor:
        """Embed ``tokens`` (T, N) or (N, T); ``masks`` reuses a table from :meth:`sample_masks`."""
        if not isinstance(tokens, Tensor) or tokens.dim() != 2:
            got = f"shape {tuple(tokens.shape)}" if isinstance(tokens, Tensor) else tokens
            layout = "(batch, seq)" if self.batch_first else "(seq, batch)"
            fail("tokens", f"a 2-D tensor of word indices {layout}", got)
        out = self.embedding(tokens)
        batch_size = tokens.shape[0 if self.batch_first else 1]
        if masks is None and self.is_sampling and self.p > 0.0:
            if tokens.device.type == "cpu" and tokens.numel() < self.embedding.num_embeddings:
                return out * self._batch_words_mask(tokens, batch_size).unsqueeze(-1)
            masks = self.sample_masks(batch_size)
        if masks is None:
            return out
        if tuple(masks.shape) != (batch_size, self.embedding.num_embeddings):
            fail(
                "masks",
                f"a table of shape {(batch_size, self.embedding.num_embeddings)}",
                f"shape {tuple(masks.shape)}",
            )
        return out * BF.word_type_mask(tokens, masks, batch_first=self.batch_first).unsqueeze(-1)

    def _batch_words_mask(self, tokens: Tensor, batch_size: int) -> Tensor:
        """The token mask from draws for the word types of this batch only: ``(N, U)`` values
        for its ``U`` distinct words instead of an ``(N, V)`` table, the same distribution (one
        independent value per sequence and word type). Used on the CPU when the batch has fewer
        tokens than the vocabulary, where drawing the table dominates; on accelerators the
        table is drawn, since ``torch.unique`` would synchronise with the host."""
        words, inverse = torch.unique(tokens, return_inverse=True)
        w = self.embedding.weight
        table = BF.bernoulli_mask((batch_size, len(words)), self.p, dtype=w.dtype, device=w.device)
        return BF.word_type_mask(inverse, table, batch_first=self.batch_first)

    def kl(self) -> Tensor:
        sq = self.embedding.weight.pow(2).sum()
        return BF.mc_dropout_kl(sq, self.p, self.embedding.num_embeddings, self.length_scale)

    def extra_repr(self) -> str:
        return f"p={self.p}, batch_first={self.batch_first}"


class LockedDropout(StochasticModule):
    r"""Dropout with one mask per sequence, reused at every time step ("locked" over time).

    .. math::

        \tilde x_{n,t} = x_{n,t} \odot z_n, \qquad z_n \sim \mathrm{Bernoulli}(1-p)^F / (1-p)

    It accepts ``(T, N, F)`` tensors, ``(N, T, F)`` with ``batch_first=True``, and
    :class:`~torch.nn.utils.rnn.PackedSequence` (whose rows keep their masks). In a zero-padded
    batch the padded steps stay zero. It has no weights, so its :meth:`kl` is zero: the KL
    lives with the layer that reads its output.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability in ``[0, 1)``.
    batch_first : bool, default False
        Layout of tensor inputs.

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> drop = bayesdrop.LockedDropout(0.5, batch_first=True).train()
    >>> y = drop(torch.ones(2, 6, 3))  # (N, T, F)
    >>> bool((y == y[:, :1]).all())  # constant over time
    True
    """

    def __init__(self, p: float = 0.5, *, batch_first: bool = False) -> None:
        super().__init__()
        self.p = check_probability("p", p)
        self.batch_first = bool(batch_first)

    def sample_masks(
        self,
        batch_size: int,
        num_features: int | tuple[int, ...],
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A mask ``(N, *F)`` for one pass."""
        features = (num_features,) if isinstance(num_features, int) else tuple(num_features)
        shape = (check_positive_int("batch_size", batch_size), *features)
        return BF.bernoulli_mask(shape, self.p, dtype=dtype, device=device, generator=generator)

    def forward(
        self, x: Tensor | PackedSequence, *, masks: Tensor | None = None
    ) -> Tensor | PackedSequence:
        """Apply the mask; ``masks`` of shape ``(N, *F)`` reuses a draw of :meth:`sample_masks`."""
        if isinstance(x, PackedSequence):
            data, batch_size, features = x.data, int(x.batch_sizes[0]), x.data.shape[1:]
        else:
            if not isinstance(x, Tensor) or x.dim() < 3:
                got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
                layout = (
                    "(batch, seq, *features)" if self.batch_first else "(seq, batch, *features)"
                )
                fail("x", f"a tensor {layout} or a PackedSequence", got)
            data, batch_size = x, x.shape[0 if self.batch_first else 1]
            features = x.shape[2:]
        if masks is None:
            if not self.is_sampling or self.p == 0.0:
                return x
            masks = self.sample_masks(batch_size, features, dtype=data.dtype, device=data.device)
        if tuple(masks.shape) != (batch_size, *features):
            fail("masks", f"of shape {(batch_size, *features)}", f"shape {tuple(masks.shape)}")
        return BF.apply_sequence_mask(x, masks, batch_first=self.batch_first)

    def kl(self) -> Tensor:
        return torch.zeros(())

    def extra_repr(self) -> str:
        return f"p={self.p}, batch_first={self.batch_first}"
