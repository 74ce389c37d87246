"""Thompson sampling with dropout on the wheel bandit (Concrete Dropout, Gal, Hron & Kendall 2017).

The paper's RQ4 asks whether Concrete Dropout lets an agent lower its uncertainty as data
arrives, with no hand-tuned schedule. Checked here on Riquelme et al.'s (2018) synthetic "wheel"
bandit: a context ``x`` uniform on the unit disc, five actions. Inside the circle of radius
``delta`` action 0 is best (reward N(1.2, 0.01²), the others N(1.0, 0.01²)); outside it action 0
still gives 1.2, the action of the context's quadrant gives N(50, 0.01²) and the other three
1.0. A greedy agent learns that action 0 is safe and rarely finds the rare, rich outer region.

Agents share the network (2 -> H -> H -> 5, ReLU, the output of the chosen action regressed on
its reward with squared error), the optimiser, the training schedule (``--train-steps`` Adam
steps on minibatches of all data so far every ``--update-every`` decisions, warm-started) and
the context stream of a seed:

* ``greedy``: no dropout; the argmax of the prediction;
* ``mc p=...``: fixed-rate MC dropout (:class:`bayesdrop.MCDropout`) on the inputs of the
  hidden and output layers; Thompson sampling with one dropout mask per decision;
* ``concrete``: :class:`bayesdrop.ConcreteDropout` before every dense layer (the input layer
  too), its regularisers recomputed from the current number of observations ``N`` before every
  training round (``bayesdrop.nn.set_concrete_regularizers(model, N, tau=tau)``); Thompson
  sampling with one mask per decision.

All agents add the same weight penalty ``l² / (tau N) · ||W||² / (1 - p)`` (the Concrete
regulariser's weight term; ``p = 0`` for greedy).
Reported: expected cumulative regret (optimal mean reward minus the chosen action's mean), the
fraction of decisions where the sampled mask changes the action from the deterministic argmax
("exploration"), the epistemic variance (variance over 32 masks of the predicted rewards on 512
fixed probe contexts, mean over contexts and actions), and Concrete Dropout's learned rates, all
as functions of the number of observations.

    python benchmarks/bandit.py            # 3 seeds, 2,000 decisions (127 s, loaded 2 cores)
    python benchmarks/bandit.py --steps 4000 --train-steps 200   # 609 s
    python benchmarks/bandit.py --quick    # 1 seed, 300 decisions
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import bayesdrop

NUM_ACTIONS = 5
MU_SAFE, MU_OTHER, MU_RICH, SIGMA = 1.2, 1.0, 50.0, 0.01


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delta", type=float, default=0.95, help="radius of the safe region")
    parser.add_argument("--steps", type=int, default=2000, help="decisions per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.2, 0.5])
    parser.add_argument("--update-every", type=int, default=50)
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--length-scale", type=float, default=1e-2)
    parser.add_argument("--tau", type=float, default=1.0, help="model precision of the rewards")
    parser.add_argument("--initial", type=int, default=2, help="round-robin pulls per action")
    parser.add_argument("--num-probe", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.rates, args.train_steps = 300, 1, [0.2], 30
    return args


# ---------------------------------------------------------------------------- the environment


def wheel_contexts(n: int, generator: torch.Generator) -> Tensor:
    """``n`` contexts uniform on the unit disc, ``(n, 2)``."""
    radius = torch.rand(n, generator=generator).sqrt()
    angle = 2 * math.pi * torch.rand(n, generator=generator)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)


def wheel_means(contexts: Tensor, delta: float) -> Tensor:
    """Mean reward of every action, ``(n, 5)``: Riquelme et al.'s wheel bandit."""
    means = torch.full((len(contexts), NUM_ACTIONS), MU_OTHER)
    means[:, 0] = MU_SAFE
    outside = contexts.norm(dim=1) > delta
    x, y = contexts[:, 0], contexts[:, 1]
    quadrant = torch.where(x >= 0, torch.where(y >= 0, 1, 4), torch.where(y >= 0, 2, 3))
    rows = outside.nonzero().squeeze(1)
    means[rows, quadrant[rows]] = MU_RICH
    return means


def regret(means: Tensor, actions: Tensor) -> Tensor:
    """Expected regret of each decision: the best mean minus the chosen action's mean."""
    return means.max(1).values - means[torch.arange(len(actions)), actions]


# --------------------------------------------------------------------------------- the agents


