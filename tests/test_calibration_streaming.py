"""Streaming metrics: batches, merges and processes give the one-shot numbers.

Every test runs on PyTorch's kernels and on the fused one-pass kernel (``BAYESDROP_FUSED``).
"""

from __future__ import annotations

import dataclasses

import gloo
import pytest
import torch
import torch.distributed as dist

from bayesdrop.calibration import (
    Accuracy,
    BrierScore,
    CalibrationError,
    CalibrationMetrics,
    NegativeLogLikelihood,
    accuracy,
    brier_score,
    classification_metrics,
    expected_calibration_error,
    negative_log_likelihood,
)
from bayesdrop.exceptions import BayesdropValueError

pytestmark = pytest.mark.usefixtures("metric_path")


def data(n: int = 3001, c: int = 6, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    probs = (2.5 * torch.randn(n, c, generator=gen, dtype=torch.float64)).softmax(-1)
    target = torch.randint(0, c, (n,), generator=gen)
    return probs, target


STREAMING = [
    (lambda: CalibrationError(num_bins=15), lambda p, y: expected_calibration_error(p, y)),
    (
        lambda: CalibrationError(num_bins=7, norm="l2"),
        lambda p, y: expected_calibration_error(p, y, num_bins=7, norm="l2"),
    ),
    (
        lambda: CalibrationError(norm="max"),
        lambda p, y: expected_calibration_error(p, y, norm="max"),
    ),
    (BrierScore, brier_score),
    (NegativeLogLikelihood, negative_log_likelihood),
    (Accuracy, accuracy),
]


@pytest.mark.parametrize(("make", "one_shot"), STREAMING)
def test_batches_and_merge_equal_one_shot(make, one_shot):
    probs, target = data()
    expected = one_shot(probs, target).item()
    metric = make()
    for idx in torch.arange(len(target)).split(500):
        metric.update(probs[idx], target[idx])
    assert metric.compute().item() == pytest.approx(expected, abs=1e-12)
    left, right = (
        make().update(probs[:1234], target[:1234]),
        make().update(probs[1234:], target[1234:]),
    )
    assert left.merge(right).compute().item() == pytest.approx(expected, abs=1e-12)
    assert metric.reset().update(probs, target).compute().item() == pytest.approx(
        expected, abs=1e-12
    )


def test_collection_equals_classification_metrics():
    probs, target = data()
    metric = CalibrationMetrics(num_bins=10)
    for idx in torch.arange(len(target)).split(700):
        metric.update(probs[idx], target[idx])
    ours, expected = (
        dataclasses.asdict(metric.compute()),
        dataclasses.asdict(classification_metrics(probs, target, num_bins=10)),
    )
    assert ours == pytest.approx(expected, abs=1e-12)


def test_mc_samples_stream():
    samples = torch.rand(5, 200, 3, dtype=torch.float64).softmax(-1)
    target = torch.randint(0, 3, (200,))
    metric = (
        CalibrationError()
        .update(samples[:, :120], target[:120], layout="samples")
        .update(samples[:, 120:], target[120:], layout="samples")
    )
    assert metric.compute().item() == pytest.approx(
        expected_calibration_error(samples, target, layout="samples").item(), abs=1e-12
    )


def test_sync_without_process_group_is_a_copy():
    probs, target = data(n=100)
    metric = CalibrationError().update(probs, target)
    synced = metric.sync()
    assert synced is not metric and synced.compute().item() == metric.compute().item()


def test_errors():
    with pytest.raises(BayesdropValueError, match=r"`update`.*before compute"):
        CalibrationError().compute()
    with pytest.raises(
        BayesdropValueError, match=r"`other`.*CalibrationError with options \(15, 'l1'\)"
    ):
        CalibrationError().merge(CalibrationError(num_bins=10))
    with pytest.raises(BayesdropValueError, match=r"`other`"):
        BrierScore().merge(Accuracy())
    with pytest.raises(BayesdropValueError, match=r"`num_bins`"):
        CalibrationError(num_bins=0)
    with pytest.raises(BayesdropValueError, match=r"`probs`.*logits"):
        BrierScore().update(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))


# ---------------------------------------------------------------------------------------------
# two processes, gloo backend: a sharded data set gives the single-process numbers
# ---------------------------------------------------------------------------------------------
def _worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    gloo.init(rank, world_size, init_file)
    try:
        probs, target = data()
        shard = slice(0, 1900) if rank == 0 else slice(1900, None)  # unequal shards
        metrics = {
            "collection": CalibrationMetrics(num_bins=10),
            "l2": CalibrationError(norm="l2"),
            "max": CalibrationError(norm="max"),
        }
        results = {}
        for name, metric in metrics.items():
            for idx in torch.arange(len(target))[shard].split(400):
                metric.update(probs[idx], target[idx])
            value = metric.sync().compute()
            results[name] = dataclasses.asdict(value) if name == "collection" else value.item()
            results[f"{name}_local_untouched"] = metric._state["count"].sum().item()
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_gloo_equal_single_process(tmp_path):
    world_size = 2
    gloo.spawn(_worker, world_size, tmp_path)
    probs, target = data()
    expected = {
        "collection": dataclasses.asdict(classification_metrics(probs, target, num_bins=10)),
        "l2": expected_calibration_error(probs, target, norm="l2").item(),
        "max": expected_calibration_error(probs, target, norm="max").item(),
    }
    for rank in range(world_size):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        for name, value in expected.items():
            assert results[name] == pytest.approx(value, abs=1e-12)
        assert results["collection_local_untouched"] == (1900 if rank == 0 else 1101)


