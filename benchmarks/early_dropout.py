"""Early / late dropout in an underfitting setting (Liu et al., ICML 2023) on Fashion-MNIST.

A deliberately small MLP (784-H-H-10, H=16 by default) is trained on Fashion-MNIST with
four dropout schedules from :func:`bayesdrop.schedules.drop_schedule`, applied with
:class:`bayesdrop.schedules.DropoutScheduler` after every optimiser step:

* ``none``: no dropout;
* ``standard``: ``p`` throughout;
* ``early``: ``p`` until the cutoff epoch (linear ramp to 0 by default, as the released ViT-T
  setting), then 0;
* ``late``: 0 until the cutoff epoch, then ``p``.

All methods share the seeds (same initial weights and batch order per seed). Reported per
method: the final training loss on the whole training subset with dropout off (the paper's
claim is that early dropout ends LOWER than no dropout for underfitting models) and the test
accuracy, mean ± std over seeds, and the paired difference of the final training loss to
``none``.

Run (about 5 minutes on one free core; the README figures use --train-size 60000)::

    BAYESDROP_DATA=../shared/data python benchmarks/early_dropout.py
    python benchmarks/early_dropout.py --quick      # a smoke run
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bayesdrop.datasets import load_fashion_mnist
from bayesdrop.schedules import DropoutScheduler, drop_schedule

METHODS = ("none", "standard", "early", "late")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="data folder (default: $BAYESDROP_DATA)")
    parser.add_argument("--train-size", type=int, default=30000)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cutoff-epoch", type=int, default=3)
    parser.add_argument("--drop-rate", type=float, default=0.1)
    parser.add_argument("--early-shape", choices=("constant", "linear"), default="linear")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_size, args.epochs, args.cutoff_epoch, args.seeds = 4000, 3, 1, 2
    return args


def make_model(hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, hidden),
        nn.ReLU(),
        nn.Dropout(0.0),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Dropout(0.0),
        nn.Linear(hidden, 10),
    )


def schedule_for(method: str, args: argparse.Namespace, iters: int) -> np.ndarray:
    common = dict(epochs=args.epochs, iters_per_epoch=iters)
    if method == "none":
        return drop_schedule(0.0, **common)
    if method == "standard":
        return drop_schedule(args.drop_rate, **common)
    if method == "early":
        return drop_schedule(
            args.drop_rate,
            **common,
            cutoff_epoch=args.cutoff_epoch,
            mode="early",
            shape=args.early_shape,
        )
    return drop_schedule(args.drop_rate, **common, cutoff_epoch=args.cutoff_epoch, mode="late")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), 4096):
        logits = model(x[i : i + 4096])
        loss += F.cross_entropy(logits, y[i : i + 4096], reduction="sum").item()
        correct += int((logits.argmax(-1) == y[i : i + 4096]).sum())
    return loss / len(x), correct / len(x)


def train(method: str, seed: int, data: dict, args: argparse.Namespace) -> dict:
    x, y = data["x_train"], data["y_train"]
    iters = math.ceil(len(x) / args.batch_size)
    torch.manual_seed(seed)
    model = make_model(args.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * iters)
    drop = DropoutScheduler(model, schedule_for(method, args, iters))
    order_gen = torch.Generator().manual_seed(1000 + seed)  # same batches for every method
    curve = []
    for _ in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=order_gen).split(args.batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            lr_sched.step()
            drop.step()
        curve.append(evaluate(model, x, y)[0])
    train_loss, _ = evaluate(model, x, y)
    _, test_acc = evaluate(model, data["x_test"], data["y_test"])
    return {"train_loss": train_loss, "test_acc": test_acc, "curve": curve}


def load(args: argparse.Namespace) -> dict:
    x, y = load_fashion_mnist(args.root, split="train")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[: args.train_size]
    xt, yt = load_fashion_mnist(args.root, split="test")
    return {"x_train": x[perm], "y_train": y[perm], "x_test": xt, "y_test": yt}


def report(results: dict, args: argparse.Namespace, seconds: float) -> None:
    print(
        f"\nFashion-MNIST, train subset {args.train_size}, MLP 784-{args.hidden}-{args.hidden}-10, "
        f"p={args.drop_rate}, {args.epochs} epochs, cutoff epoch {args.cutoff_epoch}, "
        f"early shape {args.early_shape}, {args.seeds} seeds, {seconds:.0f} s\n"
    )
    none = np.array([r["train_loss"] for r in results["none"]])
    print("| method | final train loss | ratio to none | early-vs-none wins | test accuracy |")
    print("|---|---|---|---|---|")
    for method in METHODS:
        loss = np.array([r["train_loss"] for r in results[method]])
        acc = np.array([r["test_acc"] for r in results[method]])
        wins = f"{int((loss < none).sum())}/{len(loss)}" if method != "none" else "-"
        print(
            f"| {method} | {loss.mean():.4f} ± {loss.std(ddof=1):.4f} | "
            f"{loss.mean() / none.mean():.3f} | {wins} | "
            f"{100 * acc.mean():.2f} ± {100 * acc.std(ddof=1):.2f} % |"
        )
    diff = np.array([r["train_loss"] for r in results["early"]]) - none
    verdict = "holds" if diff.mean() < 0 and (diff < 0).all() else "does NOT hold"
    print(
        f"\nearly - none final training loss: {diff.mean():+.4f} ± {diff.std(ddof=1):.4f} "
        f"(paired over seeds) -> the claim 'early dropout ends at a lower training loss than "
        f"no dropout' {verdict} in this setting."
    )
    print("\nmean training loss (dropout off) after each epoch:")
    for method in METHODS:
        curve = np.mean([r["curve"] for r in results[method]], axis=0)
        print(f"  {method:9s}", " ".join(f"{v:.4f}" for v in curve))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    data = load(args)
    start = time.perf_counter()
    results = {m: [] for m in METHODS}
    for seed in range(args.seeds):
        for method in METHODS:
            results[method].append(train(method, seed, data, args))
    report(results, args, time.perf_counter() - start)


if __name__ == "__main__":
    main()
