"""Top-k, stochastic batch acquisition and BatchBALD."""

from __future__ import annotations

import pytest
import torch

from bayesdrop import active


def _pool(num_samples=20, num_points=40, num_classes=4, sharp=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = sharp * torch.randn(num_samples, num_points, num_classes, generator=g)
    return logits.softmax(-1)


def test_top_k_ties_and_seed():
    scores = torch.tensor([0.5, 0.5, 0.5, 0.1])
    assert active.top_k(scores, 2).indices.tolist() == [0, 1]
    a, b = active.top_k(scores, 2, seed=1), active.top_k(scores, 2, seed=1)
    assert torch.equal(a.indices, b.indices)
    assert set(a.indices.tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("mode", ["power", "softmax", "softrank"])
def test_stochastic_batch_seeded_distinct(mode):
    scores = active.bald(_pool())
    a = active.stochastic_batch(scores, 10, mode=mode, seed=5)
    b = active.stochastic_batch(scores, 10, mode=mode, seed=5)
    c = active.stochastic_batch(scores, 10, mode=mode, seed=6)
    assert torch.equal(a.indices, b.indices)
    assert not torch.equal(a.indices, c.indices)
    assert len(set(a.indices.tolist())) == 10


def test_stochastic_batch_temperature_limits():
    scores = torch.linspace(0.01, 1.0, 50)
    cold = active.stochastic_batch(scores, 5, mode="softmax", temperature=1e-4, seed=0)
    assert sorted(cold.indices.tolist()) == [45, 46, 47, 48, 49]
    with pytest.raises(ValueError, match="Expected `scores` to be non-negative for mode='power'"):
        active.stochastic_batch(scores - 0.5, 2, mode="power")
    with pytest.raises(ValueError, match="Expected `mode` to be one of 'power'"):
        active.stochastic_batch(scores, 2, mode="boltzmann")


def test_power_sampling_frequencies():
    # p_i proportional to s_i: point 1 twice as likely as point 0 to be drawn first
    scores = torch.tensor([1.0, 2.0])
    firsts = [active.stochastic_batch(scores, 1, seed=s).indices.item() for s in range(3000)]
    share = sum(firsts) / len(firsts)
    assert abs(share - 2 / 3) < 0.03  # 3.5 standard errors


def test_batchbald_size_one_is_bald_top1():
    samples = _pool()
    assert active.batchbald(samples, 1).indices.item() == active.bald(samples).argmax().item()
    first = active.batchbald(samples, 3).scores[0]
    assert torch.isclose(first, active.bald(samples).max().double(), atol=1e-5)


def test_batchbald_scores_grow_and_equal_exact_joint_mi():
    samples = _pool(num_points=10, num_classes=3)
    picked = active.batchbald(samples, 3, num_configs=10_000)
    assert (picked.scores.diff() >= -1e-9).all()  # mutual information never falls
    batch = samples[:, picked.indices].double()
    conditional = sum(
        active.max_entropy(batch[:, i : i + 1]) - active.bald(batch[:, i : i + 1]) for i in range(3)
    )
    joint_mi = active.joint_entropy(batch) - float(conditional)
    assert abs(joint_mi - picked.scores[-1].item()) < 1e-6


def test_joint_entropy_exact_vs_sampled():
    samples = _pool(num_points=5, num_classes=3, sharp=1.5, seed=1)
    exact = active.joint_entropy(samples)
    estimates = torch.tensor(
        [active.joint_entropy(samples, num_configs=2000, seed=s) for s in range(8)]
    )
    error = estimates.std() / 8**0.5
    assert abs(estimates.mean().item() - exact) < 4 * error.item() + 1e-3
    assert abs(estimates[0].item() - exact) < 0.05 * exact


def test_batchbald_sampled_mode_runs_and_is_seeded():
    samples = _pool(num_points=30, num_classes=4)
    a = active.batchbald(samples, 6, num_configs=64, seed=0)  # exact up to 3 points, then drawn
    b = active.batchbald(samples, 6, num_configs=64, seed=0)
    assert torch.equal(a.indices, b.indices) and len(set(a.indices.tolist())) == 6
    exact = active.batchbald(samples, 6, num_configs=10**6)
    assert a.indices[:3].tolist() == exact.indices[:3].tolist()


def test_batchbald_avoids_copies():
    samples = _pool(num_points=30, num_classes=4, sharp=6.0)
    best = int(active.bald(samples).argmax())
    pool = torch.cat([samples, samples[:, best : best + 1].expand(-1, 4, -1)], dim=1)
    copies = {best, 30, 31, 32, 33}
    top = active.top_k(active.bald(pool), 5).indices.tolist()
    assert set(top) == copies  # top-k BALD takes all five copies
    chosen = active.batchbald(pool, 5).indices.tolist()
    assert len(copies & set(chosen)) == 1


def test_bad_k():
    samples = _pool(num_points=5)
    with pytest.raises(ValueError, match=r"Expected `k` to be at most the pool size \(5\)"):
        active.batchbald(samples, 6)
    with pytest.raises(ValueError, match="Expected `k` to be a positive integer, but got 0"):
        active.top_k(active.bald(samples), 0)
    with pytest.raises(ValueError, match="Expected `k` to be a positive integer, but got -1"):
        active.stochastic_batch(active.bald(samples), -1)


@pytest.mark.parametrize("mode,weightless", [("power", 0.0), ("softmax", float("-inf"))])
def test_stochastic_batch_fills_with_weightless_points_at_random(mode, weightless):
    """Fewer positive weights than k: every weighted point, then weightless ones at random."""
    scores = torch.full((50,), weightless, dtype=torch.float64)
    scores[[7, 30]] = 1.0
    seen = set()
    for seed in range(20):
        chosen = active.stochastic_batch(scores, 5, mode=mode, seed=seed).indices.tolist()
        assert sorted(chosen[:2]) == [7, 30] and len(set(chosen)) == 5
        seen.update(chosen[2:])
    assert len(seen) > 25  # not index order (which would give 0, 1, 2 every time)
    assert not seen <= {0, 1, 2}


@pytest.mark.parametrize("mode", ["power", "softmax"])
def test_stochastic_batch_refuses_infinite_weights(mode):
    scores = torch.tensor([1.0, float("inf"), float("inf"), 0.5])
    with pytest.raises(ValueError, match=rf"`scores` to be below \+inf for mode='{mode}'.*2 \+inf"):
        active.stochastic_batch(scores, 2, mode=mode, seed=0)


def test_stochastic_batch_tiny_temperature_is_top_k():
    scores = torch.tensor([1e300, 3e300, 2e300, 0.0], dtype=torch.float64)
    for mode in ("softmax", "power"):
        chosen = active.stochastic_batch(scores, 2, mode=mode, temperature=1e-300, seed=0)
        assert chosen.indices.tolist() == [1, 2]
