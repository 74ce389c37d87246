"""Process groups for the tests: gloo workers spawned by the test itself, no launcher."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def init(rank: int, world_size: int, init_file: str, seconds: int = 60) -> None:
    """Join the group (a file rendezvous), one thread per process, a timeout on collectives."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=seconds),
    )


def spawn(worker, world_size: int, tmp_path, timeout: float = 120) -> None:
    """Run ``worker(rank, world_size, init_file, out_dir)`` in ``world_size`` processes; fail
    (and kill them) if they do not all finish within ``timeout`` seconds."""
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    ctx = mp.spawn(
        worker,
        args=(world_size, str(tmp_path / "store"), str(tmp_path)),
        nprocs=world_size,
        join=False,
    )
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"distributed workers did not finish within {timeout:g} s")
    finally:
        for process in ctx.processes:
            if process.is_alive():
                process.kill()