class RewardNet(nn.Module):
    """2 -> H -> H -> 5 with optional dropout before the hidden and output layers."""

    def __init__(self, hidden: int, kind: str, p: float = 0.0) -> None:
        super().__init__()
        self.kind, self.fixed_p = kind, p
        dims = [(2, hidden), (hidden, hidden), (hidden, NUM_ACTIONS)]
        if kind == "concrete":
            self.layers = nn.ModuleList(bayesdrop.ConcreteDropout(nn.Linear(i, o)) for i, o in dims)
        else:
            self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in dims)
            self.drops = nn.ModuleList(
                [nn.Identity()] + [bayesdrop.MCDropout(p) if p > 0 else nn.Identity()] * 2
            )

    def forward(self, x: Tensor) -> Tensor:
        for k, layer in enumerate(self.layers):
            if k:
                x = torch.relu(x)
            x = layer(x) if self.kind == "concrete" else layer(self.drops[k](x))
        return x

    def concrete_layers(self) -> list[bayesdrop.ConcreteDropout]:
        return [m for m in self.layers if isinstance(m, bayesdrop.ConcreteDropout)]

    def rates(self) -> list[float]:
        """Current drop rate of each dense layer's input (input layer first)."""
        if self.kind == "concrete":
            return [m.p.item() for m in self.concrete_layers()]
        return [0.0] + [self.fixed_p] * 2

    def set_num_data(self, num_data: int, length_scale: float, tau: float) -> None:
        """Recompute Concrete Dropout's regularisers for ``num_data`` observations."""
        if self.kind == "concrete":
            bayesdrop.nn.set_concrete_regularizers(
                self, num_data, tau=tau, length_scale=length_scale
            )

    def penalty(self, num_data: int, length_scale: float, tau: float) -> Tensor:
        """``l²/(tau N) ||W||²/(1-p)`` (plus Concrete's entropy term when rates are learned)."""
        if self.kind == "concrete":
            return sum(m.regularization() for m in self.concrete_layers())  # type: ignore[return-value]
        scale = length_scale**2 / (tau * num_data)
        rates = self.rates()
        return sum(
            scale * layer.weight.pow(2).sum() / (1 - q)
            for layer, q in zip(self.layers, rates, strict=True)
        )  # type: ignore[return-value]


@dataclass
class AgentRun:
    name: str
    seed: int
    regret: list[float] = field(default_factory=list)  # per decision
    explored: list[bool] = field(default_factory=list)  # sampled argmax != mean argmax
    num_data: list[int] = field(default_factory=list)  # at each training round
    rates: list[list[float]] = field(default_factory=list)
    epistemic: list[float] = field(default_factory=list)
    seconds: float = 0.0


def epistemic_variance(model: RewardNet, probe: Tensor, num_masks: int = 32) -> float:
    """Variance over dropout masks of the predicted rewards, mean over contexts and actions."""
    if model.kind == "greedy":
        return 0.0
    with torch.no_grad(), bayesdrop.sampling(model):
        draws = torch.stack([model(probe) for _ in range(num_masks)])
    return draws.var(0, unbiased=False).mean().item()


def fit(model: RewardNet, opt, xs: Tensor, acts: Tensor, rewards: Tensor, args, gen) -> None:
    n = len(xs)
    model.set_num_data(n, args.length_scale, args.tau)
    model.train()
    for _ in range(args.train_steps):
        idx = torch.randint(n, (min(args.batch_size, n),), generator=gen)
        pred = model(xs[idx]).gather(1, acts[idx, None]).squeeze(1)
        loss = F.mse_loss(pred, rewards[idx]) + model.penalty(n, args.length_scale, args.tau)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def run_agent(name: str, seed: int, args: argparse.Namespace) -> AgentRun:
    """One agent on the seed's context stream; returns its per-decision and per-round records."""
    start = time.perf_counter()
    env = torch.Generator().manual_seed(seed)
    contexts = wheel_contexts(args.steps, env)
    means = wheel_means(contexts, args.delta)
    noise = SIGMA * torch.randn(args.steps, NUM_ACTIONS, generator=env)
    probe = wheel_contexts(args.num_probe, torch.Generator().manual_seed(10_000 + seed))
    torch.manual_seed(seed)
    kind = "greedy" if name == "greedy" else "concrete" if name == "concrete" else "mc"
    p = float(name.split("=")[1]) if kind == "mc" else 0.0
    model = RewardNet(args.hidden, kind, p).eval()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(2000 + seed)
    run = AgentRun(name, seed)
    actions = torch.empty(args.steps, dtype=torch.long)
    warmup = args.initial * NUM_ACTIONS
    for t in range(args.steps):
        if t < warmup:
            a, explored = t % NUM_ACTIONS, False
        else:
            x = contexts[t : t + 1]
            with torch.no_grad():
                mean_action = int(model(x).argmax())
                if kind == "greedy":
                    a = mean_action
                else:
                    with bayesdrop.sampling(model):  # one mask for this decision
                        a = int(model(x).argmax())
            explored = a != mean_action
        actions[t] = a
        run.explored.append(explored)
        n = t + 1
        if n >= warmup and (n - warmup) % args.update_every == 0:
            rewards = means[:n].gather(1, actions[:n, None]).squeeze(1)
            rewards = rewards + noise[:n].gather(1, actions[:n, None]).squeeze(1)
            fit(model, opt, contexts[:n], actions[:n], rewards, args, gen)
            run.num_data.append(n)
            run.rates.append(model.rates())
            run.epistemic.append(epistemic_variance(model, probe))
    run.regret = regret(means, actions).tolist()
    run.seconds = time.perf_counter() - start
    return run


