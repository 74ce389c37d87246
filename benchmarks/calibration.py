"""Calibration metrics at scale: bayesdrop vs netcal vs torchmetrics, side by side.

bayesdrop computes ECE + MCE + Brier + NLL + accuracy together (``classification_metrics``, input
validation included), once on its fused one-pass kernel (numba, the default on CPU for large
inputs) and once on PyTorch's kernels alone (``BAYESDROP_FUSED=never``); netcal's ``ECE`` and
torchmetrics' ``multiclass_calibration_error`` compute the ECE alone; bayesdrop's classwise ECE
is timed too. All use 15 equal-width bins (netcal's default is 10; it is given 15 here so the
values can be compared). Timings are the best of ``--repeat`` interleaved rounds, in one process,
one torch thread. The memory column is the peak resident memory a job adds on top of what the
process held before it (Linux: ``VmHWM`` reset through ``/proc/self/clear_refs``), input excluded.

    python benchmarks/calibration.py                              # N = 10^7, C = 10
    python benchmarks/calibration.py --n 100000 --classes 1000    # many classes
    python benchmarks/calibration.py --n 100000                   # quick
    python benchmarks/calibration.py --yardstick                  # vs numpy, C = 2 ... 1000

``--yardstick`` times, for each class count of ``--class-counts`` (N = ``--elements`` / C
points), bayesdrop's ECE and its five metrics against a plain NumPy floor that does no input
check and computes the ECE's bin sums only (see :func:`numpy_yardstick`): medians of
``--repeat`` interleaved rounds, one process, one thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types

import numpy as np
import torch
from netcal.metrics import ECE

# torchmetrics imports torchvision, whose PyPI wheels (CUDA builds) fail to register their C++
# operators beside the CPU torch of the Makefile; as tests/conftest.py does, the two registration
# modules are replaced by empty ones (torchmetrics' calibration error never uses those operators).
for _name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_name, types.ModuleType(_name))
from torchmetrics.functional.classification import multiclass_calibration_error  # noqa: E402

from bayesdrop.calibration import (  # noqa: E402
    classification_metrics,
    classwise_calibration_error,
    expected_calibration_error,
)


def make_data(n: int, c: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(n, c, generator=gen)
    probs = logits.softmax(-1)
    # labels from a softer model, so the predictions are over-confident (ECE well above 0)
    cdf = (logits / 1.5).softmax(-1).cumsum(-1)
    u = torch.rand(n, 1, generator=gen)
    target = (cdf < u).sum(-1).clamp_max(c - 1)
    return probs, target


def _status_kb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def peak_extra_mb(fn):
    """(value, peak resident memory added by ``fn`` in MB); NaN where /proc is unavailable."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset VmHWM to the current resident size
    except OSError:
        return fn(), float("nan")
    before = _status_kb("VmRSS")
    value = fn()
    return value, (_status_kb("VmHWM") - before) / 1024


def interleaved_best(repeat: int, jobs: dict):
    """Best time of each job over ``repeat`` rounds, the jobs taking turns within a round, so a
    change in machine load hits all of them alike; the peak extra memory of the first round."""
    times = {name: float("inf") for name in jobs}
    values, memory = {}, {}
    for round_ in range(repeat):
        for name, fn in jobs.items():
            start = time.perf_counter()
            if round_ == 0:
                values[name], memory[name] = peak_extra_mb(fn)
            else:
                values[name] = fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times, values, memory


def numpy_yardstick(p, y, num_bins: int) -> float:
    """The ECE by plain NumPy, without input checks: the floor bayesdrop's metrics are held to.

    ``predicted = p.argmax(1)`` (one pass over the ``(N, C)`` float32 array, NumPy's SIMD
    kernel); the confidence ``p.max(1)`` gathered at those indices (``N`` reads, not a second
    pass); the bin ``min(floor(B * confidence), B - 1)`` with the product in float64 (exact for
    float32); then three ``np.bincount`` over the bins: the counts, the confidences as weights and
    ``predicted == y`` as weights; ECE = ``sum_b |hits_b - confidence_b| / N``. No range or
    row-sum check, no MCE, Brier or NLL.
    """
    predicted = p.argmax(1)
    confidence = np.take_along_axis(p, predicted[:, None], 1)[:, 0]
    index = np.minimum((confidence.astype(np.float64) * num_bins).astype(np.intp), num_bins - 1)
    counts = np.bincount(index, minlength=num_bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=num_bins)
    hits = np.bincount(index, weights=predicted == y, minlength=num_bins)
    assert counts.sum() == len(y)
    return float(np.abs(hits - confidence_sum).sum() / len(y))


