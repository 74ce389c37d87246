"""Per-sequence masks: sequence_mask, word-type masks, EmbeddingDropout, LockedDropout."""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import bayesdrop
from bayesdrop import functional as BF


def test_sequence_mask_values_and_mean():
    g = torch.Generator().manual_seed(0)
    m = BF.sequence_mask(400, 50, 0.3, num_gates=4, generator=g)
    assert m.shape == (4, 400, 50)
    assert m.unique().tolist() == pytest.approx([0.0, 1 / 0.7])
    # 80,000 Bernoulli(0.7) draws: the kept fraction is 0.7 within 5 standard errors
    assert abs((m > 0).double().mean().item() - 0.7) < 5 * math.sqrt(0.21 / 80_000)
    assert torch.equal(BF.sequence_mask(3, 2, 0.0), torch.ones(3, 2))


@pytest.mark.parametrize("batch_first", [False, True])
def test_word_type_mask_tied_within_each_sequence(batch_first):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(6, (40, 8), generator=g)  # (T, N), many repeats
    table = BF.bernoulli_mask((8, 6), 0.5, generator=g)
    mask = BF.word_type_mask(tokens.t() if batch_first else tokens, table, batch_first=batch_first)
    mask = mask.t() if batch_first else mask
    for n in range(8):
        for word in range(6):
            values = mask[tokens[:, n] == word, n]
            assert values.numel() == 0 or bool((values == table[n, word]).all())
    # the same word gets independent values in different sequences
    assert not bool((table == table[:1]).all())


@pytest.mark.parametrize("batch_first", [False, True])
def test_embedding_dropout_drops_word_types(batch_first):
    torch.manual_seed(0)
    emb = nn.Embedding(7, 4)
    drop = bayesdrop.EmbeddingDropout(emb, p=0.5, batch_first=batch_first).train()
    tokens = torch.randint(7, (30, 5))
    tokens = tokens.t() if batch_first else tokens
    table = drop.sample_masks(5)
    out = drop(tokens, masks=table)
    expected = emb(tokens) * BF.word_type_mask(tokens, table, batch_first=batch_first)[..., None]
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # a dropped word is zero wherever it occurs in that sequence, a kept one is scaled by 2
    seq = 0
    row = tokens[seq] if batch_first else tokens[:, seq]
    rows = out[seq] if batch_first else out[:, seq]
    for t, word in enumerate(row.tolist()):
        want = emb.weight[word] * table[seq, word]
        torch.testing.assert_close(rows[t], want)
    drop.eval()
    torch.testing.assert_close(drop(tokens), emb(tokens))
    with bayesdrop.sampling(drop):
        assert not torch.equal(drop(tokens), drop(tokens))


@pytest.mark.parametrize("batch_first", [False, True])
def test_embedding_dropout_draws_for_the_batch_words_only(batch_first):
    # fewer tokens than word types: on the CPU the forward draws (N, U) values for the U words
    # of the batch instead of the (N, V) table; the distribution must be the same
    V, N, T, p = 5000, 400, 12, 0.3
    emb = nn.Embedding(V, 2)
    with torch.no_grad():
        emb.weight.fill_(1.0)
    drop = bayesdrop.EmbeddingDropout(emb, p=p, batch_first=batch_first).train()
    torch.manual_seed(0)
    words = torch.randint(V, (N, 4))  # 4 word types per sequence, each repeated 3 times
    tokens = words.repeat_interleave(3, dim=1)[:, torch.randperm(T)]  # (N, T)
    assert tokens.numel() < V
    with mock.patch.object(drop, "sample_masks", side_effect=AssertionError("drew the table")):
        out = drop(tokens if batch_first else tokens.t())
    out = (out if batch_first else out.transpose(0, 1))[..., 0]  # (N, T): 0 or 1 / (1 - p)
    values = out.unique()
    assert values.tolist() == pytest.approx([0.0, 1 / (1 - p)])
    # tied by word identity within a sequence
    for n in range(0, N, 37):
        for w in tokens[n].unique():
            assert out[n][tokens[n] == w].unique().numel() == 1
    # one value per (sequence, word type): the kept fraction is 1 - p within 5 standard errors
    kept = (out > 0).double()
    per_word = torch.stack(
        [kept[n][tokens[n] == w][0] for n in range(N) for w in tokens[n].unique()]
    )
    se = math.sqrt(p * (1 - p) / len(per_word))
    assert abs(per_word.mean().item() - (1 - p)) < 5 * se
    # the same word in two sequences is drawn independently: both share a word here
    shared = torch.full((N, T), 7)
    both = drop(shared if batch_first else shared.t())
    both = (both if batch_first else both.transpose(0, 1))[..., 0]
    assert both[:, 0].unique().numel() == 2  # kept in some sequences, dropped in others


