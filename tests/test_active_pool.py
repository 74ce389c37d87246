"""Pool scoring through MCPredictor, consistent masks, the split and the loop helper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bayesdrop
from bayesdrop import active
from bayesdrop._random import derive_seed


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 64), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(64, 4),
    )  # fmt: skip


def _conv():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout2d(0.3), nn.Flatten(),
        bayesdrop.MCDropout(nn.Linear(4 * 6 * 6, 3), p=0.5),
    )  # fmt: skip


@pytest.mark.parametrize("method", ["bald", "max_entropy", "variation_ratio", "mean_std", "margin"])
def test_streamed_scores_match_samples(method):
    model, pool = _model(), torch.randn(50, 6)
    streamed = active.score_pool(model, pool, method=method, batch_size=25, seed=3, progress=False)
    # batch b draws from the stream derive_seed(seed, 0, b) (the one seeding scheme)
    expected = []
    for b in range(2):
        pred = bayesdrop.mc_predict(
            model,
            pool[25 * b : 25 * (b + 1)],
            num_samples=20,
            seed=derive_seed(3, 0, b),
            return_samples=True,
        )
        expected.append(active.acquisition_scores(pred.samples, method))
    assert streamed.samples is None
    assert torch.allclose(streamed.scores, torch.cat(expected), atol=1e-5)


def test_batches_and_calls_draw_from_independent_streams():
    """Issue 25: batch b was seeded with seed + b, so seed 0's second batch repeated seed 1's
    first; an unseeded call drew its masks with seed 0."""
    model, pool = _model(), torch.randn(20, 6).repeat(2, 1)  # batch 1 repeats batch 0's inputs

    def run(seed):
        return active.score_pool(
            model, pool, method="bald", batch_size=20, seed=seed, progress=False
        ).scores

    zero, one = run(0), run(1)
    assert not torch.allclose(zero[20:], one[:20])  # was equal
    assert not torch.allclose(zero[:20], zero[20:])  # batches differ within a call
    torch.manual_seed(5)
    a = run(None)
    torch.manual_seed(5)
    assert torch.equal(a, run(None))  # unseeded: reproducible under torch.manual_seed
    assert not torch.equal(a, run(None))  # and two unseeded calls differ


@pytest.mark.parametrize("engine", ["loop", "batched", "cached"])
def test_consistent_masks_every_engine(engine):
    model, x = _conv(), torch.randn(1, 1, 8, 8).repeat(6, 1, 1, 1)
    scored = active.score_pool(
        model, x, method="batchbald", batch_size=4, engine=engine, seed=1, progress=False
    )
    samples = scored.samples
    assert samples.shape == (20, 6, 3)
    assert torch.allclose(samples, samples[:, :1].expand_as(samples), atol=1e-6)  # copies agree
    assert samples.std(0).max() > 1e-3  # but samples differ


def test_consistent_masks_restore_forward():
    model = _model()
    with active.consistent_masks(model, num_samples=4):
        pass
    assert "forward" not in vars(model[2])


def test_pool_copies_batchbald_one_bald_all():
    # sharp sampled probabilities (little label noise, as a trained model): a second label of
    # the same image then tells almost nothing new about the weights
    # (x10: at x6 BatchBALD took a second copy on 4 of 10 seeds, on none at x10)
    model = _model()
    with torch.no_grad():
        model[-1].weight.mul_(10.0)
    torch.manual_seed(1)
    base = torch.randn(40, 6)
    base[7] *= 6.0  # far from the rest: the clearly highest BALD score
    assert int(active.score_pool(model, base, seed=0, progress=False).scores.argmax()) == 7
    pool = torch.cat([base, base[7:8].repeat(3, 1)])
    copies = {7, 40, 41, 42}
    for seed in range(3):
        options = {"seed": seed, "progress": False, "num_samples": 50}
        top = active.acquire(model, pool, 4, method="bald", **options)
        assert set(top.indices.tolist()) == copies  # top-k BALD takes every copy
        bb = active.acquire(model, pool, 4, method="batchbald", **options)
        assert len(copies & set(bb.indices.tolist())) == 1


def test_seeds_reproduce():
    model, pool = _model(), torch.randn(30, 6)
    for method in ("bald", "random", "batchbald"):
        a = active.acquire(model, pool, 3, method=method, seed=7, progress=False)
        b = active.acquire(model, pool, 3, method=method, seed=7, progress=False)
        assert torch.equal(a.indices, b.indices)
    c = active.acquire(model, pool, 3, method="bald", selection="power", seed=7, progress=False)
    d = active.acquire(model, pool, 3, method="bald", selection="power", seed=7, progress=False)
    assert torch.equal(c.indices, d.indices)


def test_errors():
    model, pool = _model(), torch.randn(5, 6)
    with pytest.raises(ValueError, match=r"Expected `k` to be at most the pool size \(5\)"):
        active.acquire(model, pool, 6)
    with pytest.raises(ValueError, match="Expected `k` to be a positive integer, but got 0"):
        active.acquire(model, pool, 0)
    with pytest.raises(ValueError, match=r"Expected `method` to be one of 'bald'.*'batchbald'"):
        active.acquire(model, pool, 1, method="coreset")
    with pytest.raises(ValueError, match="Expected `selection` to be 'top_k' for method='batch"):
        active.acquire(model, pool, 1, method="batchbald", selection="power")
    plain = nn.Sequential(nn.Linear(6, 4))
    with pytest.raises(
        ValueError, match="Expected `model` to be a model with at least one dropout"
    ):
        active.acquire(plain, pool, 1, progress=False)
    alpha = nn.Sequential(nn.Linear(6, 8), nn.AlphaDropout(0.2), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"consistent masks.*AlphaDropout.*consistent=False"):
        active.acquire(alpha, pool, 1, method="batchbald", progress=False)


def test_split():
    split = active.ActiveSplit.balanced(torch.arange(10) % 5, per_class=1, seed=0)
    assert split.num_labelled == 5 and split.num_pool == 5
    assert sorted((torch.arange(10) % 5)[split.labelled].tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="Expected `indices` to be distinct pool indices"):
        split.label(split.labelled[:1])
    with pytest.raises(ValueError, match=r"Expected `indices` to be integers in \[0, 10\)"):
        split.label(torch.tensor([10]))
    with pytest.raises(ValueError, match="Expected `per_class` to be at most 2"):
        active.ActiveSplit.balanced(torch.arange(10) % 5, per_class=3)


def test_loop_records_curve():
    x, y = torch.randn(60, 6), torch.randint(0, 4, (60,))
    split = active.ActiveSplit.balanced(y, per_class=1, seed=0)
    calls = []

    def train(labelled, new):
        calls.append((len(labelled), len(new)))
        return _model()

    curve = active.run_active_learning(
        split, x, train, lambda m: float(len(calls)), k=3, rounds=2, progress=False
    )
    assert curve.num_labelled == (4, 7, 10)
    assert calls == [(4, 4), (7, 3), (10, 3)]
    assert curve.values == (1.0, 2.0, 3.0) and curve.first_reaching(2.0) == 7
    assert len(set(torch.cat(curve.acquired).tolist()) & set(split.labelled[:4].tolist())) == 0


@pytest.mark.parametrize(
    "positions,exc,match",
    [
        (
            [0.7],
            TypeError,
            r"`positions` to be integer indices, but got dtype torch.float64\. .*not rounded",
        ),
        (torch.tensor([2.0]), TypeError, "`positions` to be integer indices, but got dtype"),
        (torch.tensor([True]), TypeError, "`positions` to be integer indices, but got dtype"),
        (
            [-1],
            ValueError,
            r"`positions` to be integers in \[0, 4\), but got values in \[-1, -1\]\. A negative",
        ),
        ([4], ValueError, r"`positions` to be integers in \[0, 4\), but got values in \[4, 4\]"),
    ],
)
def test_split_refuses_fractional_and_negative_positions(positions, exc, match):
    split = active.ActiveSplit(5, [1])
    with pytest.raises(exc, match=match):
        split.label_pool_positions(positions)
    assert split.num_labelled == 1  # nothing was labelled


def test_split_refuses_fractional_initial_indices_and_takes_numpy_integers():
    import numpy as np

    with pytest.raises(TypeError, match="`labelled` to be integer indices, but got dtype"):
        active.ActiveSplit(5, [2.5])
    with pytest.raises(TypeError, match="`indices` to be integer indices, but got a boolean"):
        active.ActiveSplit(5).label([1, False])  # not index 0
    split = active.ActiveSplit(5, np.array([3, 1], dtype=">u4"))  # big-endian uint32
    assert split.labelled.tolist() == [3, 1]
    assert split.label_pool_positions(np.array([0], dtype=np.uint16)).tolist() == [0]
