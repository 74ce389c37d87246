"""Benchmark of bayesdrop.mc_predict against a plain loop, batch repetition and the limit.

Run:  python benchmarks/mc_predict.py [--quick] [--threads 1]

(a) A CNN with dropout only before its head, batch 64, S = 64: mc_predict (engine "auto")
    vs a plain loop of S forward passes vs one pass on the batch repeated S times vs the
    limit (the floor: one trunk forward plus the head over S x 64 rows at the engine's own
    chunking, timed directly).
    Targets: at least 10x faster than the loop, within 1.3x of the limit.
(b) An MLP with dropout before every layer at batch 1 and 256, S = 64: mc_predict vs loop vs
    repetition. Target: never slower than the better of the two.
(d) Real architectures with random weights (tests/zoo_models.py: torchvision, timm, Hugging Face,
    torch), batch 8, S = 64: engine "auto" vs "loop" vs "batched" vs the limit (the cached
    plan's trunk once plus its head over S x N rows at the engine's chunking, timed directly,
    where the model can be split); and BERT- and GPT-2-style classifiers (hidden 128, 2 layers,
    16 sequences of 64 and 256 tokens: "bert@64" ...).
    Targets: "cached" is chosen for vgg11, mobilenet_v3_small and efficientnet_b0 and runs
    within 1.3x of the limit; no model is slower under "auto" than under the better of "loop"
    and "batched"; the first-call check of replicated passes costs at most 5% of a warm call
    ("check/warm": the check's passes minus plain passes of the same samples on the first
    call's engine, fastest of 3 per round; see benchmarks/noise_check.py).
    With ``--memory``: the peak memory of one call of each engine at S = 64, each in a fresh
    process (as in part c).
(c) Peak memory (increase of the peak resident set size over the call, each configuration in a
    fresh process; Linux /proc) of repetition and mc_predict with and without a ``max_memory``
    budget, and with S = 64 vs 256 (running sums: memory does not grow with S).

All timings of a part run in one process, interleaved round by round; the median of the rounds
is reported and the ratios are what to read (the machine may be shared). Loop and repetition
compute the same read-outs as mc_predict (ClassificationPrediction.from_samples on the stacked
samples); part (b) also times them computing the mean probabilities only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

import bayesdrop
from bayesdrop.predict._engines import repeat_batch  # the engine's own sample-major repeat

S = 64


class CNN(nn.Module):
    """A small all-convolutional trunk, global pooling, dropout, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.trunk(x))


def mlp(p: float = 0.2) -> nn.Module:
    layers: list[nn.Module] = []
    for fan_in, fan_out in ((784, 512), (512, 512), (512, 10)):
        layers += [nn.Dropout(p), nn.Linear(fan_in, fan_out)]
        if fan_out != 10:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def loop(model, x, readouts=True):
    """S forward passes; with ``readouts`` the same measures mc_predict returns."""
    with torch.no_grad(), bayesdrop.sampling(model):
        probs = torch.stack([model(x).softmax(-1) for _ in range(S)])
    return bayesdrop.ClassificationPrediction.from_samples(probs) if readouts else probs.mean(0)


def repetition(model, x, readouts=True):
    """One pass on the batch repeated S times (sample-major)."""
    with torch.no_grad(), bayesdrop.sampling(model):
        out = model(x.repeat(S, *([1] * (x.dim() - 1))))
    probs = out.view(S, x.shape[0], -1).softmax(-1)
    return bayesdrop.ClassificationPrediction.from_samples(probs) if readouts else probs.mean(0)


