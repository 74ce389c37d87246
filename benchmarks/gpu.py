"""The GPU path of bayesdrop.mc_predict, as one short script for a CUDA machine.

Run:  python benchmarks/gpu.py [--quick]
      python benchmarks/gpu.py --cpu-check   (the script's logic on the CPU, tiny sizes, no
                                             figures: run it before spending device time)

For three models (a CNN with dropout before its head, an MLP with dropout before every layer,
a small ViT built from torch's TransformerEncoder with attention and MLP dropout), batch 256,
S = 64, in float32 and under bfloat16 autocast:

* each engine of mc_predict ("loop", "batched", "cached", "auto") against a plain loop of S
  forward passes and, for the CNN, the limit (trunk once, S head passes), timed with CUDA
  events after a warm-up, medians of interleaved rounds, ratios printed;
* the peak device memory (torch.cuda.max_memory_allocated) of mc_predict with the default
  budget (half the free memory), with max_memory=64 MB, and of a pass on the batch repeated S
  times;
* that the sampling loop makes no host synchronisation: every engine's sample() and every
  accumulator update run under torch.cuda.set_sync_debug_mode("error") (num_samples fixed).

Prints a JSON line per measurement at the end (to paste into benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time

import torch
from torch import nn

import bayesdrop
from bayesdrop.predict import _accumulators as accumulators
from bayesdrop.predict import _engines as engines

S, N = 64, 256


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 128, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(128, 10))

    def forward(self, x):
        return self.head(self.trunk(x))


def mlp() -> nn.Module:
    layers: list[nn.Module] = []
    for fan_in, fan_out in ((3 * 32 * 32, 1024), (1024, 1024), (1024, 10)):
        layers += [nn.Dropout(0.2), nn.Linear(fan_in, fan_out)]
        if fan_out != 10:
            layers.append(nn.ReLU())
    return nn.Sequential(nn.Flatten(), *layers)


class ViT(nn.Module):
    def __init__(self, dim: int = 192, depth: int = 6, patch: int = 4) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, (32 // patch) ** 2, dim))
        layer = nn.TransformerEncoderLayer(dim, 3, 4 * dim, dropout=0.1, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        h = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.blocks(h).mean(1))


def cuda_time(fn, rounds: int) -> float:
    if not torch.cuda.is_available():  # --cpu-check: wall time, only to exercise the code
        return statistics.median(_wall_ms(fn) for _ in range(rounds))
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _wall_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start)


def plain_loop(model, x):
    with torch.no_grad(), bayesdrop.sampling(model):
        probs = torch.stack([model(x).softmax(-1) for _ in range(S)])
    return bayesdrop.ClassificationPrediction.from_samples(probs)


def limit(model, x):
    with torch.no_grad(), bayesdrop.sampling(model):
        h = model.trunk(x)
        for _ in range(S):
            model.head(h)


@contextlib.contextmanager
def no_sync_in_sampling_loop():
    """Sampling and accumulation raise on any host synchronisation."""
    if not torch.cuda.is_available():  # --cpu-check: nothing to guard
        yield
        return
    patched = []

    def guard(cls, name):
        original = getattr(cls, name)

        def wrapper(*args, **kwargs):
            torch.cuda.set_sync_debug_mode("error")
            try:
                return original(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")

        setattr(cls, name, wrapper)
        patched.append((cls, name, original))

    for cls in (engines.LoopEngine, engines.BatchedEngine, engines.CachedEngine):
        guard(cls, "sample")
    guard(accumulators.ClassificationAccumulator, "update")
    try:
        yield
    finally:
        for cls, name, original in patched:
            setattr(cls, name, original)


def peak(fn) -> float:
    if not torch.cuda.is_available():  # --cpu-check
        fn()
        return float("nan")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def run(name: str, model: nn.Module, rounds: int, records: list) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    x = torch.randn(N, 3, 32, 32, device=device)
    for dtype in (None, torch.bfloat16):
        records.append(run_dtype(name, model, x, dtype, rounds))
        print(json.dumps(records[-1]), flush=True)


def run_dtype(name: str, model: nn.Module, x: torch.Tensor, dtype, rounds: int) -> dict:
    autocast = dtype if dtype is not None else False

    def predict(engine="auto", **kw):
        return bayesdrop.mc_predict(model, x, num_samples=S, engine=engine, autocast=autocast, **kw)

    def under_autocast(fn):
        if dtype is None:
            return fn()
        with torch.autocast(x.device.type, dtype=dtype):
            return fn()

    competitors = {e: (lambda e=e: predict(e)) for e in ("auto", "loop", "batched", "cached")}
    competitors["plain loop"] = lambda: under_autocast(lambda: plain_loop(model, x))
    if hasattr(model, "trunk"):
        competitors["limit"] = lambda: under_autocast(lambda: limit(model, x))
    for fn in competitors.values():
        fn()  # warm-up (tracing, kernels)
    times = {k: cuda_time(fn, rounds) for k, fn in competitors.items()}
    engine = predict().engine
    with no_sync_in_sampling_loop():
        for e in ("loop", "batched", "cached"):
            predict(e)
    memory = {
        "default budget": peak(predict),
        "max_memory=64MB": peak(lambda: predict(max_memory=2**26)),
        "repeated batch": peak(lambda: under_autocast(lambda: _repeat_pass(model, x))),
    }
    best = min(times["loop"], times["batched"])
    line = {
        "model": name,
        "dtype": "bf16" if dtype is not None else "fp32",
        "auto engine": engine,
        "ms": {k: round(v, 2) for k, v in times.items()},
        "auto / best(loop, batched)": round(times["auto"] / best, 3),
        "plain loop / auto": round(times["plain loop"] / times["auto"], 2),
        "peak MiB": {k: round(v, 1) for k, v in memory.items()},
        "sync in sampling loop": "none (set_sync_debug_mode('error') passed)"
        if torch.cuda.is_available()
        else "not checked (CPU)",
    }
    if "limit" in times:
        line["auto / limit"] = round(times["auto"] / times["limit"], 3)
    return line


def _repeat_pass(model, x):
    with torch.no_grad(), bayesdrop.sampling(model):
        model(x.repeat(S, 1, 1, 1)).softmax(-1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--cpu-check", action="store_true", help="run the logic on the CPU at tiny sizes"
    )
    args = parser.parse_args()
    global S, N
    if args.cpu_check:
        S, N = 4, 8
        print("--cpu-check: the script's logic on the CPU, tiny sizes; the numbers mean nothing")
        torch.cuda.is_available = lambda: False  # type: ignore[assignment]
    elif not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA device; none is available here (try --cpu-check).")
        sys.exit(0)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"torch {torch.__version__}, {where}")
    records: list = []
    rounds = 3 if args.quick else 10
    rounds = 1 if args.cpu_check else rounds
    for name, make in (("head-dropout CNN", CNN), ("dense-dropout MLP", mlp), ("small ViT", ViT)):
        run(name, make(), rounds, records)


if __name__ == "__main__":
    main()
