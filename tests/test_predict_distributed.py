"""MC prediction inside torch.distributed (gloo, 2 and 3 processes spawned by the test)."""

from __future__ import annotations

import dataclasses
import traceback
from types import SimpleNamespace
from unittest import mock

import gloo
import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import bayesdrop
from bayesdrop import CalibrationReport
from bayesdrop.calibration import (
    CalibrationMetrics,
    ClasswiseReliabilityDisplay,
    classification_metrics,
)
from bayesdrop.predict._runner import default_memory_budget
from bayesdrop.predict.distributed import mc_predict_distributed, rank_seed

N, C = 23, 4  # uneven shards for 2 and 3 ranks: DistributedSampler pads


class IndexEcho(nn.Module):
    """Logits that name the row: 10 * one_hot(id mod C) plus a little dropout noise, so the
    argmax of the gathered probabilities tells whether every row is where it belongs."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        ids = x[:, 0].long()
        return 10.0 * nn.functional.one_hot(ids % C, C).double() + 0.1 * self.drop(x[:, 1:])


def dataset():
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(N, dtype=torch.float64)
    x = torch.cat([ids[:, None], torch.randn(N, C, generator=g, dtype=torch.float64)], 1)
    y = torch.randint(0, C, (N,), generator=g)
    return TensorDataset(x, y)


def _ood_scores():
    return torch.rand(17, generator=torch.Generator().manual_seed(4), dtype=torch.float64)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(C + 1, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, C)
    ).double()


def _scenarios(rank: int, world: int) -> dict:
    data = dataset()
    out: dict = {}
    sampler = DistributedSampler(data, shuffle=True, seed=3, drop_last=False)
    loader = DataLoader(data, batch_size=4, sampler=sampler)
    echo = bayesdrop.MCPredictor(IndexEcho().eval(), num_samples=8, seed=0, progress=False)
    gathered = echo.predict(loader)
    out["echo_argmax"] = gathered.probs.argmax(-1)
    out["echo_target"] = gathered.target
    out["rank0_only"] = echo.predict(loader, gather="rank0") is None
    local = echo.predict(loader, gather="none")
    out["local_rows"] = local.probs.shape[0]
    # the MLP: in distribution like one process
    model = mlp().eval()
    predictor = bayesdrop.MCPredictor(model, num_samples=200, seed=1, progress=False)
    full = predictor.predict(loader)
    out["mlp"], out["mlp_mi"] = full.probs, full.mutual_information
    out["mlp_again"] = predictor.predict(loader).probs  # reproducible for a seed and world size
    # streaming metrics on this rank's rows (padding dropped), summed over ranks by sync()
    shard = predictor.predict(loader, gather="none")
    metrics = CalibrationMetrics(num_bins=10)
    metrics.update(shard.probs, shard.target)
    out["metrics"] = dataclasses.asdict(metrics.sync().compute())
    # the calibration report of the shards: probabilities stay on their rank
    ood = _ood_scores()[rank::world]
    report = CalibrationReport.from_sharded_predictions(
        shard, shard.target, ood_scores=ood, uncertainty="mutual_information", num_bins=10
    )
    out["report"] = report.to_dict()
    out["report_scores"] = report.id_scores
    out["report_classwise"] = [dataclasses.astuple(b) for b in report.classwise_bins]
    out["report_html"] = len(report.to_html())
    try:
        CalibrationReport.from_sharded_predictions(shard, shard.target, num_bins=10 + rank)
    except ValueError as exc:
        out["report_mismatch"] = str(exc)
    try:
        labels = shard.target if rank < world - 1 else shard.target[1:]
        CalibrationReport.from_sharded_predictions(shard, labels)
    except Exception as exc:
        out["report_failure"] = f"{type(exc).__name__}: {exc}"
    # samples split across ranks: every rank returns the same prediction from S samples
    x = data.tensors[0]
    split = mc_predict_distributed(model, x, num_samples=301, seed=5, return_samples=True)
    out["split_samples"] = split.samples
    out["split_probs"] = split.probs
    local_part = bayesdrop.mc_predict(model, x, num_samples=3, seed=rank_seed(5, rank))
    out["local_first"] = local_part.probs
    # a loader without a DistributedSampler: a warning, every rank predicts everything
    with pytest.warns(UserWarning, match="no DistributedSampler"):
        everything = echo.predict(DataLoader(data, batch_size=5))
    out["unsharded_rows"] = everything.probs.shape[0]
    # mismatched options: an error on every rank, no hang
    try:
        bayesdrop.MCPredictor(model, num_samples=4 + rank, progress=False).predict(loader)
    except ValueError as exc:
        out["mismatch"] = str(exc)
    # a rank whose model raises: every rank gets an error naming it
    flaky = nn.Sequential(nn.Dropout(0.3), nn.Linear(C + 1, C)).double()
    if rank == world - 1:
        flaky[1].weight.data = flaky[1].weight.data[:, :2].contiguous()  # wrong shape here only
    try:
        bayesdrop.MCPredictor(flaky, num_samples=4, seed=0, progress=False).predict(loader)
    except Exception as exc:
        out["failure"] = f"{type(exc).__name__}: {exc}"
    return out


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    gloo.init(rank, world, init_file)
    try:
        result = _scenarios(rank, world)
    except Exception:
        result = {"error": traceback.format_exc()}
    finally:
        dist.destroy_process_group()
    torch.save(result, f"{out_dir}/rank{rank}.pt")


def _spawn(world: int, tmp_path) -> list[dict]:
    gloo.spawn(_worker, world, tmp_path, timeout=240)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(world)]
    for r, result in enumerate(results):
        assert "error" not in result, f"rank {r}:\n{result.get('error')}"
    return results


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_prediction_equals_one_process(world, tmp_path):
    results = _spawn(world, tmp_path)
    data = dataset()
    ids, targets = data.tensors[0][:, 0].long(), data.tensors[1]
    single = bayesdrop.mc_predict(mlp().eval(), data.tensors[0], num_samples=2000, seed=9)
    for r, out in enumerate(results):
        # every row once, in data-set order, the sampler's padding dropped
        torch.testing.assert_close(out["echo_argmax"], ids % C, rtol=0, atol=0)
        torch.testing.assert_close(out["echo_target"], targets, rtol=0, atol=0)
        assert out["rank0_only"] == (r != 0)
        assert out["unsharded_rows"] == N
        # in distribution: the 200-sample probabilities against a 2000-sample reference
        diff = (out["mlp"] - single.probs).abs()
        assert float(diff.max()) < 0.12, float(diff.max())
        torch.testing.assert_close(out["mlp"], results[0]["mlp"], rtol=0, atol=0)
        torch.testing.assert_close(out["mlp_again"], out["mlp"], rtol=0, atol=0)
        assert "Expected `options` to be the same on every rank" in out["mismatch"]
        assert f"rank {world - 1} raised" in out["failure"] or "mat1 and mat2" in out["failure"]
    # the padded rows are dropped from the local shards: the shards add up to the data set
    assert sum(out["local_rows"] for out in results) == N
    # sharded streaming metrics equal the single-process metrics on the gathered predictions
    gathered = results[0]["mlp"]
    expected = dataclasses.asdict(classification_metrics(gathered, targets, num_bins=10))
    for out in results:
        for key, value in expected.items():
            assert out["metrics"][key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    # the sharded calibration report equals the report of the gathered predictions
    single_process = CalibrationReport.from_predictions(
        SimpleNamespace(probs=gathered, mutual_information=results[0]["mlp_mi"]),
        targets,
        ood_scores=_ood_scores(),
        uncertainty="mutual_information",
        num_bins=10,
    )
    want = single_process.to_dict()
    classwise = ClasswiseReliabilityDisplay.from_predictions(gathered, targets, num_bins=10)
    for out in results:
        assert out["report"].keys() == want.keys()
        _assert_close_dicts(out["report"], want)
        assert sorted(out["report_scores"].tolist()) == pytest.approx(
            sorted(single_process.id_scores.tolist()), abs=1e-12
        )
        assert len(out["report_classwise"]) == C
        for got, ref in zip(out["report_classwise"], classwise.stats, strict=True):
            for a, b in zip(got, dataclasses.astuple(ref), strict=True):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert out["report_html"] > 10_000
        assert "Expected `num_bins` to be the same on every rank" in out["report_mismatch"]
        assert "target" in out["report_failure"], out["report_failure"]


def _assert_close_dicts(got, want, path="report"):
    """Equal structure; numbers equal to 1e-12 (sums run in another order across ranks)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), path
        for key in want:
            _assert_close_dicts(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            _assert_close_dicts(a, b, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), path
    else:
        assert got == want, path


@pytest.mark.parametrize("world", [2])
def test_samples_split_across_ranks(world, tmp_path):
    results = _spawn(world, tmp_path)
    first = results[0]
    assert first["split_samples"].shape[0] == 301
    for out in results[1:]:
        torch.testing.assert_close(out["split_samples"], first["split_samples"], rtol=0, atol=0)
    # ranks draw from different streams: no rank repeats another's masks
    assert not torch.equal(results[0]["local_first"], results[1]["local_first"])
    data = dataset()
    single = bayesdrop.mc_predict(mlp().eval(), data.tensors[0], num_samples=3000, seed=9)
    assert float((first["split_probs"] - single.probs).abs().max()) < 0.1
    per_rank = first["split_samples"].split([151, 150])
    assert not torch.equal(per_rank[0][:150], per_rank[1])


def test_outside_a_distributed_job_nothing_changes():
    data = dataset()
    model = mlp().eval()
    loader = DataLoader(data, batch_size=5)
    a = bayesdrop.MCPredictor(model, num_samples=6, seed=0, progress=False).predict(loader)
    b = bayesdrop.MCPredictor(model, num_samples=6, seed=0, progress=False).predict(
        loader, gather="rank0"
    )
    torch.testing.assert_close(a.probs, b.probs, rtol=0, atol=0)
    split = mc_predict_distributed(model, data.tensors[0], num_samples=6, seed=0)
    plain = bayesdrop.mc_predict(model, data.tensors[0], num_samples=6, seed=0)
    torch.testing.assert_close(split.probs, plain.probs, rtol=0, atol=0)


def test_memory_budget_from_free_device_memory():
    assert default_memory_budget(torch.device("cpu")) is None
    with mock.patch("torch.cuda.mem_get_info", return_value=(8 * 2**30, 16 * 2**30)) as info:
        assert default_memory_budget(torch.device("cuda", 1)) == 4 * 2**30
    info.assert_called_once_with(torch.device("cuda", 1))


def test_batches_are_moved_to_the_model_device_through_pinned_memory():
    from bayesdrop.predict import _predictor as predictor_module

    x, y = torch.randn(4, 3), torch.arange(4)
    calls = []

    def fake_to(self, device, non_blocking=False):
        calls.append((str(device), non_blocking))
        return self

    with (
        mock.patch.object(torch.Tensor, "pin_memory", lambda self: self),
        mock.patch.object(torch.Tensor, "is_pinned", lambda self: False),
        mock.patch.object(torch.Tensor, "to", fake_to),
    ):
        staged = list(
            predictor_module._prefetch([(x, y), ({"a": x}, None)], torch.device("cuda"), 0)
        )
    assert len(staged) == 2
    assert calls == [("cuda", True), ("cuda", True), ("cuda", True)]
