"""Calibration metrics at scale: bayesdrop vs netcal vs torchmetrics, side by side.

bayesdrop computes ECE + MCE + Brier + NLL + accuracy together (``classification_metrics``, input
validation included); netcal's ``ECE`` and torchmetrics' ``multiclass_calibration_error`` compute
the ECE alone. All use 15 equal-width bins (netcal's default is 10; it is given 15 here so the
values can be compared). Timings are the best of ``--repeat`` runs, in one process, one thread.

    python benchmarks/calibration.py            # N = 10^7, C = 10
    python benchmarks/calibration.py --n 100000 # quick
"""

from __future__ import annotations

import argparse
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


def best_of(repeat: int, fn):
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


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
    t_all, ours = best_of(args.repeat, lambda: classification_metrics(probs, target, num_bins=bins))
    t_ece, ece = best_of(
        args.repeat, lambda: expected_calibration_error(probs, target, num_bins=bins).item()
    )
    t_netcal, netcal = best_of(args.repeat, lambda: ECE(bins=bins).measure(p_np, y_np))
    t_tm, tm = best_of(
        args.repeat,
        lambda: multiclass_calibration_error(
            probs, target, num_classes=classes, n_bins=bins
        ).item(),
    )
    rows = [
        ("bayesdrop ECE+MCE+Brier+NLL+acc", t_all, ours.ece),
        ("bayesdrop ECE alone", t_ece, ece),
        ("netcal ECE alone", t_netcal, netcal),
        ("torchmetrics ECE alone", t_tm, tm),
    ]
    print(f"{'':34}{'seconds':>9}{'ECE':>13}{'time / bayesdrop all':>22}")
    for name, seconds, value in rows:
        print(f"{name:34}{seconds:9.3f}{value:13.8f}{seconds / t_all:22.2f}")
    print(f"netcal / bayesdrop (all four metrics): {t_netcal / t_all:.1f}x")
    print(f"bayesdrop: MCE {ours.mce:.6f}, Brier {ours.brier:.6f}, NLL {ours.nll:.6f}")
    print(f"|ECE bayesdrop - netcal| = {abs(ours.ece - netcal):.2e}")
    print(f"|ECE bayesdrop - torchmetrics| = {abs(ours.ece - tm):.2e} (float32 accumulation)")


if __name__ == "__main__":
    main()
