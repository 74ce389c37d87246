r"""The hooked engine (issue 23) against the loop, the batched engine and the limit.

Two BERT-style classifiers with random weights (hidden 128, 4 layers, 16 sequences of 64
tokens, S = 20), which torch.fx cannot trace (transformers 5):

* ``bert-last``: dropout only in the last block and the head (rate 0.1);
* ``bert-lora``: no dropout of its own, PEFT LoRA adapters (rank 8, ``lora_dropout`` 0.1) on
  the query and value projections of the last block only;
* ``bert-selected``: BERT's own dropout (0.1) everywhere, sampled with
  ``noise=r"encoder\.layer\.3\.|^dropout$"`` (the last block and the head's dropout; the rest
  off for the call), and, in the ``all`` column, the same model with all of its noise.

``mc_predict`` with engine ``"auto"`` (which picks ``"hooked"``), ``"loop"`` and ``"batched"``
at their default chunking, and the *limit*: the deterministic part once (embeddings and the
blocks before the first stochastic block, called by hand) plus S passes of the rest (the last
block, pooler, dropout and classifier on the cached hidden states and attention mask, under
sampling), timed directly. In one process, one thread, interleaved rounds; the median of
``--rounds`` is reported. Target: auto within 1.3x of the limit.

    python benchmarks/hooked_engine.py             # 7 rounds
    python benchmarks/hooked_engine.py --quick     # 2 rounds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
import warnings

for _name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_name, types.ModuleType(_name))  # see tests/conftest.py

import torch  # noqa: E402
import transformers  # noqa: E402
from torch import nn  # noqa: E402

import bayesdrop  # noqa: E402

S, N, T, LAYERS = 20, 16, 64, 4


SELECTED = r"encoder\.layer\.3\.|^dropout$"  # the last block (LAYERS = 4) and the head


def bert_everywhere(dropout: float) -> nn.Module:
    """BERT with its standard dropout everywhere (embeddings, every block, the head)."""
    model = bert(dropout)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = dropout
    return model


def bert(dropout: float) -> nn.Module:
    config = transformers.BertConfig(
        vocab_size=4096,
        hidden_size=128,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=512,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout=dropout,
        num_labels=3,
    )
    model = transformers.BertForSequenceClassification(config).eval()
    for m in model.bert.encoder.layer[-1].modules():
        if isinstance(m, nn.Dropout):
            m.p = dropout
    return model


def bert_lora() -> nn.Module:
    import peft

    config = peft.LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.1,
        target_modules=["query", "value"],
        layers_to_transform=[LAYERS - 1],
        task_type="SEQ_CLS",
        init_lora_weights=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        return peft.get_peft_model(bert(0.0), config).eval()


def _bert_of(model: nn.Module) -> nn.Module:
    return model.base_model.model if hasattr(model, "peft_config") else model


def limit(model: nn.Module, batch: dict) -> float:
    """Seconds of the prefix once plus S passes of the rest, called by hand."""
    inner = _bert_of(model)
    layers = inner.bert.encoder.layer
    seen: dict = {}

    def keep(_m, args, kwargs):
        seen["kwargs"] = kwargs

    handle = layers[-1].register_forward_pre_hook(keep, with_kwargs=True)
    with torch.no_grad():
        model(**batch)
    handle.remove()
    kwargs = {k: v for k, v in seen["kwargs"].items() if k != "hidden_states"}
    with torch.no_grad():
        start = time.perf_counter()
        h = inner.bert.embeddings(input_ids=batch["input_ids"])  # eval: its noise is off
        for layer in layers[:-1]:
            h = layer(h, **kwargs)
        with bayesdrop.sampling(model):
            for _ in range(S):
                g = layers[-1](h, **kwargs)
                g = g[0] if isinstance(g, tuple) else g
                inner.classifier(inner.dropout(inner.bert.pooler(g))).softmax(-1)
        return time.perf_counter() - start


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    torch.set_num_threads(1)
    torch.manual_seed(0)
    batch = {
        "input_ids": torch.randint(0, 4096, (N, T)),
        "attention_mask": torch.ones(N, T, dtype=torch.long),
    }
    batch["attention_mask"][N // 2 :, T - 8 :] = 0  # padding in half the rows
    models = {
        "bert-last": (bert(0.1), None),
        "bert-lora": (bert_lora(), None),
        "bert-selected": (bert_everywhere(0.1), SELECTED),
    }
    print(f"S = {S}, {N} x {T} tokens, hidden 128, {LAYERS} layers, one thread")
    for name, (model, noise) in models.items():
        opts = {"num_samples": S, "seed": 0, "noise": noise}
        pred = bayesdrop.mc_predict(model, batch, **opts)  # the first call
        print(f"{name}: auto -> {pred.engine}: {pred.engine_reason}")
        runs = {
            "auto": lambda m=model, o=opts: bayesdrop.mc_predict(m, batch, **o),
            "loop": lambda m=model, o=opts: bayesdrop.mc_predict(m, batch, engine="loop", **o),
            "batched": lambda m=model, o=opts: bayesdrop.mc_predict(
                m, batch, engine="batched", **o
            ),
            "limit": lambda m=model: limit(m, batch),
        }
        if noise is not None:  # the same model with all of its noise sampled
            runs["all"] = lambda m=model: bayesdrop.mc_predict(m, batch, num_samples=S, seed=0)
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(rounds):
            for key, fn in runs.items():
                times[key].append(fn() if key == "limit" else timed(fn))
        med = {k: statistics.median(v) for k, v in times.items()}
        line = ", ".join(f"{k} {1e3 * v:.0f} ms" for k, v in med.items())
        print(f"{name}: {line}")
        print(
            f"{name}: auto/limit {med['auto'] / med['limit']:.2f} (target <= 1.3), "
            f"loop/auto {med['loop'] / med['auto']:.2f}, "
            f"batched/auto {med['batched'] / med['auto']:.2f}"
            + (f", all noise/auto {med['all'] / med['auto']:.2f}" if "all" in med else "")
        )


if __name__ == "__main__":
    main()
