"""R-Drop vs plain dropout on sentence polarity (rt-polarity, Pang & Lee 2005).

A small bag-of-embeddings classifier (mean of word embeddings -> dropout -> MLP with dropout)
is trained on 80% of the 10,662 sentences and tested on the other 20%, with

* ``dropout``: cross-entropy of one dropout pass;
* ``rdrop``: :class:`bayesdrop.RDrop` (both passes in one forward on ``[x; x]``), for each
  ``--alphas`` value.

All methods share each seed's initial weights and batch order. Reported: test accuracy, test
NLL and ECE (top-label, 15 equal-width bins on [0, 1], the last bin closed:
``bayesdrop.calibration.expected_calibration_error``), mean ± std over seeds, and the
wall-clock ratio to plain dropout (measured in one process, side by side).

Run (about 4-6 minutes on one free core)::

    BAYESDROP_DATA=../shared/data python benchmarks/rdrop.py
    python benchmarks/rdrop.py --quick
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import bayesdrop
from bayesdrop.calibration import expected_calibration_error
from bayesdrop.datasets import data_root

PAD = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="data folder (default: $BAYESDROP_DATA)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--drop-rate", type=float, default=0.5)
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--num-bins", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds, args.alphas = 2, 2, [1.0]
    return args


def load_polarity(args: argparse.Namespace) -> dict:
    folder = data_root(args.root, "rt-polarity")
    texts, labels = [], []
    for label, name in ((1, "rt-polarity.pos"), (0, "rt-polarity.neg")):
        with open(folder / name, encoding="utf-8", errors="replace") as f:
            lines = [line.split() for line in f if line.strip()]
        texts += lines
        labels += [label] * len(lines)
    perm = np.random.default_rng(0).permutation(len(texts))
    cut = int(0.8 * len(texts))
    train_idx, test_idx = perm[:cut], perm[cut:]
    counts = Counter(w for i in train_idx for w in texts[i])
    vocab = {w: k + 2 for k, w in enumerate(sorted(w for w, c in counts.items() if c >= 2))}

    def encode(idx: np.ndarray) -> tuple[Tensor, Tensor]:
        x = torch.full((len(idx), args.max_len), PAD, dtype=torch.long)
        for row, i in enumerate(idx):
            ids = [vocab.get(w, 1) for w in texts[i][: args.max_len]]  # 1 = unknown word
            x[row, : len(ids)] = torch.tensor(ids)
        return x, torch.tensor([labels[i] for i in idx])

    (x_tr, y_tr), (x_te, y_te) = encode(train_idx), encode(test_idx)
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te, "vocab": len(vocab)}


class BagOfEmbeddings(nn.Module):
    """Mean of the word embeddings (padding excluded), then an MLP with dropout."""

    def __init__(self, vocab_size: int, dim: int, p: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size + 2, dim, padding_idx=PAD)
        self.head = nn.Sequential(
            nn.Dropout(p), nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(p), nn.Linear(dim, 2)
        )

    def forward(self, tokens: Tensor) -> Tensor:
        mask = (tokens != PAD).unsqueeze(-1).to(self.embed.weight.dtype)
        pooled = (self.embed(tokens) * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.head(pooled)


def train(alpha: float | None, seed: int, data: dict, args: argparse.Namespace) -> dict:
    torch.manual_seed(seed)
    model = BagOfEmbeddings(data["vocab"], args.dim, args.drop_rate)
    objective = None if alpha is None else bayesdrop.RDrop(model, alpha=alpha)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    order_gen = torch.Generator().manual_seed(1000 + seed)
    x, y = data["x_train"], data["y_train"]
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=order_gen).split(args.batch_size):
            if objective is None:
                loss = F.cross_entropy(model(x[idx]), y[idx])
            else:
                loss = objective(x[idx], y[idx]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        logits = model(data["x_test"])
    probs = logits.softmax(-1)
    return {
        "acc": (probs.argmax(-1) == data["y_test"]).double().mean().item(),
        "nll": F.cross_entropy(logits, data["y_test"]).item(),
        "ece": float(expected_calibration_error(probs, data["y_test"], num_bins=args.num_bins)),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    data = load_polarity(args)
    methods = {"dropout": None} | {f"rdrop a={a:g}": a for a in args.alphas}
    results: dict[str, list[dict]] = {name: [] for name in methods}
    for seed in range(args.seeds):
        for name, alpha in methods.items():
            results[name].append(train(alpha, seed, data, args))
    print(
        f"\nrt-polarity: {len(data['x_train'])} train / {len(data['x_test'])} test sentences, "
        f"vocabulary {data['vocab']}, bag of embeddings d={args.dim}, dropout {args.drop_rate}, "
        f"{args.epochs} epochs, {args.seeds} seeds, ECE with {args.num_bins} bins\n"
    )
    print("| method | test accuracy | test NLL | ECE (15 bins) | time ratio to dropout |")
    print("|---|---|---|---|---|")
    base_time = np.mean([r["seconds"] for r in results["dropout"]])
    for name in methods:
        col = {k: np.array([r[k] for r in results[name]]) for k in ("acc", "nll", "ece")}
        ratio = np.mean([r["seconds"] for r in results[name]]) / base_time
        print(
            f"| {name} | {100 * col['acc'].mean():.2f} ± {100 * col['acc'].std(ddof=1):.2f} % | "
            f"{col['nll'].mean():.4f} ± {col['nll'].std(ddof=1):.4f} | "
            f"{100 * col['ece'].mean():.2f} ± {100 * col['ece'].std(ddof=1):.2f} % | "
            f"{ratio:.2f} |"
        )


if __name__ == "__main__":
    main()
