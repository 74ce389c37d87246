"""What the noise work costs: the first-call check, the state fingerprint, and `auto` against
the loop and batched engines (issue 20 and the cache key of issue 21).

For each model, in one process with one thread and interleaved rounds (the median of
``--rounds``):

* ``first / warm``: a call at S = 64 on a model seen for the first time (tracing, validation
  and the first-call check of replicated passes included) over a call on a model whose plans
  are cached;
* ``check / warm``: what the first-call check adds (the check's pass of 64 samples, read
  from the graph or recorded, and its dropped pass of one sample where one is needed, minus a
  plain pass of the same 64 samples on the same engine), over a warm call. Both passes are
  timed ``--reps`` times per round, in pairs of alternating order, and the median of the
  pairs' differences is taken: a difference of two first calls has the noise of two traces,
  larger than the check itself;
* ``fingerprint / warm``: the per-call look-up of the model's plans (``plan_source``, which
  fingerprints every module's state) over a warm call;
* ``auto / min(loop, batched)``: never above 1 is the target.

    python benchmarks/noise_check.py            # the models below, 5 rounds
    python benchmarks/noise_check.py --quick    # 2 rounds, two models
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import types

for _name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_name, types.ModuleType(_name))  # see tests/conftest.py

import torch
from mc_predict import _zoo  # the test suite's model zoo, as the other MC benchmark reads it
from torch import nn

import bayesdrop
from bayesdrop.predict._engines import plan_source
from bayesdrop.predict._runner import prediction_mode

S = 64


def models() -> dict:
    import timm
    import torchvision
    import transformers

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 10))
    vgg = torchvision.models.vgg11(num_classes=10)
    vgg.avgpool = nn.AdaptiveAvgPool2d(1)
    vgg.classifier[0] = nn.Linear(512, 4096)
    vit = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=4, num_classes=10,
        drop_rate=0.1, attn_drop_rate=0.1, drop_path_rate=0.1,
    )  # fmt: skip
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=10, drop_rate=0.2)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, num_labels=3,
    )  # fmt: skip
    bert = transformers.BertForSequenceClassification(config)
    ids = {"input_ids": torch.randint(0, 100, (8, 16))}

    # the smallest calls, where the check's fixed cost shows most: the test zoo's torch LSTM
    # (2 layers, dropout between them and before the head) and TransformerEncoder, 2 x 5 steps
    zoo = _zoo()
    lstm, lstm_x, lstm_opts = zoo.lstm()
    encoder, encoder_x, encoder_opts = zoo.transformer_encoder()
    return {
        "mlp": (mlp.eval(), torch.randn(64, 32), {}),
        "vgg11": (vgg.eval(), torch.randn(8, 3, 32, 32), {}),
        "timm_resnet18_drop_rate": (resnet.eval(), torch.randn(8, 3, 32, 32), {}),
        "timm_vit_tiny": (vit.eval(), torch.randn(8, 3, 32, 32), {}),
        "bert": (bert.eval(), ids, {}),
        "torch_lstm (2 x 5 steps)": (lstm, lstm_x, lstm_opts),
        "torch_transformer_encoder": (encoder, encoder_x, encoder_opts),
    }


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def first_call_and_check(model, x, reps: int, runs: dict, **opts) -> None:
    """One round: a first call on a fresh copy of ``model`` (into ``runs["first"]``), then that
    call's engine checked again and sampled plainly ``reps`` times each, interleaved (into
    ``runs["check"]`` and ``runs["plain"]``); ``opts`` go to ``mc_predict``."""
    runner = sys.modules["bayesdrop.predict._runner"]
    checked = runner.check_scope
    seen: dict = {}

    def grab(model, engine, k, n, fork):
        seen.update(engine=engine, n=n, fork=fork)
        return checked(model, engine, k, n, fork)

    fresh = copy.deepcopy(model)
    runner.check_scope = grab
    try:
        runs.setdefault("first", []).append(
            timed(lambda: bayesdrop.mc_predict(fresh, x, num_samples=S, seed=0, **opts))
        )
    finally:
        runner.check_scope = checked
    if not seen:  # no replicated pass, no check (the loop engine)
        return
    engine, n, fork = seen["engine"], seen["n"], seen["fork"]
    with torch.no_grad(), prediction_mode(fresh):
        for i in range(reps):  # in pairs, the order alternating (each order has its own bias)
            check = timed(lambda: checked(fresh, engine, S, n, fork)) if i % 2 else None
            plain = timed(lambda: engine.sample(S))
            if check is None:
                check = timed(lambda: checked(fresh, engine, S, n, fork))
            runs.setdefault("check", []).append(check)
            runs.setdefault("plain", []).append(plain)


def check_cost(runs: dict) -> float:
    """What the check adds to a first call, in seconds: the median over interleaved pairs of a
    checked pass minus the plain pass next to it (pairs cancel the drift of a busy machine;
    the median of the differences is steadier than a difference of two minima)."""
    if "check" not in runs:
        return 0.0
    return statistics.median(c - p for c, p in zip(runs["check"], runs["plain"], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=10, help="check passes per round")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", nargs="*", help="names (prefixes) of the models to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    zoo = models()
    if args.models:
        zoo = {k: v for k, v in zoo.items() if any(k.startswith(p) for p in args.models)}
    if args.quick:
        zoo = {k: zoo[k] for k in ("mlp", "timm_resnet18_drop_rate", "torch_lstm (2 x 5 steps)")}
        args.rounds = 2
    header = f"{'model':27s} {'auto':>7s} {'first/warm':>10s} {'check/warm':>10s}"
    header += f" {'fingerprint/warm':>16s} {'auto/best':>9s} {'warm ms':>8s} {'look-up us':>10s}"
    print(header)
    for name, (model, x, opts) in zoo.items():
        runs: dict[str, list[float]] = {}
        with torch.no_grad():
            bayesdrop.mc_predict(model, x, num_samples=S, seed=0, **opts)  # warm-up
            for _ in range(args.rounds):
                first_call_and_check(model, x, args.reps, runs, **opts)
                for engine_name in ("auto", "loop", "batched"):
                    runs.setdefault(engine_name, []).append(
                        timed(
                            lambda e=engine_name: bayesdrop.mc_predict(
                                model, x, num_samples=S, engine=e, **opts
                            )
                        )
                    )
                # the look-up takes microseconds: the mean of 50, for a reading above the clock
                look_ups = timed(lambda: [plan_source(model) for _ in range(50)]) / 50
                runs.setdefault("fingerprint", []).append(look_ups)
        med = {k: statistics.median(v) for k, v in runs.items()}
        engine = bayesdrop.mc_predict(model, x, num_samples=S, **opts).engine
        print(
            f"{name:27s} {engine:>7s} {med['first'] / med['auto']:10.2f} "
            f"{check_cost(runs) / med['auto']:10.3f} {med['fingerprint'] / med['auto']:16.4f} "
            f"{med['auto'] / min(med['loop'], med['batched']):9.2f} {med['auto'] * 1e3:8.2f} "
            f"{med['fingerprint'] * 1e6:10.1f}"
        )


if __name__ == "__main__":
    main()