def interleaved_median(repeat: int, jobs: dict):
    """Median time of each job over ``repeat`` rounds, the jobs taking turns within a round."""
    times: dict = {name: [] for name in jobs}
    values = {name: fn() for name, fn in jobs.items()}  # warm-up, and the values
    for _ in range(repeat):
        for name, fn in jobs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}, values


def _yardstick_row(n: int, c: int, bins: int, repeat: int) -> None:
    probs, target = make_data(n, c, seed=0)
    p_np, y_np = probs.numpy(), target.numpy()
    jobs = {
        "numpy": lambda: numpy_yardstick(p_np, y_np, bins),
        "ece": lambda: expected_calibration_error(probs, target, num_bins=bins).item(),
        "all": lambda: classification_metrics(probs, target, num_bins=bins),
    }
    times, values = interleaved_median(repeat, jobs)
    t_np, t_ece, t_all = times["numpy"] * 1e3, times["ece"] * 1e3, times["all"] * 1e3
    diff = abs(values["ece"] - values["numpy"])
    print(f"{c:5d}{n:11,d}{t_np:10.1f}{t_ece:9.1f}{t_all:9.1f}", end="")
    print(f"{t_ece / t_np:13.2f}{t_all / t_np:13.2f}{diff:15.1e}")


def yardstick(args) -> None:
    """bayesdrop's ECE (and all five metrics) against :func:`numpy_yardstick`, per class count."""
    bins = args.bins
    print(
        f"{args.elements:.0e} entries per class count, {bins} bins, float32 probabilities, ", end=""
    )
    print(f"{args.threads} torch thread(s), median of {args.repeat} interleaved rounds")
    head = f"{'C':>5}{'N':>11}{'numpy ms':>10}{'ECE ms':>9}{'all ms':>9}"
    print(head + f"{'ECE / numpy':>13}{'all / numpy':>13}{'|ECE - numpy|':>15}")
    for c in args.class_counts:
        _yardstick_row(int(args.elements) // c, c, bins, args.repeat)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000_000, help="number of predictions")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--bins", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--yardstick", action="store_true", help="bayesdrop vs a numpy floor")
    parser.add_argument("--elements", type=float, default=2e7, help="N x C for --yardstick")
    parser.add_argument(
        "--class-counts", type=lambda s: [int(c) for c in s.split(",")], default=[2, 10, 100, 1000]
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.yardstick:
        yardstick(args)
        return
    probs, target = make_data(args.n, args.classes, seed=0)
    p_np, y_np = probs.numpy(), target.numpy()
    input_mb = (probs.numel() * probs.element_size() + target.numel() * 8) / 2**20
    print(f"N = {args.n:,}, C = {args.classes}, {args.bins} bins, float32 probabilities ", end="")
    print(f"({input_mb:.0f} MB with the labels), ", end="")
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
        "classwise": lambda: classwise_calibration_error(probs, target, num_bins=bins).item(),
    }
    times, values, memory = interleaved_best(args.repeat, jobs)
    t_all, t_torch, t_netcal = times["all"], times["torch"], times["netcal"]
    ours, torch_path, ece, netcal, tm, cw = (values[k] for k in jobs)
    rows = [
        ("bayesdrop ECE+MCE+Brier+NLL+acc", "all", ours.ece),
        ("  same, PyTorch kernels only", "torch", torch_path.ece),
        ("bayesdrop ECE alone", "ece", ece),
        ("netcal ECE alone", "netcal", netcal),
        ("torchmetrics ECE alone", "torchmetrics", tm),
        ("bayesdrop classwise ECE", "classwise", cw),
    ]
    header = f"{'':34}{'seconds':>9}{'value':>13}{'time / bayesdrop all':>22}{'extra MB':>10}"
    print(header)
    for name, key, value in rows:
        seconds = times[key]
        print(f"{name:34}{seconds:9.3f}{value:13.8f}{seconds / t_all:22.2f}{memory[key]:10.1f}")
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