# ------------------------------------------------------------------------------------- report


def agent_names(args: argparse.Namespace) -> list[str]:
    return ["greedy", *[f"mc p={q:g}" for q in args.rates], "concrete"]


def print_report(runs: list[AgentRun], args: argparse.Namespace) -> None:
    names = agent_names(args)
    marks = sorted({args.steps // 4, args.steps // 2, args.steps})
    print(
        f"\nwheel bandit delta={args.delta}, {args.steps} decisions, {args.seeds} seeds, "
        f"net 2-{args.hidden}-{args.hidden}-5, {args.train_steps} Adam steps (lr {args.lr}, "
        f"batch {args.batch_size}) every {args.update_every} decisions, l={args.length_scale}, "
        f"tau={args.tau}\n"
    )
    head = " | ".join(f"regret @{m}" for m in marks)
    quarters = " | ".join(f"explore Q{q}" for q in range(1, 5))
    print(f"| agent | {head} | {quarters} | s / run |")
    print("|---|" + "---:|" * (len(marks) + 5))
    q_len = args.steps // 4
    for name in names:
        rs = [r for r in runs if r.name == name]
        cum = np.cumsum(np.array([r.regret for r in rs]), axis=1)
        exp = np.array([r.explored for r in rs], dtype=float)
        cells = [f"{cum[:, m - 1].mean():.0f} ± {cum[:, m - 1].std():.0f}" for m in marks]
        fr = [f"{100 * exp[:, q * q_len : (q + 1) * q_len].mean():.1f} %" for q in range(4)]
        secs = np.mean([r.seconds for r in rs])
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(fr) + f" | {secs:.0f} |")
    print("\nAs functions of the number of observations N (mean over seeds):\n")
    rounds = runs[0].num_data
    picks = sorted({0, 1, 3, len(rounds) // 4, len(rounds) // 2, len(rounds) - 1})
    picks = [k for k in picks if k < len(rounds)]
    print("| N | concrete p (input, hidden 1, hidden 2) | epistemic var: "
          + " | ".join(names[1:]) + " |")  # fmt: skip
    print("|---:|---|" + "---:|" * (len(names) - 1))
    for k in picks:
        conc = np.array([r.rates[k] for r in runs if r.name == "concrete"]).mean(0)
        ep = [np.mean([r.epistemic[k] for r in runs if r.name == nm]) for nm in names[1:]]
        print(
            f"| {rounds[k]} | {', '.join(f'{v:.3f}' for v in conc)} | "
            + " | ".join(f"{v:.3g}" for v in ep)
            + " |"
        )


def main(argv: list[str] | None = None) -> list[AgentRun]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    runs = []
    for seed in range(args.seeds):
        for name in agent_names(args):
            r = run_agent(name, seed, args)
            runs.append(r)
            print(
                f"seed {seed} {name:>9}: cumulative regret {sum(r.regret):8.1f}, explored "
                f"{100 * np.mean(r.explored):4.1f} %, rates {[round(v, 3) for v in r.rates[-1]]} "
                f"({r.seconds:.0f} s)",
                flush=True,
            )
    print_report(runs, args)
    print(f"\nwall time {time.perf_counter() - start:.0f} s")
    return runs


if __name__ == "__main__":
    main()
