"""Forward + backward time of VariationalLSTM against torch.nn.LSTM, in one process.

torch.nn.LSTM runs its fused ATen kernel and drops nothing on the recurrent state; the
variational LSTM has every dropout on (input, recurrent, output). Competitors are timed in
interleaved rounds (so that load from other processes hits all of them alike) and the script
prints the median time of each and its RATIO to torch.nn.LSTM, in wall-clock time and in the
process's CPU time (``time.process_time``: on a machine shared with other jobs it leaves out the
time the process waited for a core), with the load average before and after. "torch.nn.LSTM +
standard dropout" is the usual non-Bayesian baseline: ``nn.Dropout`` on the input and the output
and ``nn.LSTM(dropout=...)`` between the layers, a fresh mask at every step, none on the state.
"(PyTorch step ops)" is the hand-written backward with the fused numba step kernels switched off
(the path taken without numba, off the CPU and in float64).

    python benchmarks/rnn_speed.py                 # hidden 200 and 650, seq 35, batch 20
    python benchmarks/rnn_speed.py --rounds 5 --hidden 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

import bayesdrop
from bayesdrop.functional import _lstm_kernel


class StandardDropoutLSTM(nn.Module):
    """``nn.LSTM`` with per-step dropout on its input, between its layers and on its output."""

    def __init__(self, lstm: nn.LSTM, p_in: float, p_between: float, p_out: float) -> None:
        super().__init__()
        self.inp, self.out = nn.Dropout(p_in), nn.Dropout(p_out)
        self.lstm = nn.LSTM(lstm.input_size, lstm.hidden_size, lstm.num_layers, dropout=p_between)
        self.lstm.load_state_dict(lstm.state_dict())

    def forward(self, x: torch.Tensor):
        out, state = self.lstm(self.inp(x))
        return self.out(out), state


class PyTorchStepOps(nn.Module):
    """``module`` run with the fused step kernels switched off (their decision is per forward)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor):
        kernels = _lstm_kernel.kernels
        _lstm_kernel.kernels = lambda *args: None
        try:
            return self.module(x)
        finally:
            _lstm_kernel.kernels = kernels


def make_competitors(hidden: int, layers: int) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    ref = nn.LSTM(hidden, hidden, layers)
    rates = {"input_p": 0.5, "hidden_p": 0.3, "output_p": 0.5}
    out: dict[str, nn.Module] = {"torch.nn.LSTM": ref}
    out["torch.nn.LSTM + standard dropout"] = StandardDropoutLSTM(ref, 0.5, 0.3, 0.5).train()
    for masks in ("untied", "tied"):
        for backend in ("manual", "autograd"):
            lstm = bayesdrop.VariationalLSTM(
                hidden, hidden, layers, masks=masks, backend=backend, **rates
            )
            lstm.load_state_dict(ref.state_dict())
            out[f"Variational {masks}, {backend}"] = lstm.train()
            if backend == "manual":
                out[f"Variational {masks}, (PyTorch step ops)"] = PyTorchStepOps(lstm)
    return out


def step(module: nn.Module, x: torch.Tensor) -> None:
    out, _ = module(x)
    out.sum().backward()


def run(hidden: int, layers: int, seq: int, batch: int, rounds: int, reps: int) -> None:
    competitors = make_competitors(hidden, layers)
    x = torch.randn(seq, batch, hidden, requires_grad=True)
    times: dict[str, list[float]] = {name: [] for name in competitors}
    cpu: dict[str, list[float]] = {name: [] for name in competitors}
    for module in competitors.values():  # warm-up
        step(module, x)
    load = os.getloadavg()[0]
    for _ in range(rounds):
        for name, module in competitors.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(reps):
                step(module, x)
            times[name].append((time.perf_counter() - start) / reps)
            cpu[name].append((time.process_time() - start_cpu) / reps)
    base = statistics.median(times["torch.nn.LSTM"])
    base_cpu = statistics.median(cpu["torch.nn.LSTM"])
    print(f"\nhidden {hidden}, {layers} layers, seq {seq}, batch {batch} (forward + backward)")
    print(f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"{'model':<38}{'wall ms':>9}{'ratio':>7}{'CPU ms':>9}{'ratio':>7}")
    for name in competitors:
        med, med_cpu = statistics.median(times[name]), statistics.median(cpu[name])
        print(f"{name:<38}{1e3 * med:>9.2f}{med / base:>7.2f}", end="")
        print(f"{1e3 * med_cpu:>9.2f}{med_cpu / base_cpu:>7.2f}")


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