def engine_chunk(n: int) -> int:
    """Samples per pass of mc_predict's default chunking (bayesdrop.predict._runner)."""
    from bayesdrop.predict._runner import TARGET_ROWS

    return max(1, min(S, TARGET_ROWS // n))


def limit_parts(model, x):
    """The floor: one trunk forward, then the head over S x N rows at the engine's own
    chunking (k samples of the N rows per pass), timed directly; return (sum, trunk, heads).

    This is what the cached engine cannot avoid: the deterministic part once and the
    stochastic part on every sample's rows. (Timing S head passes at batch N instead, as this
    benchmark did before issue 27, is not a floor: a head pass over k x N rows costs less per
    row than k passes over N rows, so the engine "beat" it.)"""
    k = engine_chunk(x.shape[0])
    with torch.no_grad(), bayesdrop.sampling(model):
        start = time.perf_counter()
        h = model.trunk(x)
        mid = time.perf_counter()
        done = 0
        while done < S:
            step = min(k, S - done)
            model.head(repeat_batch(h, step))
            done += step
        end = time.perf_counter()
    return end - start, mid - start, end - mid


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rounds(competitors: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """(median, min) seconds of each competitor over interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in competitors}
    for fn in competitors.values():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in competitors.items():
            times[name].append(fn())
    return {name: (statistics.median(v), min(v)) for name, v in times.items()}


def ratio(t: dict, a: str, *b: str) -> str:
    """``a / min(b)`` on medians and on minima (the minimum is least disturbed by load)."""
    med = t[a][0] / min(t[x][0] for x in b)
    low = t[a][1] / min(t[x][1] for x in b)
    return f"{med:6.2f} (median)  {low:6.2f} (min)"


def show(t: dict, unit: float = 1e3) -> None:
    for name, (med, low) in t.items():
        print(f"    {name:<22} median {unit * med:9.2f} ms   min {unit * low:9.2f} ms")


def part_a(repeats: int) -> None:
    torch.manual_seed(0)
    model, x = CNN().eval(), torch.randn(64, 1, 28, 28)
    trunk_head: list[tuple[float, float]] = []

    def limit():
        total, trunk, head = limit_parts(model, x)
        trunk_head.append((trunk, head))
        return total

    engines = {}

    def bayes():
        start = time.perf_counter()
        pred = bayesdrop.mc_predict(model, x, num_samples=S)
        engines["auto"] = pred.engine
        return time.perf_counter() - start

    first = bayes()  # traces the model (the trace is reused while its modules stay the same)

    t = rounds(
        {
            "loop": lambda: timed(lambda: loop(model, x)),
            "repetition": lambda: timed(lambda: repetition(model, x)),
            "limit": limit,
            "mc_predict": bayes,
        },
        repeats,
    )
    trunk = statistics.median(a for a, _ in trunk_head)
    head = statistics.median(b for _, b in trunk_head)
    print(f"(a) CNN, dropout before the head, batch 64, S={S}; engine: {engines['auto']}")
    show(t)
    print(
        f"    (limit = trunk {1e3 * trunk:.1f} ms + heads over {S} x 64 rows in passes of "
        f"{engine_chunk(64)} samples {1e3 * head:.1f} ms, medians)"
    )
    print(f"    first mc_predict call, tracing included: {1e3 * first:.1f} ms")
    print(f"    loop / mc_predict       = {ratio(t, 'loop', 'mc_predict')}   (target >= 10)")
    print(f"    repetition / mc_predict = {ratio(t, 'repetition', 'mc_predict')}")
    print(f"    mc_predict / limit      = {ratio(t, 'mc_predict', 'limit')}   (target <= 1.3)")


def part_b(repeats: int) -> None:
    torch.manual_seed(0)
    model = mlp()
    for n in (1, 256):
        x = torch.randn(n, 784)
        engines = {}

        def bayes(x=x, engines=engines):
            start = time.perf_counter()
            engines["auto"] = bayesdrop.mc_predict(model, x, num_samples=S).engine
            return time.perf_counter() - start

        first = bayes()

        t = rounds(
            {
                "loop": lambda x=x: timed(lambda: loop(model, x)),
                "repetition": lambda x=x: timed(lambda: repetition(model, x)),
                "mc_predict": bayes,
                "loop, mean only": lambda x=x: timed(lambda: loop(model, x, False)),
                "repetition, mean only": lambda x=x: timed(lambda: repetition(model, x, False)),
            },
            repeats * (20 if n == 1 else 1),
        )
        print(f"(b) MLP, dropout in every layer, batch {n}, S={S}; engine: {engines['auto']}")
        show(t)
        best = ratio(t, "mc_predict", "loop", "repetition")
        bare = ratio(t, "mc_predict", "loop, mean only", "repetition, mean only")
        print(f"    mc_predict / best(loop, repetition) = {best}   (target <= 1)")
        print(f"    mc_predict / best mean-only variant = {bare}")
        print(f"    first mc_predict call, tracing included: {1e3 * first:.2f} ms")


MEMORY_CASES = {
    "repetition, S=64": "repetition(model, x)",
    "mc_predict, S=64": "bayesdrop.mc_predict(model, x, num_samples=64, engine='batched')",
    "mc_predict, S=256": "bayesdrop.mc_predict(model, x, num_samples=256, engine='batched')",
    "mc_predict, S=64, max_memory=2 MB": (
        "bayesdrop.mc_predict(model, x, num_samples=64, engine='batched', max_memory=2**21)"
    ),
    "mc_predict, S=64, max_memory=16 MB": (
        "bayesdrop.mc_predict(model, x, num_samples=64, engine='batched', max_memory=2**24)"
    ),
    "mc_predict, S=64, return_samples": (
        "bayesdrop.mc_predict(model, x, num_samples=64, engine='batched', return_samples=True)"
    ),
}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]


def _peak_child(code: str) -> None:
    """In a fresh process: peak RSS increase of one call after a warm-up (Linux only).

    Writing 5 to /proc/self/clear_refs resets the peak (VmHWM) to the current RSS.
    """
    torch.manual_seed(0)
    model, x = mlp(), torch.randn(256, 784)
    with torch.no_grad():
        model(x)
    bayesdrop.mc_predict(model, x[:2], num_samples=2)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    eval(code)  # fixed strings from MEMORY_CASES
    print(json.dumps({"kib": _status_kib("VmHWM") - before}))


# glibc maps every block of 64 KiB or more on its own and returns freed memory at once, so that
# the resident set follows the live tensors and a child's peak is its call's (with the defaults
# pages freed by a warm-up are reused unseen and the figures depend on what ran before)
_PEAK_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def part_c() -> None:
    print("(c) peak memory increase (RSS), MLP batch 256, fresh process per row")
    for name, code in MEMORY_CASES.items():
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **_PEAK_ENV},
        )
        kib = json.loads(out.stdout.strip().splitlines()[-1])["kib"]
        print(f"    {name:<36} {kib / 1024:7.1f} MiB")


def _zoo():
    """The test suite's model zoo (torchvision imports after the test set-up's stub)."""
    import pathlib
    import types

    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))  # see tests/conftest.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    import zoo_models

    return zoo_models


ZOO_MODELS = (
    "vgg11",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "resnet18_dropout_head",
    "deeplabv3_mobilenet",
    "timm_vit_tiny",
    "timm_convnext_atto",
    "bert",
    "distilbert",
    "gpt2",
    "transformer_encoder_sequence_first",
    "lstm_batch_first",
)


def _batch(x, n: int, opts: dict):
    """The builder's batch grown to ``n`` rows (repeated rows; random ids for tokens)."""
    dim = opts.get("batch_dim", 0)
    if isinstance(x, dict):
        return {k: v.repeat_interleave(n // v.shape[0], 0) for k, v in x.items()}
    return x.repeat_interleave(n // x.shape[dim], dim)


def _limit(model, x, n: int, batch_dim: int = 0) -> float | None:
    """The floor of a model the cached engine splits: its trunk once, then its head over
    S x n rows at the engine's chunking (the trunk's batched values repeated sample-major
    along the batch dimension, as the engine does), timed directly. None where the model does
    not split."""
    from bayesdrop.predict._engines import plan_source

    try:
        plan = plan_source(model).get()
    except Exception:
        return None
    k = engine_chunk(n)

    def repeat(v, step):
        batched = isinstance(v, torch.Tensor) and v.dim() > batch_dim and v.shape[batch_dim] == n
        return repeat_batch(v, step, batch_dim) if batched else v

    with torch.no_grad(), bayesdrop.sampling(model):
        start = time.perf_counter()
        values = plan.trunk(**x) if isinstance(x, dict) else plan.trunk(x)
        values = values if isinstance(values, tuple) else (values,)
        done = 0
        while done < S:
            step = min(k, S - done)
            plan.head(*[repeat(v, step) for v in values])
            done += step
    return time.perf_counter() - start


def _language_model(kind: str, tokens: int):
    """The issue-27 transformers: hidden 128, 2 layers, 16 sequences of ``tokens`` tokens."""
    import transformers

    torch.manual_seed(0)
    if kind == "bert":
        config = transformers.BertConfig(
            vocab_size=1000,
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=512,
            num_labels=3,
            max_position_embeddings=512,
        )
        model = transformers.BertForSequenceClassification(config)
    else:
        config = transformers.GPT2Config(
            vocab_size=1000,
            n_embd=128,
            n_layer=2,
            n_head=2,
            n_positions=512,
            num_labels=3,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=1,
        )
        model = transformers.GPT2ForSequenceClassification(config)
    ids = torch.randint(2, 1000, (16, tokens))
    return model.eval(), {"input_ids": ids}, {"output": "logits"}


LANGUAGE_MODELS = ("bert@64", "bert@256", "gpt2@64", "gpt2@256")


def _part_d_model(name: str):
    """``(model, x, opts)`` of a part (d) model: a zoo model at batch 8, or a language model."""
    zoo = _zoo()  # first: it stubs torchvision's kernel registrations, which transformers imports
    if "@" in name:  # 16 sequences of the given length, the configuration
        kind, tokens = name.split("@")
        return _language_model(kind, int(tokens))
    model, x, opts = zoo.ZOO[name]()
    return model, _batch(x, 8, opts), opts


def _peak_model_child(spec: str) -> None:
    """In a fresh process: the peak RSS increase of one ``mc_predict`` call at S = 64 with one
    engine (``spec`` is ``"name:engine"``), after a call of 2 samples has traced and checked the
    model (Linux only; as :func:`_peak_child`)."""
    name, engine = spec.split(":")
    model, x, opts = _part_d_model(name)
    with torch.no_grad():
        bayesdrop.mc_predict(model, x, num_samples=2, engine=engine, **opts)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    bayesdrop.mc_predict(model, x, num_samples=S, engine=engine, **opts)
    print(json.dumps({"kib": _status_kib("VmHWM") - before}))


def _peak_mib(name: str, engine: str) -> float:
    """The child's peak in MiB (glibc set up as in part (c), ``_PEAK_ENV``)."""
    env = {**os.environ, **_PEAK_ENV}
    out = subprocess.run(
        [sys.executable, __file__, "--memory-model", f"{name}:{engine}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["kib"] / 1024


def part_d(repeats: int, names: list[str], memory: bool = False) -> None:
    import noise_check  # beside this script: the first-call check's timing

    print(f"(d) real architectures, batch 8, S={S}")
    for name in names:
        model, x, opts = _part_d_model(name)
        n = next(iter(x.values())).shape[0] if isinstance(x, dict) else 8
        batch_dim = opts.get("batch_dim", 0)
        chosen = {}

        def run(engine, model=model, x=x, opts=opts, chosen=chosen):
            start = time.perf_counter()
            pred = bayesdrop.mc_predict(model, x, num_samples=S, engine=engine, **opts)
            chosen[engine] = pred.engine
            return time.perf_counter() - start

        competitors = {e: (lambda e=e: run(e)) for e in ("auto", "loop", "batched")}
        if (
            _limit(model, x, n, batch_dim) is not None
            and chosen.get("auto", run("auto")) == "cached"
        ):
            competitors["limit"] = lambda model=model, x=x, n=n, b=batch_dim: _limit(model, x, n, b)
        t = rounds(competitors, repeats)
        checks: dict[str, list[float]] = {}
        for _ in range(repeats):  # after the timed rounds: first calls warm nothing up there
            noise_check.first_call_and_check(model, x, 3, checks, **opts)
        line = f"    {name:<36} auto={chosen['auto']:<8}"
        line += "".join(f" {k} {1e3 * v[0]:8.1f} ms" for k, v in t.items())
        line += f"   auto/best(loop,batched) {ratio(t, 'auto', 'loop', 'batched').split()[0]}"
        line += f"   check/warm {noise_check.check_cost(checks) / t['auto'][0]:.3f}"
        if "limit" in t:
            line += f"   auto/limit {ratio(t, 'auto', 'limit').split()[0]}"
        if memory:  # each engine in a fresh process, after the timed rounds
            peaks = {e: _peak_mib(name, e) for e in ("auto", "loop", "batched")}
            line += "   peak MiB " + " ".join(f"{e} {v:.0f}" for e, v in peaks.items())
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory-model", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--memory", action="store_true", help="part (d): peak memory of each engine too"
    )
    parser.add_argument(
        "--parts", default="abcd", help="which parts to run (default abcd; d: real models)"
    )
    parser.add_argument(
        "--models", default=",".join(ZOO_MODELS + LANGUAGE_MODELS), help="models of part (d)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        _peak_child(args.memory_child)
        return
    if args.memory_model is not None:
        _peak_model_child(args.memory_model)
        return
    repeats = 2 if args.quick else 5
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {repeats} rounds")
    if "a" in args.parts:
        part_a(repeats)
    if "b" in args.parts:
        part_b(repeats)
    if "c" in args.parts:
        part_c()
    if "d" in args.parts:
        part_d(repeats, args.models.split(","), args.memory)


if __name__ == "__main__":
    main()
