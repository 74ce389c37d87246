"""Active learning on MNIST with MC-dropout acquisition (Gal, Islam & Ghahramani 2017; BatchBALD).

Pool: the 5,000 MNIST training images of ``mnist/train-5k.csv.gz``; start from 20 labelled
points balanced over classes (2 per class); acquire 10 per round; a small CNN with dropout in its
head, retrained from scratch every round; S = 20 MC samples for scoring; test accuracy on (a
subset of) the 10,000 MNIST test images, deterministic forward (dropout off).

    python benchmarks/active_learning.py          # the study (README: ~25 min, loaded 2 cores)
    python benchmarks/active_learning.py --quick  # smoke test, seconds

Also times pool scoring: bayesdrop's ``score_pool`` (MCPredictor, cached engine: the
convolutions run once per batch) against a baal-style loop (one full forward per MC sample
per batch, dropout via ``model.train()``), side by side in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch import nn

from bayesdrop import active
from bayesdrop.datasets import load_mnist

# Gal et al. 2017, Table 1: images needed for 10% / 5% test error (MNIST, acquisition 10).
PAPER = {
    "bald": (145, 335),
    "variation_ratio": (120, 295),
    "max_entropy": (165, 355),
    "random": (255, 835),
}
METHODS = ("bald", "variation_ratio", "max_entropy", "random", "batchbald")


def make_model() -> nn.Module:
    """Two conv layers without dropout, a dense head with dropout 0.25 / 0.5."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(512, 128), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(128, 10),
    )  # fmt: skip


def train(x: torch.Tensor, y: torch.Tensor, *, steps: int, seed: int) -> nn.Module:
    """Adam, batch 32 (with replacement), ``steps`` steps, weight decay 1 / (2 N)."""
    torch.manual_seed(seed)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.5 / len(x))
    model.train()
    for _ in range(steps):
        batch = torch.randint(len(x), (min(32, len(x)),))
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(-1) for b in x.split(1000)])
    return float((pred == y).float().mean())


def run(method: str, seed: int, data: dict, cfg: argparse.Namespace) -> active.LearningCurve:
    x_pool, y_pool, x_test, y_test = data["x_pool"], data["y_pool"], data["x_test"], data["y_test"]
    split = active.ActiveSplit.balanced(y_pool, per_class=2, seed=seed)

    def fit(labelled: torch.Tensor, new: torch.Tensor) -> nn.Module:
        return train(x_pool[labelled], y_pool[labelled], steps=cfg.steps, seed=seed)

    return active.run_active_learning(
        split,
        x_pool,
        fit,
        lambda m: accuracy(m, x_test, y_test),
        k=cfg.k,
        rounds=cfg.rounds,
        method=method,
        seed=1000 * seed,
        num_samples=cfg.num_samples,
        num_configs=cfg.num_configs,
        batch_size=256,
        progress=False,
    )


def baal_style_scores(model: nn.Module, pool: torch.Tensor, num_samples: int) -> torch.Tensor:
    """One full forward per MC sample per batch, dropout on by model.train() (as baal does)."""
    model.train()
    scores = []
    with torch.no_grad():
        for x in pool.split(256):
            probs = torch.stack([model(x).softmax(-1) for _ in range(num_samples)])
            scores.append(active.bald(probs))
    model.eval()
    return torch.cat(scores)


def time_scoring(data: dict, num_samples: int, repeat: int) -> dict:
    start = active.ActiveSplit.balanced(data["y_pool"], per_class=10, seed=0).labelled
    model = train(data["x_pool"][start], data["y_pool"][start], steps=100, seed=0)
    pool = data["x_pool"]
    times: dict[str, list[float]] = {"bayesdrop": [], "baal-style": []}
    for _ in range(repeat):  # the two take turns, so load changes hit both
        start = time.perf_counter()
        ours = active.score_pool(model, pool, num_samples=num_samples, seed=0, progress=False)
        times["bayesdrop"].append(time.perf_counter() - start)
        start = time.perf_counter()
        theirs = baal_style_scores(model, pool, num_samples)
        times["baal-style"].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    assert ours.scores is not None
    agree = torch.corrcoef(torch.stack([ours.scores, theirs]))[0, 1].item()
    return {**best, "ratio": best["baal-style"] / best["bayesdrop"], "score_corr": agree}


