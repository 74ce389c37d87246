"""A tiny configuration of benchmarks/active_learning.py's functions (synthetic images)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

PATH = Path(__file__).parents[1] / "benchmarks" / "active_learning.py"


def _bench():
    spec = importlib.util.spec_from_file_location("active_learning_bench", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_study_runs():
    bench = _bench()
    g = torch.Generator().manual_seed(0)
    data = {
        "x_pool": torch.rand(100, 1, 28, 28, generator=g),
        "y_pool": torch.arange(100) % 10,
        "x_test": torch.rand(20, 1, 28, 28, generator=g),
        "y_test": torch.arange(20) % 10,
    }
    cfg = bench.parse(["--quick", "--root", "."])
    cfg.steps, cfg.num_samples, cfg.rounds, cfg.k = 3, 4, 1, 5
    curves = {m: [bench.run(m, 0, data, cfg)] for m in ("bald", "batchbald")}
    assert curves["bald"][0].num_labelled == (20, 25)
    summary = bench.summarise(curves)
    assert set(summary) == {"bald", "batchbald"} and summary["bald"]["reach95"] == [None]
    timing = bench.time_scoring(data, num_samples=3, repeat=1)
    assert timing["ratio"] > 0 and {"bayesdrop", "baal-style"} <= set(timing)
