"""Forward + backward time of VariationalLSTM against torch.nn.LSTM, in one process.

torch.nn.LSTM runs its fused ATen kernel and drops nothing on the recurrent state; the
variational LSTM has every dropout on (input, recurrent, output). Competitors are timed in
interleaved rounds (so that load from other processes hits all of them alike) and the script
prints the median time of each and its RATIO to torch.nn.LSTM.

    python benchmarks/rnn_speed.py                 # hidden 200 and 650, seq 35, batch 20
    python benchmarks/rnn_speed.py --rounds 5 --hidden 200
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import bayesdrop


def make_competitors(hidden: int, layers: int) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    ref = nn.LSTM(hidden, hidden, layers)
    rates = {"input_p": 0.5, "hidden_p": 0.3, "output_p": 0.5}
    out = {"torch.nn.LSTM": ref}
    for masks in ("untied", "tied"):
        for backend in ("manual", "autograd"):
            lstm = bayesdrop.VariationalLSTM(
                hidden, hidden, layers, masks=masks, backend=backend, **rates
            )
            lstm.load_state_dict(ref.state_dict())
            out[f"Variational {masks}, {backend}"] = lstm.train()
    return out


def step(module: nn.Module, x: torch.Tensor) -> None:
    out, _ = module(x)
    out.sum().backward()


def run(hidden: int, layers: int, seq: int, batch: int, rounds: int, reps: int) -> None:
    competitors = make_competitors(hidden, layers)
    x = torch.randn(seq, batch, hidden, requires_grad=True)
    times: dict[str, list[float]] = {name: [] for name in competitors}
    for module in competitors.values():  # warm-up
        step(module, x)
    for _ in range(rounds):
        for name, module in competitors.items():
            start = time.perf_counter()
            for _ in range(reps):
                step(module, x)
            times[name].append((time.perf_counter() - start) / reps)
    base = statistics.median(times["torch.nn.LSTM"])
    print(f"\nhidden {hidden}, {layers} layers, seq {seq}, batch {batch} (forward + backward)")
    print(f"{'model':<32}{'median ms':>10}{'ratio':>8}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<32}{1e3 * med:>10.2f}{med / base:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[200, 650])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq", type=int, default=35)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for hidden in args.hidden:
        run(hidden, args.layers, args.seq, args.batch, args.rounds, args.reps)


if __name__ == "__main__":
    main()
