r"""Dropout masks of variational recurrent networks (Gal & Ghahramani, 2016).

A variational RNN draws one mask per sequence (per batch row) and reuses it at every time step,
so that the dropped units are the same weights' columns all along the sequence: the masked
network is one sample :math:`\omega \sim q(\omega)` of the weights for the whole sequence,

.. math::

    \tilde x_{n,t} = x_{n,t} \odot z_n, \qquad z_n \sim \mathrm{Bernoulli}(1-p)^{F} / (1-p),
    \quad \text{the same } z_n \text{ for every } t.

Masks here are inverted (values :math:`0` or :math:`1/(1-p)`) and laid out batch-first,
``(N, F)``, or ``(G, N, F)`` with one mask per gate ``G`` for the untied variant. The word-type
mask of the embedding drops whole word types: every occurrence of a word in a sequence shares
one mask value.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from bayesdrop.functional._dropout import bernoulli_mask

__all__ = [
    "apply_sequence_mask",
    "packed_row_index",
    "sequence_mask",
    "word_type_mask",
]


def sequence_mask(
    batch_size: int,
    num_features: int,
    p: float,
    *,
    num_gates: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""One inverted Bernoulli mask per sequence: ``(N, F)``, or ``(G, N, F)`` per gate.

    The mask is reused at every time step of the sequence it belongs to; ``num_gates``
    draws independent masks for each of a cell's gates (the untied variant).

    Parameters
    ----------
    batch_size : int
        Number of sequences ``N``.
    num_features : int
        Features ``F`` the mask acts on.
    p : float
        Drop probability in ``[0, 1)``.
    num_gates : int, optional
        Draw ``G`` independent masks, stacked first.

    Examples
    --------
    >>> from bayesdrop.functional import sequence_mask
    >>> m = sequence_mask(2, 3, 0.5)
    >>> m.shape, set(m.unique().tolist()) <= {0.0, 2.0}
    (torch.Size([2, 3]), True)
    >>> sequence_mask(2, 3, 0.5, num_gates=4).shape
    torch.Size([4, 2, 3])
    """
    shape = (
        (batch_size, num_features) if num_gates is None else (num_gates, batch_size, num_features)
    )
    return bernoulli_mask(shape, p, dtype=dtype, device=device, generator=generator)


def word_type_mask(tokens: Tensor, table: Tensor, *, batch_first: bool = False) -> Tensor:
    r"""Mask of each token, tied by word identity within its sequence.

    ``table[n, v]`` is the mask value of word type ``v`` in sequence ``n`` (draw it with
    :func:`bayesdrop.functional.bernoulli_mask` of shape ``(N, V)``); the token ``v`` at any
    position of sequence ``n`` gets ``table[n, v]``:

    .. math::

        m_{n,t} = z_{n,\, w_{n,t}}, \qquad z_{n,v} \sim \mathrm{Bernoulli}(1-p) / (1-p).

    Parameters
    ----------
    tokens : LongTensor of shape (T, N), or (N, T) with ``batch_first``
        Word indices.
    table : Tensor of shape (N, V)
        Per-sequence mask values of every word type.

    Returns
    -------
    Tensor
        The mask, shaped like ``tokens``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import word_type_mask
    >>> table = torch.tensor([[0.0, 2.0, 2.0], [2.0, 0.0, 2.0]])
    >>> tokens = torch.tensor([[1, 1], [0, 1], [1, 2]])  # (T=3, N=2)
    >>> word_type_mask(tokens, table)
    tensor([[2., 0.],
            [0., 0.],
            [2., 2.]])
    """
    rows = tokens.transpose(0, 1) if not batch_first else tokens  # (N, T)
    mask = torch.gather(table, 1, rows)
    return mask if batch_first else mask.transpose(0, 1)


def packed_row_index(batch_sizes: Tensor) -> Tensor:
    """Batch row of every element of a :class:`~torch.nn.utils.rnn.PackedSequence`'s ``data``.

    A packed sequence stores time step after time step, each with its first ``batch_sizes[t]``
    (length-sorted) rows.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import packed_row_index
    >>> packed_row_index(torch.tensor([3, 2, 1]))
    tensor([0, 1, 2, 0, 1, 0])
    """
    batch_sizes = batch_sizes.to("cpu", torch.long)
    return torch.cat([torch.arange(int(b)) for b in batch_sizes])


def apply_sequence_mask(
    x: Tensor | PackedSequence, mask: Tensor, *, batch_first: bool = False
) -> Tensor | PackedSequence:
    r"""Multiply every time step of each sequence by that sequence's mask.

    Parameters
    ----------
    x : Tensor of shape (T, N, ...), (N, T, ...) with ``batch_first``, or PackedSequence
        Sequences; padded steps stay zero if they were zero. For a packed sequence, ``mask``
        rows are in the order of the original (unsorted) batch.
    mask : Tensor of shape (N, ...)
        One mask per sequence.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import apply_sequence_mask
    >>> x = torch.ones(3, 2, 1)  # (T, N, F)
    >>> apply_sequence_mask(x, torch.tensor([[0.0], [2.0]]))[:, :, 0]
    tensor([[0., 2.],
            [0., 2.],
            [0., 2.]])
    """
    if isinstance(x, PackedSequence):
        rows = packed_row_index(x.batch_sizes).to(mask.device)
        if x.sorted_indices is not None:
            rows = x.sorted_indices.to(mask.device)[rows]
        return x._replace(data=x.data * mask[rows])
    return x * (mask.unsqueeze(1) if batch_first else mask.unsqueeze(0))
