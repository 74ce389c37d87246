"""Word-type dropout: drawing the mask for the batch's words only vs the whole vocabulary.

Run:  python benchmarks/embedding_dropout.py [--rounds 15]

``bayesdrop.EmbeddingDropout`` ties a mask value to each (sequence, word type). Drawing the full
``(N, V)`` table every batch costs ``N x V`` random numbers; when a batch holds fewer tokens than
the vocabulary, the forward on the CPU draws ``(N, U)`` values for its ``U`` distinct words
instead (same distribution). Compared in one process, one thread, interleaved rounds, medians:

* the layer alone, forward + backward, at the rt-polarity configuration of
  ``benchmarks/rnn_sentiment.py`` (vocabulary 9,726, batch 64, 30 tokens, 32-d embedding):
  the full table (``masks=drop.sample_masks(N)``, the former behaviour), the batch's words
  (the default forward), and the plain embedding without dropout;
* one training step (forward, backward, Adam) of that benchmark's variational sentiment LSTM
  with either way of drawing the mask, and of the same model without word-type dropout.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import bayesdrop

V, N, T, D, H = 9726, 64, 30, 32, 32


def timed(fn, repeats: int = 10) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


class Model(nn.Module):
    """rnn_sentiment's variational model: word-type dropout, VariationalLSTM, linear head."""

    def __init__(self, embed_p: float) -> None:
        super().__init__()
        self.embed = bayesdrop.EmbeddingDropout(nn.Embedding(V, D), embed_p, batch_first=True)
        self.lstm = bayesdrop.VariationalLSTM(
            D, H, batch_first=True, input_p=0.25, hidden_p=0.25, output_p=0.25
        )
        self.head = nn.Linear(H, 2)

    def forward(self, tokens, table: bool):
        masks = self.embed.sample_masks(len(tokens)) if table else None
        out, _ = self.lstm(self.embed(tokens, masks=masks))
        return self.head(out[:, -1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tokens = torch.randint(V, (N, T))
    labels = torch.randint(2, (N,))
    drop = bayesdrop.EmbeddingDropout(nn.Embedding(V, D), 0.25, batch_first=True).train()
    layer = {
        "full table (N, V)": lambda: drop(tokens, masks=drop.sample_masks(N)).sum().backward(),
        "batch words (N, U)": lambda: drop(tokens).sum().backward(),
        "no word-type dropout": lambda: drop.embedding(tokens).sum().backward(),
    }
    models = {"full table (N, V)": Model(0.25), "batch words (N, U)": Model(0.25)}
    models["no word-type dropout"] = Model(0.0)
    optimizers = {k: torch.optim.Adam(m.parameters(), 5e-3) for k, m in models.items()}

    def step(key: str):
        def run():
            model, opt = models[key].train(), optimizers[key]
            opt.zero_grad()
            logits = model(tokens, table=key.startswith("full"))
            nn.functional.cross_entropy(logits, labels).backward()
            opt.step()

        return run

    steps = {k: step(k) for k in models}
    times: dict[str, dict[str, list[float]]] = {"layer": {}, "step": {}}
    for _ in range(args.rounds):
        for part, fns in (("layer", layer), ("step", steps)):
            for key, fn in fns.items():
                times[part].setdefault(key, []).append(timed(fn))
    print(f"vocabulary {V}, batch {N}, {T} tokens, embedding {D}, LSTM {H}; one thread")
    for part, title in (("layer", "EmbeddingDropout forward + backward"), ("step", "train step")):
        med = {k: statistics.median(v) for k, v in times[part].items()}
        base = med["batch words (N, U)"]
        print(f"\n{title} (median of {args.rounds} rounds)")
        for key, ms in med.items():
            print(f"  {key:<22} {ms:8.3f} ms   {ms / base:5.2f} x batch words")


if __name__ == "__main__":
    main()
