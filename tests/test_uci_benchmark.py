"""The UCI benchmark's pipeline in a reduced configuration (one split, few epochs)."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bayesdrop.datasets import load_uci

DATA = Path(os.environ.get("BAYESDROP_DATA", Path(__file__).parents[2] / "shared" / "data"))
needs_data = pytest.mark.skipif(not (DATA / "uci").is_dir(), reason="UCI data not available")
SCRIPT = Path(__file__).parents[1] / "benchmarks" / "uci.py"
ABLATION = SCRIPT.with_name("uci_concrete_ablation.py")


def _benchmark(script=SCRIPT, name="uci_benchmark"):
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@needs_data
def test_reduced_protocol_runs_and_beats_the_mean(capsys):
    bench = _benchmark()
    report = bench.main(
        [
            "--data-root",
            str(DATA),
            "--dataset",
            "yacht",
            "--splits",
            "1",
            "--epochs",
            "150",
            "--samples",
            "100",
            "--mfvi-epochs",
            "150",
            "--mfvi-lr",
            "0.01",
            "--no-progress",
        ]
    )
    _, y_train, _, y_test = load_uci("yacht", DATA).split(0)
    mean_rmse = float(np.sqrt(np.mean((y_test - y_train.mean()) ** 2)))
    for method in ("mc", "concrete", "mfvi"):
        res = report["yacht"][method]
        assert math.isfinite(res["ll"]) and res["rmse"] < 0.7 * mean_rmse, (method, res)
    p, tau = report["yacht"]["mc"]["chosen_p_tau"][0]
    assert p in (0.005, 0.01, 0.05, 0.1) and tau in (0.25, 0.5, 0.75)
    assert np.asarray(report["yacht"]["mc"]["validation_ll"]).shape == (1, 12)
    printed = capsys.readouterr().out
    assert "published MC" in printed and "0.666" in printed
    assert "validation LL per grid point" in printed and "-1.657" in printed


def test_validation_grid_table_pairs_splits():
    bench = _benchmark()
    grid = [(0.01, 0.5), (0.1, 0.5)]
    ours = [[-1.0, -2.0], [-3.0, -2.0]]
    published = {(0.01, 0.5): (-1.5, -3.5, -9.0), (0.1, 0.5): (-2.0,)}
    lines = bench.format_validation_grid(grid, ours, published).splitlines()
    # p = 0.01: ours (-1, -3), published on the same two splits (-1.5, -3.5): +0.5 twice
    assert lines[1].split()[-5:] == ["-2.000", "-2.500", "+0.500", "±", "0.000"]
    # p = 0.1: the published file has one split only, so no comparison is printed
    assert lines[2].split()[-1] == "-2.000"


def test_validation_split_is_the_last_fifth():
    bench = _benchmark()

    class Toy:
        X = np.arange(20.0)[:, None]
        y = np.arange(20.0)
        splits = ((np.arange(10), np.arange(10, 20)),)

    x_tr, _, x_val, _ = bench.split_sets(Toy, 0, validation=True)
    assert x_tr[:, 0].tolist() == list(range(8)) and x_val[:, 0].tolist() == [8, 9]
    _, _, x_te, _ = bench.split_sets(Toy, 0, validation=False)
    assert x_te[:, 0].tolist() == list(range(10, 20))


def test_unknown_method_is_rejected(capsys):
    with pytest.raises(SystemExit):
        _benchmark().parse_args(["--methods", "mc,svgd"])
    assert "svgd" in capsys.readouterr().err


def test_noise_scale_fit_matches_the_closed_form():
    # one sample per point: the mixture is one Gaussian and the best scale is mean(r^2 / v)
    ablation = _benchmark(ABLATION, "uci_concrete_ablation")
    gen = torch.Generator().manual_seed(0)
    mean, y = torch.randn(1, 200, generator=gen), torch.randn(200, generator=gen)
    log_var = 0.3 * torch.randn(1, 200, generator=gen)
    best = float(((y - mean).pow(2) / log_var.exp()).mean())
    assert math.exp(ablation.fit_noise_scale(mean, log_var, y)) == pytest.approx(best, rel=1e-4)


@needs_data
def test_concrete_ablation_runs_reduced(capsys):
    ablation = _benchmark(ABLATION, "uci_concrete_ablation")
    flags = "--dataset yacht --splits 2 --epochs 20 --samples 50 --val-samples 50"
    report = ablation.main(
        ["--data-root", str(DATA), *flags.split(), "--variants", "homo-val,tau-grid"]
    )
    assert len(report["homo-val"]["log_noise_scale"]) == 2
    assert set(report["tau-grid"]["chosen_tau"]) <= {0.25, 0.5, 0.75}
    assert all(math.isfinite(v["ll"]) for v in report.values())
    assert "published MC" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        ablation.parse_args(["--variants", "nope"])
