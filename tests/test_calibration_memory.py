"""Classwise calibration error in O(C x bins) memory, equal to a per-class loop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from bayesdrop.calibration import ClasswiseReliabilityDisplay, classwise_calibration_error
from bayesdrop.calibration._binning import bin_statistics


def test_chunked_classwise_ece_equals_per_class_bins(monkeypatch):
    import bayesdrop.calibration._binning as binning

    monkeypatch.setattr(binning, "CLASSWISE_CHUNK_ELEMENTS", 37)  # many ragged chunks
    gen = torch.Generator().manual_seed(0)
    probs = (3 * torch.randn(501, 7, generator=gen, dtype=torch.float64)).softmax(-1)
    probs[:40] = torch.tensor([0.3, 0.1, 0.2, 0.1, 0.1, 0.1, 0.1], dtype=torch.float64)  # edges
    target = torch.randint(0, 7, (501,), generator=gen)
    expected = []
    for c in range(7):
        stats = bin_statistics(probs[:, c], target == c, num_bins=10)
        gap = (stats.mean_accuracy() - stats.mean_confidence()).abs()
        expected.append((stats.counts / 501 * gap).sum().item())
    value = classwise_calibration_error(probs, target, num_bins=10).item()
    assert value == pytest.approx(np.mean(expected), abs=1e-12)
    display = ClasswiseReliabilityDisplay.from_predictions(probs, target, num_bins=10)
    assert [s.counts.sum().item() for s in display.stats] == [501] * 7
    hits = [s.accuracy_sum.sum().item() for s in display.stats]
    assert hits == torch.bincount(target, minlength=7).double().tolist()


def test_classwise_ece_memory_is_bounded():
    # N x C = 2e4 x 1000 float32 (80 MB): a one-hot int64 copy would add 160 MB
    script = textwrap.dedent(
        """
        import resource, torch
        from bayesdrop.calibration import classwise_calibration_error
        torch.manual_seed(0)
        probs = torch.rand(20_000, 1000)
        probs /= probs.sum(-1, keepdim=True)
        target = torch.randint(0, 1000, (20_000,))
        classwise_calibration_error(probs[:10], target[:10])  # warm-up: lazy imports
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        classwise_calibration_error(probs, target)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) / 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    growth_mb = float(result.stdout.strip().splitlines()[-1])
    assert growth_mb < 40, f"peak memory grew by {growth_mb:.0f} MB"
