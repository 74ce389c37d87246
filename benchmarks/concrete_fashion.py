"""Learned drop rates per layer and per data size on Fashion-MNIST (Concrete Dropout §4.3-4.4).

Gal, Hron & Kendall (2017) observe on image classification that the learned rates fall as the
training set grows, that deeper layers learn larger rates than the input layer, and that Concrete
Dropout is calibrated at least as well as the best of a hand-tuned grid, without the search.
Checked here at CPU scale on Fashion-MNIST with ``--fractions`` of the 60,000 training images
(a fixed random subset per fraction, class mix as drawn):

* ``mlp``: 784 -> 512 -> 512 -> 512 -> 10, ReLU. ``concrete``: :class:`bayesdrop.ConcreteDropout`
  before every dense layer (the input layer too). ``grid p=q``: :class:`bayesdrop.MCDropout` at
  rate ``q`` before the three hidden-fed layers (none on the pixels);
* ``cnn``: conv 1->16 (3x3) -> pool -> conv 16->32 (3x3) -> pool -> dense 800->128 -> 10.
  ``concrete``: :class:`bayesdrop.SpatialConcreteDropout` before the second convolution (one
  mask value per channel), :class:`bayesdrop.ConcreteDropout` before both dense layers. ``grid``:
  spatial MC dropout / MC dropout at ``q`` in the same three places.

Every model minimises the mean cross-entropy plus the Concrete regulariser with
``bayesdrop.regularizer_constants(l, N, likelihood="categorical")`` (for the grid the same
weight term ``l²/(2N) ||W||²/(1-q)`` with ``q`` fixed). Adam, batch 128; the drop-rate logits
get their own learning rate ``--p-lr`` so that they can move within the short CPU schedules.
Test figures use MC dropout (probabilities averaged over ``--mc-samples`` masks) on the first
``--num-test`` test images: accuracy, NLL, and ECE (15 equal-width bins,
``bayesdrop.calibration.expected_calibration_error``).

    python benchmarks/concrete_fashion.py --archs mlp --seeds 0 1 2                      # 539 s
    python benchmarks/concrete_fashion.py --archs cnn --steps 200 400 600 --seeds 0 1 2  # 853 s
    python benchmarks/concrete_fashion.py --quick    # MLP 64 wide, 1 % and 2 %, 1 grid rate
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import bayesdrop
from bayesdrop.calibration import expected_calibration_error, negative_log_likelihood
from bayesdrop.datasets import load_fashion_mnist

ARCHS = ("mlp", "cnn")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="data folder (default: $BAYESDROP_DATA)")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 500, 800],
                        help="optimiser steps per fraction")  # fmt: skip
    parser.add_argument("--grid", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--p-lr", type=float, default=1e-2, help="learning rate of p_logit")
    parser.add_argument("--length-scale", type=float, default=1e-2)
    parser.add_argument("--mc-samples", type=int, default=10)
    parser.add_argument("--num-test", type=int, default=5000)
    parser.add_argument("--num-bins", type=int, default=15)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="each draws its own subset and init"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.archs, args.fractions, args.steps, args.grid = ["mlp"], [0.01, 0.02], [30, 30], [0.3]
        args.hidden, args.num_test, args.mc_samples = 64, 1000, 4
    if len(args.steps) != len(args.fractions):
        raise SystemExit("Expected one --steps value per --fractions value.")
    return args


class Net(nn.Module):
    """An MLP or a small CNN whose dropout layers are Concrete (learned) or MC (fixed rate)."""

    def __init__(self, arch: str, num_data: int, p: float | None, hidden: int, l: float) -> None:
        super().__init__()
        consts = bayesdrop.regularizer_constants(l, num_data, likelihood="categorical")
        self.arch, self.fixed_p, self.weight_reg = arch, p, consts.weight_regularizer
        kw = dict(
            weight_regularizer=consts.weight_regularizer,
            dropout_regularizer=consts.dropout_regularizer,
        )

        def wrap(layer: nn.Module, spatial: bool = False, first: bool = False) -> nn.Module:
            if p is None:
                cls = bayesdrop.SpatialConcreteDropout if spatial else bayesdrop.ConcreteDropout
                return cls(layer, **kw)
            rate = 0.0 if first else p
            drop = bayesdrop.nn.SpatialMCDropout(rate) if spatial else bayesdrop.MCDropout(rate)
            return nn.Sequential(drop, layer)

        if arch == "mlp":
            sizes = [784, hidden, hidden, hidden, 10]
            self.trunk: nn.Module = nn.Flatten()
            dense = [nn.Linear(i, o) for i, o in itertools.pairwise(sizes)]
            self.dropped = nn.ModuleList(wrap(d, first=k == 0) for k, d in enumerate(dense))
        elif arch == "cnn":
            self.trunk = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2))
            self.dropped = nn.ModuleList(
                [wrap(nn.Conv2d(16, 32, 3), spatial=True), wrap(nn.Linear(800, 128)),
                 wrap(nn.Linear(128, 10))]
            )  # fmt: skip
        else:
            raise ValueError(f"Expected arch to be one of {ARCHS}, but got {arch!r}.")

    def forward(self, x: Tensor) -> Tensor:
        x = self.trunk(x)
        last = len(self.dropped) - 1
        for k, layer in enumerate(self.dropped):
            if self.arch == "cnn" and k == 1:
                x = torch.flatten(F.max_pool2d(x, 2), 1)
            x = layer(x)
            if k < last:
                x = torch.relu(x)
        return x

    def concrete(self) -> list[bayesdrop.ConcreteDropout]:
        return [m for m in self.dropped if isinstance(m, bayesdrop.ConcreteDropout)]

    def rates(self) -> list[float]:
        """Drop rate before each dropped layer, input side first."""
        if self.fixed_p is None:
            return [m.p.item() for m in self.concrete()]
        return [float(m[0].p) for m in self.dropped]  # type: ignore[index]

    def penalty(self) -> Tensor:
        if self.fixed_p is None:
            return sum(m.regularization() for m in self.concrete())  # type: ignore[return-value]
        return sum(
            self.weight_reg * m[1].weight.pow(2).sum() / (1 - float(m[0].p))  # type: ignore[index]
            for m in self.dropped
        )  # type: ignore[return-value]


def mc_dropout_probs(model: nn.Module, x: Tensor, num_samples: int) -> Tensor:
    """Mean of the softmax over ``num_samples`` dropout masks (one mask per pass)."""
    model.eval()
    probs = torch.zeros(len(x), 10)
    with torch.no_grad(), bayesdrop.sampling(model):
        for _ in range(num_samples):
            probs += torch.cat([model(b).softmax(-1) for b in x.split(1000)])
    return probs / num_samples


@dataclass
class Result:
    seed: int
    arch: str
    method: str
    fraction: float
    num_data: int
    rates: list[float]
    accuracy: float
    nll: float
    ece: float
    seconds: float


def train_eval(arch, method, fraction, steps, data, args, seed: int = 0) -> Result:
    start = time.perf_counter()
    x, y = data["x_train"], data["y_train"]
    n = len(x)
    torch.manual_seed(seed)
    p = None if method == "concrete" else float(method.split("=")[1])
    model = Net(arch, n, p, args.hidden, args.length_scale)
    p_params = [m.p_logit for m in model.concrete()]
    ids = {id(q) for q in p_params}
    groups = [{"params": [q for q in model.parameters() if id(q) not in ids]}]
    if p_params:
        groups.append({"params": p_params, "lr": args.p_lr})
    opt = torch.optim.Adam(groups, lr=args.lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    done = 0
    while done < steps:
        for idx in torch.randperm(n, generator=gen).split(args.batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx]) + model.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    probs = mc_dropout_probs(model, data["x_test"], args.mc_samples)
    target = data["y_test"]
    return Result(
        seed, arch, method, fraction, n, model.rates(),
        (probs.argmax(-1) == target).double().mean().item(),
        float(negative_log_likelihood(probs, target)),
        float(expected_calibration_error(probs, target, num_bins=args.num_bins)),
        time.perf_counter() - start,
    )  # fmt: skip


def subset(images: Tensor, labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed random ``fraction`` of the training set (the same draw for every method)."""
    keep = max(1, round(fraction * len(images)))
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:keep]
    return images[idx], labels[idx]


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    a = scale * np.array(values)
    return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}" if len(a) > 1 else f"{a[0]:.{digits}f}"


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"\nFashion-MNIST, seeds {args.seeds}, Adam lr {args.lr} (p_logit {args.p_lr}), batch "
        f"{args.batch_size}, l={args.length_scale}, MC {args.mc_samples} samples on "
        f"{args.num_test} test images, ECE {args.num_bins} bins; mean ± std over seeds\n"
    )
    print("| model | N | steps | method | drop rates (input side first) | accuracy % | NLL "
          "| ECE % |")  # fmt: skip
    print("|---|---:|---:|---|---|---:|---:|---:|")
    steps = dict(zip(args.fractions, args.steps, strict=True))
    methods = list(dict.fromkeys(r.method for r in results))
    for arch in args.archs:
        for fraction in args.fractions:
            for method in methods:
                key = (arch, fraction, method)
                rs = [r for r in results if (r.arch, r.fraction, r.method) == key]
                rates = np.array([r.rates for r in rs]).mean(0)
                print(
                    f"| {arch} | {rs[0].num_data} | {steps[fraction]} | {method} | "
                    f"{', '.join(f'{v:.3f}' for v in rates)} | "
                    f"{_mean_std([r.accuracy for r in rs], 100, 2)} | "
                    f"{_mean_std([r.nll for r in rs])} | {_mean_std([r.ece for r in rs], 100, 2)} |"
                )
    print("\nConcrete vs the grid's best (by mean over seeds); 'wins' counts seeds where Concrete's"
          " value is at most the best grid value of that seed:\n")  # fmt: skip
    print("| model | N | concrete NLL | best grid NLL | NLL wins | concrete ECE % | best grid ECE %"
          " | ECE wins |")  # fmt: skip
    print("|---|---:|---:|---|---:|---:|---|---:|")
    for arch in args.archs:
        for fraction in args.fractions:
            rs = [r for r in results if r.arch == arch and r.fraction == fraction]
            line = f"| {arch} | {rs[0].num_data} |"
            for key, scale in (("nll", 1.0), ("ece", 100.0)):
                conc = [getattr(r, key) for r in rs if r.method == "concrete"]
                grid = {m: [getattr(r, key) for r in rs if r.method == m] for m in methods[1:]}
                best = min(grid, key=lambda m: np.mean(grid[m]))
                per_seed = np.array(list(grid.values())).min(0)
                wins = int((np.array(conc) <= per_seed).sum())
                digits = 3 if key == "nll" else 2
                line += (
                    f" {_mean_std(conc, scale, digits)} | {_mean_std(grid[best], scale, digits)} "
                    f"({best}) | {wins}/{len(conc)} |"
                )
            print(line)


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    images, labels = load_fashion_mnist(args.root, split="train")
    x_test, y_test = load_fashion_mnist(args.root, split="test")
    methods = ["concrete", *[f"grid p={q:g}" for q in args.grid]]
    results = []
    for seed, arch in itertools.product(args.seeds, args.archs):
        for fraction, steps in zip(args.fractions, args.steps, strict=True):
            x, y = subset(images, labels, fraction, seed)
            data = {"x_train": x, "y_train": y, "x_test": x_test[: args.num_test],
                    "y_test": y_test[: args.num_test]}  # fmt: skip
            for method in methods:
                r = train_eval(arch, method, fraction, steps, data, args, seed)
                results.append(r)
                print(
                    f"seed {seed} {arch} N={r.num_data:>5} {method:>12}: rates "
                    f"{[round(v, 3) for v in r.rates]}, acc {100 * r.accuracy:.2f} %, NLL "
                    f"{r.nll:.3f}, ECE {100 * r.ece:.2f} % ({r.seconds:.0f} s)",
                    flush=True,
                )
    print_report(results, args)
    print(f"\nwall time {time.perf_counter() - start:.0f} s")
    return results


if __name__ == "__main__":
    main()