# ---------------------------------------------------------------------------------------------
# empty batches, class counts, checkpoints
# ---------------------------------------------------------------------------------------------
ALL_METRICS = [
    lambda: CalibrationError(num_bins=10),
    lambda: CalibrationMetrics(num_bins=10),
    BrierScore,
    NegativeLogLikelihood,
    Accuracy,
]


def _value(metric):
    value = metric.compute()
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value.item()


@pytest.mark.parametrize("make", ALL_METRICS)
def test_empty_batch_is_a_no_op(make):
    probs, target = data(n=200)
    metric = make().update(probs, target)
    before = _value(metric)
    empty_target = torch.empty(0, dtype=torch.long)
    metric.update(torch.empty(0, 6, dtype=torch.float64), empty_target)
    metric.update(torch.empty(4, 0, 6), empty_target, layout="samples")  # MC samples of no point
    assert _value(metric) == before
    with pytest.raises(BayesdropValueError, match=r"`update`.*before compute"):
        make().update(torch.empty(0, 6), empty_target).compute()
    with pytest.raises(BayesdropValueError, match=r"`target`.*shape \(0,\)"):
        metric.update(torch.empty(0, 6), torch.tensor([1]))


@pytest.mark.parametrize("make", ALL_METRICS)
def test_class_count_change_is_rejected(make):
    probs, target = data(n=100)
    metric = make().update(probs, target)
    other_probs = torch.full((3, 4), 0.25, dtype=torch.float64)
    with pytest.raises(BayesdropValueError, match=r"`probs`.*over 6 classes.*but got 4 classes"):
        metric.update(other_probs, torch.tensor([0, 1, 2]))
    with pytest.raises(BayesdropValueError, match=r"`probs`.*over 6 classes.*but got 4"):
        metric.update(torch.empty(0, 4), torch.empty(0, dtype=torch.long))
    with pytest.raises(BayesdropValueError, match=r"`other`.*over 6 classes"):
        metric.merge(make().update(other_probs, torch.tensor([0, 1, 2])))
    metric.reset().update(other_probs, torch.tensor([0, 1, 2]))  # a reset forgets the count


@pytest.mark.parametrize("make", ALL_METRICS)
def test_state_dict_round_trip(make, tmp_path):
    probs, target = data()
    metric = make().update(probs[:1000], target[:1000])
    torch.save(metric.state_dict(), tmp_path / "metric.pt")
    restored = make().load_state_dict(torch.load(tmp_path / "metric.pt", weights_only=True))
    assert _value(restored) == _value(metric)
    restored.update(probs[1000:], target[1000:])
    assert _value(restored) == pytest.approx(_value(make().update(probs, target)), abs=1e-12)
    with pytest.raises(BayesdropValueError, match=r"`probs`.*over 6 classes"):
        restored.update(torch.full((2, 3), 1 / 3), torch.tensor([0, 1]))
    before = _value(metric)
    for value in metric.state_dict()["state"].values():
        value.add_(1)  # the state_dict holds copies
    assert _value(metric) == before


def test_load_state_dict_rejects_other_metrics_and_options():
    saved = CalibrationError(num_bins=10).update(*data(n=50)).state_dict()
    with pytest.raises(
        BayesdropValueError,
        match=r"`state_dict`.*CalibrationError with options \(15, 'l1'\).*options \(10, 'l1'\)",
    ):
        CalibrationError().load_state_dict(saved)
    with pytest.raises(BayesdropValueError, match=r"`state_dict`.*of a BrierScore"):
        BrierScore().load_state_dict(saved)
    with pytest.raises(BayesdropValueError, match=r"`state_dict`.*but got list"):
        BrierScore().load_state_dict([])


def _mismatch_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    gloo.init(rank, world_size, init_file)
    try:
        messages = []
        probs, target = data(n=100)
        bins = CalibrationError(num_bins=10 if rank == 0 else 15).update(probs, target)
        c = 6 if rank == 0 else 4
        classes = BrierScore().update(torch.full((5, c), 1 / c), torch.zeros(5, dtype=torch.long))
        idle = BrierScore()  # no data on rank 1: its class count is unknown, which is fine
        if rank == 0:
            idle.update(probs, target)
        for metric in (bins, classes, idle):
            try:
                metric.sync()
                messages.append("ok")
            except BayesdropValueError as error:
                messages.append(str(error))
        torch.save(messages, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_sync_with_different_options_fails_with_a_message(tmp_path):
    gloo.spawn(_mismatch_worker, 2, tmp_path)
    for rank in range(2):
        bins, classes, idle = torch.load(tmp_path / f"rank{rank}.pt")
        assert "Expected `num_bins` to be the same on every process" in bins
        assert "rank 0: CalibrationError(10, 'l1'), rank 1: CalibrationError(15, 'l1')" in bins
        assert "Expected `probs` to be over the same number of classes" in classes
        assert "rank 0: 6, rank 1: 4" in classes
        assert idle == "ok"
