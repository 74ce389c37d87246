"""MC prediction sharded over torch.distributed (gloo, CPU): 1 vs 2 processes.

Run:  python benchmarks/distributed.py [--quick] [--data-root ../shared/data]

A CNN with dropout before its head (the cached engine) predicts the Fashion-MNIST test set
(10,000 images, 28 x 28; ``--quick``: 2,000) with S = 32, through ``MCPredictor.predict`` over a
``DataLoader`` with a ``DistributedSampler``, gathered on every rank in data-set order. Each
process uses one thread. The time is taken inside the job, between two barriers, on rank 0;
images per second and the scaling efficiency (speed-up / processes) are printed. On this 2-core
machine two processes are the most that can run in parallel, and any other load on the machine
lowers the efficiency.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import bayesdrop
from bayesdrop.datasets import load_fashion_mnist


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(128, 10),
    ).eval()  # fmt: skip


def _worker(rank: int, world: int, init: str, count: int, root: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init}", rank=rank, world_size=world,
        timeout=timedelta(seconds=600),
    )  # fmt: skip
    try:
        x, y = load_fashion_mnist(split="test", root=root)
        data = TensorDataset(x[:count], y[:count])
        loader = DataLoader(data, batch_size=250, sampler=DistributedSampler(data, shuffle=False))
        predictor = bayesdrop.MCPredictor(cnn(), num_samples=32, seed=0, progress=False)
        warm = TensorDataset(x[:500], y[:500])  # warm-up: traces the model
        predictor.predict(DataLoader(warm, batch_size=250, sampler=DistributedSampler(warm)))
        dist.barrier()
        start = time.perf_counter()
        pred = predictor.predict(loader)
        dist.barrier()
        elapsed = time.perf_counter() - start
        if rank == 0:
            torch.save({"seconds": elapsed, "rows": pred.probs.shape[0]}, out)
    finally:
        dist.destroy_process_group()


def measure(world: int, count: int, root: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.pt")
        mp.spawn(_worker, args=(world, os.path.join(tmp, "store"), count, root, out), nprocs=world)
        return torch.load(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data-root", default=os.environ.get("BAYESDROP_DATA", "../shared/data"))
    args = parser.parse_args()
    count = 2000 if args.quick else 10000
    print(f"torch {torch.__version__}, gloo, 1 thread per process, {count} images, S = 32")
    results = {world: measure(world, count, args.data_root) for world in (1, 2)}
    rate = {w: r["rows"] / r["seconds"] for w, r in results.items()}
    for world, r in results.items():
        print(f"  {world} process(es): {r['seconds']:.2f} s, {rate[world]:.0f} images/s")
    print(f"  speed-up {rate[2] / rate[1]:.2f}x, scaling efficiency {rate[2] / rate[1] / 2:.0%}")


if __name__ == "__main__":
    main()
