"""Concrete Dropout's synthetic experiment (Gal, Hron & Kendall 2017; METHODS.md §1).

``y = 2x + 8 + N(0, 1)``, ``x ~ N(0, 1)``. Three hidden layers of 1024 ReLU units with Concrete
Dropout before every dense layer and both heads (mean and log-variance), the heteroscedastic
loss ``exp(-s)(y - mu)^2 + s``, ``l = 1e-4``, ``weight_reg = l^2 / N``, ``dropout_reg = 2 / N``,
Adam with batch 20, epochs {2000, 1000, 500, 200, 20, 2} for N in {10, 25, 50, 100, 1000, 10000}.
Prints the learned drop rate of every layer, the test RMSE, and the aleatoric and epistemic
standard deviations beside the paper's reference values.

    python benchmarks/concrete_synthetic.py            # the full sweep (about 10-20 min here)
    python benchmarks/concrete_synthetic.py --quick    # N in {10, 1000}, hidden 256
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from torch import nn

import bayesdrop

# Paper (figure of learned p vs N): hidden-layer p per N; input-layer p stays about .05-.08.
REFERENCE_P = {10: 0.40, 25: 0.40, 50: 0.33, 100: 0.24, 1000: 0.23, 10000: 0.16}
EPOCHS = {10: 2000, 25: 1000, 50: 500, 100: 200, 1000: 20, 10000: 2}


class HeteroscedasticNet(nn.Module):
    """Concrete Dropout before every dense layer, a mean head and a log-variance head."""

    def __init__(self, hidden: int, num_data: int, length_scale: float = 1e-4):
        super().__init__()
        consts = bayesdrop.regularizer_constants(length_scale, num_data, likelihood="gaussian")
        kw = dict(
            weight_regularizer=consts.weight_regularizer,
            dropout_regularizer=consts.dropout_regularizer,
        )
        self.hidden = nn.ModuleList(
            [
                bayesdrop.ConcreteDropout(nn.Linear(1, hidden), **kw),
                bayesdrop.ConcreteDropout(nn.Linear(hidden, hidden), **kw),
                bayesdrop.ConcreteDropout(nn.Linear(hidden, hidden), **kw),
            ]
        )
        self.mean = bayesdrop.ConcreteDropout(nn.Linear(hidden, 1), **kw)
        self.log_var = bayesdrop.ConcreteDropout(nn.Linear(hidden, 1), **kw)

    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.mean(x), self.log_var(x)

    def regularization(self):
        return sum(
            m.regularization() for m in self.modules() if isinstance(m, bayesdrop.ConcreteDropout)
        )


def make_data(n: int, generator: torch.Generator):
    x = torch.randn(n, 1, generator=generator)
    return x, 2 * x + 8 + torch.randn(n, 1, generator=generator)


@dataclass
class Result:
    num_data: int
    epochs: int
    p: list[float]
    rmse: float
    aleatoric_std: float
    epistemic_std: float
    seconds: float


def run_one(
    n: int,
    *,
    epochs: int,
    hidden: int = 1024,
    seed: int = 0,
    num_samples: int = 100,
    num_test: int = 1000,
    lr: float = 1e-3,
) -> Result:
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = make_data(n, gen)
    x_test, y_test = make_data(num_test, gen)
    model = HeteroscedasticNet(hidden, n)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(20):
            mu, s = model(x[idx])
            loss = (torch.exp(-s) * (y[idx] - mu) ** 2 + s).mean() + model.regularization()
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad(), bayesdrop.sampling(model):
        draws = [model(x_test) for _ in range(num_samples)]
    mus = torch.stack([d[0] for d in draws])
    log_vars = torch.stack([d[1] for d in draws])
    rmse = (mus.mean(0) - y_test).pow(2).mean().sqrt().item()
    aleatoric = log_vars.mean(0).exp().mean().sqrt().item()
    epistemic = mus.var(0, unbiased=False).mean().sqrt().item()
    ps = [m.p.item() for m in model.modules() if isinstance(m, bayesdrop.ConcreteDropout)]
    return Result(n, epochs, ps, rmse, aleatoric, epistemic, time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N in {10, 1000}, hidden 256")
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    hidden = args.hidden or (256 if args.quick else 1024)
    sizes = args.sizes or ([10, 1000] if args.quick else sorted(EPOCHS))
    print(f"Concrete Dropout synthetic experiment: hidden {hidden}, seed {args.seed}")
    header = (
        f"{'N':>6} {'epochs':>6} | {'p in':>5} {'p h1':>5} {'p h2':>5} {'p mean':>6} "
        f"{'p lvar':>6} | {'paper p_h':>9} | {'RMSE':>5} {'alea sd':>7} {'epi sd':>6} "
        f"| {'sec':>5}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        r = run_one(n, epochs=EPOCHS.get(n, 20), hidden=hidden, seed=args.seed)
        p = r.p
        print(
            f"{n:>6} {r.epochs:>6} | {p[0]:5.3f} {p[1]:5.3f} {p[2]:5.3f} {p[3]:6.3f} "
            f"{p[4]:6.3f} | {REFERENCE_P.get(n, float('nan')):9.2f} | {r.rmse:5.3f} "
            f"{r.aleatoric_std:7.3f} {r.epistemic_std:6.3f} | {r.seconds:5.1f}",
            flush=True,
        )
    print(
        "paper: hidden-layer p about .40/.40/.33/.24/.23/.16 for N = 10/25/50/100/1000/10000,"
        " input p about .05-.08, aleatoric sd about 1 (the truth), epistemic sd falling with N"
    )


if __name__ == "__main__":
    main()
