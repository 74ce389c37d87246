"""Calibration metrics at scale: bayesdrop vs netcal vs torchmetrics, side by side.

bayesdrop computes ECE + MCE + Brier + NLL + accuracy together (``classification_metrics``, input
validation included), once on its fused one-pass kernel (numba, the default on CPU for large
inputs) and once on PyTorch's kernels alone (``BAYESDROP_FUSED=never``); netcal's ``ECE`` and
torchmetrics' ``multiclass_calibration_error`` compute the ECE alone. All use 15 equal-width
bins (netcal's default is 10; it is given 15 here so the values can be compared). Timings are
the best of ``--repeat`` interleaved rounds, in one process, one torch thread.

    python benchmarks/calibration.py            # N = 10^7, C = 10
    python benchmarks/calibration.py --n 100000 # quick
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from netcal.metrics import ECE
from torchmetrics.functional.classification import multiclass_calibration_error

from bayesdrop.calibration import classification_metrics, expected_calibration_error


def make_data(n: int, c: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(n, c, generator=gen)
    probs = logits.softmax(-1)
    # labels from a softer model, so the predictions are over-confident (ECE well above 0)
    cdf = (logits / 1.5).softmax(-1).cumsum(-1)
    u = torch.rand(n, 1, generator=gen)
    target = (cdf < u).sum(-1).clamp_max(c - 1)
    return probs, target


def interleaved_best(repeat: int, jobs: dict):
    """Best time of each job over ``repeat`` rounds, the jobs taking turns within a round, so a
    change in machine load hits all of them alike."""
    times = {name: float("inf") for name in jobs}
    values = {}
    for _ in range(repeat):
        for name, fn in jobs.items():
            start = time.perf_counter()
            values[name] = fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times, values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000_000, help="number of predictions")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--bins", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    probs, target = make_data(args.n, args.classes, seed=0)
    p_np, y_np = probs.numpy(), target.numpy()
    print(f"N = {args.n:,}, C = {args.classes}, {args.bins} bins, float32 probabilities, ", end="")
    print(f"{args.threads} torch thread(s), best of {args.repeat}")

    bins, classes = args.bins, args.classes
    start = time.perf_counter()
    classification_metrics(probs[:1000], target[:1000], num_bins=bins)  # warm-up
    os.environ["BAYESDROP_FUSED"] = "always"
    classification_metrics(probs[:1000], target[:1000], num_bins=bins)  # compile or load the kernel
    os.environ["BAYESDROP_FUSED"] = "auto"
    warm = time.perf_counter() - start
    print(f"warm-up incl. loading or compiling the fused kernel: {warm:.2f} s")

    def pytorch_path():
        os.environ["BAYESDROP_FUSED"] = "never"
        try:
            return classification_metrics(probs, target, num_bins=bins)
        finally:
            os.environ["BAYESDROP_FUSED"] = "auto"

    jobs = {
        "all": lambda: classification_metrics(probs, target, num_bins=bins),
        "torch": pytorch_path,
        "ece": lambda: expected_calibration_error(probs, target, num_bins=bins).item(),
        "netcal": lambda: ECE(bins=bins).measure(p_np, y_np),
        "torchmetrics": lambda: multiclass_calibration_error(
            probs, target, num_classes=classes, n_bins=bins
        ).item(),
    }
    times, values = interleaved_best(args.repeat, jobs)
    t_all, t_torch, t_ece, t_netcal, t_tm = (times[k] for k in jobs)
    ours, torch_path, ece, netcal, tm = (values[k] for k in jobs)
    rows = [
        ("bayesdrop ECE+MCE+Brier+NLL+acc", t_all, ours.ece),
        ("  same, PyTorch kernels only", t_torch, torch_path.ece),
        ("bayesdrop ECE alone", t_ece, ece),
        ("netcal ECE alone", t_netcal, netcal),
        ("torchmetrics ECE alone", t_tm, tm),
    ]
    print(f"{'':34}{'seconds':>9}{'ECE':>13}{'time / bayesdrop all':>22}")
    for name, seconds, value in rows:
        print(f"{name:34}{seconds:9.3f}{value:13.8f}{seconds / t_all:22.2f}")
    print(f"netcal / bayesdrop (all four metrics): {t_netcal / t_all:.1f}x", end="")
    print(f" (PyTorch kernels only: {t_netcal / t_torch:.1f}x)")
    print(f"bayesdrop: MCE {ours.mce:.6f}, Brier {ours.brier:.6f}, NLL {ours.nll:.6f}")
    names = ("ece", "mce", "brier", "nll")
    diffs = [f"{k} {abs(getattr(ours, k) - getattr(torch_path, k)):.1e}" for k in names]
    print("fused vs PyTorch kernels, |difference|: " + ", ".join(diffs))
    print(f"|ECE bayesdrop - netcal| = {abs(ours.ece - netcal):.2e}")
    print(f"|ECE bayesdrop - torchmetrics| = {abs(ours.ece - tm):.2e} (float32 accumulation)")


if __name__ == "__main__":
    main()