def summarise(curves: dict[str, list[active.LearningCurve]]) -> dict:
    out = {}
    for method, runs in curves.items():
        acc = torch.tensor([c.values for c in runs])
        reach = {t: [c.first_reaching(t) for c in runs] for t in (0.90, 0.95)}
        out[method] = {
            "num_labelled": list(runs[0].num_labelled),
            "mean": acc.mean(0).tolist(),
            "std": acc.std(0).tolist() if len(runs) > 1 else [0.0] * acc.shape[1],
            "reach90": reach[0.90],
            "reach95": reach[0.95],
            "acquire_seconds": sum(sum(c.acquire_seconds) for c in runs) / len(runs),
        }
    return out


def load(cfg: argparse.Namespace) -> dict:
    x_pool, y_pool = load_mnist(cfg.root, split="train-5k")
    x_test, y_test = load_mnist(cfg.root, split="test")
    perm = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(0))[: cfg.eval_size]
    if cfg.pool_size < len(x_pool):
        keep = torch.randperm(len(x_pool), generator=torch.Generator().manual_seed(1))
        x_pool, y_pool = x_pool[keep[: cfg.pool_size]], y_pool[keep[: cfg.pool_size]]
    return {"x_pool": x_pool, "y_pool": y_pool, "x_test": x_test[perm], "y_test": y_test[perm]}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny pool, 2 rounds")
    p.add_argument("--root", default=os.environ.get("BAYESDROP_DATA", "../shared/data"))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=13, help="acquisitions (20 -> 150 labels)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--steps", type=int, default=200, help="Adam steps per retraining")
    p.add_argument("--num-samples", type=int, default=20)
    p.add_argument("--num-configs", type=int, default=1000)
    p.add_argument("--eval-size", type=int, default=2000)
    p.add_argument("--pool-size", type=int, default=5000)
    p.add_argument("--timing-repeat", type=int, default=3)
    p.add_argument("--out", default=None, help="write the results as JSON")
    cfg = p.parse_args(argv)
    if cfg.quick:
        cfg.seeds, cfg.rounds, cfg.steps, cfg.num_samples = 1, 2, 20, 5
        cfg.eval_size, cfg.pool_size, cfg.timing_repeat = 200, 300, 1
    return cfg


def main(argv: list[str] | None = None) -> dict:
    cfg = parse(argv)
    torch.set_num_threads(1)
    data, start = load(cfg), time.perf_counter()
    timing = time_scoring(data, cfg.num_samples, cfg.timing_repeat)
    print(
        f"pool scoring, {len(data['x_pool'])} images, S={cfg.num_samples}: bayesdrop "
        f"{timing['bayesdrop']:.2f} s, baal-style loop {timing['baal-style']:.2f} s, "
        f"ratio {timing['ratio']:.2f}x (BALD score correlation {timing['score_corr']:.3f})"
    )
    curves: dict[str, list[active.LearningCurve]] = {}
    for method in cfg.methods:
        for seed in range(cfg.seeds):
            t0 = time.perf_counter()
            curves.setdefault(method, []).append(run(method, seed, data, cfg))
            last = curves[method][-1]
            print(
                f"{method:16s} seed {seed}: acc {last.values[0]:.3f} -> {last.values[-1]:.3f} "
                f"at {last.num_labelled[-1]} labels ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    summary = summarise(curves)
    print(f"\n{'method':16s} {'reach 90%':>18s} {'reach 95%':>18s}  paper 90/95   final acc")
    for method, s in summary.items():
        paper = PAPER.get(method)
        ref = f"{paper[0]}/{paper[1]}" if paper else "-"
        print(
            f"{method:16s} {s['reach90']!s:>18s} {s['reach95']!s:>18s}  "
            f"{ref:>11s}   {s['mean'][-1]:.3f} +- {s['std'][-1]:.3f}"
        )
    result = {"config": vars(cfg), "timing": timing, "summary": summary,
              "seconds": time.perf_counter() - start}  # fmt: skip
    print(f"total {result['seconds']:.0f} s")
    if cfg.out:
        Path(cfg.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