def test_embedding_dropout_kl_and_errors():
    emb = nn.Embedding(10, 3)
    drop = bayesdrop.EmbeddingDropout(emb, p=0.25, length_scale=1.0)
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    expected = 0.5 * 0.75 * emb.weight.pow(2).sum() - 10 * entropy
    torch.testing.assert_close(drop.kl(), expected)
    assert drop.sample_masks(4).shape == (4, 10)
    assert bayesdrop.EmbeddingDropout(emb, p=0.0).sample_masks(4) is None
    with pytest.raises(TypeError, match=r"`embedding` to be a torch\.nn\.Embedding"):
        bayesdrop.EmbeddingDropout(nn.Linear(3, 3), p=0.1)
    with pytest.raises(ValueError, match=r"`p` to be a probability in \[0, 1\)"):
        bayesdrop.EmbeddingDropout(emb, p=1.0)
    with pytest.raises(ValueError, match=r"`tokens` to be a 2-D tensor of word indices \(seq"):
        drop(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"`masks` to be a table of shape \(2, 10\)"):
        drop(torch.zeros(5, 2, dtype=torch.long), masks=torch.ones(3, 10))


def test_locked_dropout_both_layouts_agree():
    x = torch.randn(6, 4, 3)  # (T, N, F)
    mask = bayesdrop.LockedDropout(0.5).sample_masks(4, 3)
    seq_first = bayesdrop.LockedDropout(0.5)(x, masks=mask)
    batch_first = bayesdrop.LockedDropout(0.5, batch_first=True)(x.transpose(0, 1), masks=mask)
    torch.testing.assert_close(batch_first.transpose(0, 1), seq_first, rtol=0, atol=0)
    torch.testing.assert_close(seq_first, x * mask, rtol=0, atol=0)


@pytest.mark.parametrize("batch_first", [False, True])
def test_locked_dropout_constant_over_time_per_row(batch_first):
    drop = bayesdrop.LockedDropout(0.5, batch_first=batch_first).train()
    y = drop(torch.ones(10, 12, 8))
    steps = y.transpose(0, 1) if batch_first else y  # (T, N, F)
    assert torch.equal(steps, steps[:1].expand_as(steps))
    assert len({tuple(r.tolist()) for r in steps[0]}) > 1
    drop.eval()
    assert torch.equal(drop(torch.ones(3, 2, 2)), torch.ones(3, 2, 2))


def test_locked_dropout_padded_and_packed_batches():
    torch.manual_seed(0)
    lengths = torch.tensor([3, 6, 1, 4])
    x = torch.randn(6, 4, 5)
    for n, length in enumerate(lengths):
        x[length:, n] = 0.0  # zero padding
    drop = bayesdrop.LockedDropout(0.4).train()
    mask = drop.sample_masks(4, 5)
    padded = drop(x, masks=mask)
    assert bool((padded[x == 0] == 0).all())  # padding stays zero
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    unpacked, got_lengths = pad_packed_sequence(drop(packed, masks=mask))
    assert torch.equal(got_lengths, lengths)
    torch.testing.assert_close(unpacked, padded, rtol=0, atol=0)
    sampled = drop(packed)  # a fresh mask, still one per (original) row
    unpacked, _ = pad_packed_sequence(sampled)
    ratio = torch.where(x != 0, unpacked / x, torch.nan)
    for n, length in enumerate(lengths):
        rows = ratio[:length, n]
        torch.testing.assert_close(rows, rows[:1].expand_as(rows))


def test_locked_dropout_errors():
    drop = bayesdrop.LockedDropout(0.5).train()
    with pytest.raises(ValueError, match=r"`x` to be a tensor \(seq, batch, \*features\)"):
        drop(torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"`masks` to be of shape \(4, 2\)"):
        drop(torch.ones(3, 4, 2), masks=torch.ones(3, 2))
    with pytest.raises(ValueError, match="`p`"):
        bayesdrop.LockedDropout(-0.1)
    assert drop.kl().item() == 0.0
