"""Variational vs naive vs no dropout in an LSTM sentiment classifier (Gal & Ghahramani 2016).

The paper's second task, scaled to a small CPU: sentence polarity (rt-polarity, Pang & Lee 2005,
5,331 + 5,331 sentences), a fixed 90/10 train/test split drawn with ``--split-seed``, sentences
truncated to ``--max-len`` tokens. One architecture for all three models (word embedding ->
one-layer LSTM -> linear head on the state at the last real token), the same optimiser and batch
order per seed; only the dropout differs:

* ``none``: no dropout;
* ``naive``: :class:`torch.nn.Dropout` on the embedded inputs (a new mask at every time step)
  and on the LSTM output, nothing on the recurrent state;
* ``variational``: :class:`bayesdrop.EmbeddingDropout` (word-type dropout, tied by word within a
  sentence) and :class:`bayesdrop.VariationalLSTM` (one mask per sentence on the inputs, the
  recurrent state and the output).

Reported: deterministic test error after every epoch (mean and standard deviation over seeds),
the training loss, and for the variational model the MC test error (probabilities averaged over
``--mc-samples`` masks, word-type dropout off as in the reference code) beside the deterministic
one at the last epoch.

    python benchmarks/rnn_sentiment.py            # 5 seeds x 3 models (239 s, quiet 2 cores)
    python benchmarks/rnn_sentiment.py --quick    # 2 seeds, 2 epochs, 2,000 sentences
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import bayesdrop
from bayesdrop.datasets import data_root

PAD, UNK = 0, 1
VARIANTS = ("none", "naive", "variational")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="data folder (default: $BAYESDROP_DATA)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--dim", type=int, default=32, help="embedding size")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=30, help="tokens kept per sentence")
    parser.add_argument("--p", type=float, default=0.25, help="input / hidden / output rate")
    parser.add_argument("--embed-p", type=float, default=0.25, help="word-type rate")
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mc-samples", type=int, default=20)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--subset", type=int, default=0, help="first N shuffled sentences (0: all)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds, args.subset, args.mc_samples = 2, 2, 2000, 4
    return args


def load_polarity(
    root: str | None = None,
    *,
    max_len: int = 30,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int = 0,
) -> dict:
    """Tokenised rt-polarity as padded index tensors ``(N, max_len)``, lengths and labels.

    Label 1 = positive. The vocabulary holds the training words seen at least twice (index 0 is
    padding, 1 the unknown word).
    """
    folder = data_root(root, "rt-polarity")
    texts, labels = [], []
    for label, name in ((1, "rt-polarity.pos"), (0, "rt-polarity.neg")):
        with open(folder / name, encoding="utf-8", errors="replace") as f:
            lines = [line.split() for line in f if line.strip()]
        texts += lines
        labels += [label] * len(lines)
    perm = np.random.default_rng(split_seed).permutation(len(texts))
    if subset:
        perm = perm[:subset]
    cut = len(perm) - round(test_fraction * len(perm))
    train_idx, test_idx = perm[:cut], perm[cut:]
    counts = Counter(w for i in train_idx for w in texts[i])
    vocab = {w: k + 2 for k, w in enumerate(sorted(w for w, c in counts.items() if c >= 2))}

    def encode(idx: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        x = torch.full((len(idx), max_len), PAD, dtype=torch.long)
        lengths = torch.empty(len(idx), dtype=torch.long)
        for row, i in enumerate(idx):
            ids = [vocab.get(w, UNK) for w in texts[i][:max_len]] or [UNK]
            x[row, : len(ids)] = torch.tensor(ids)
            lengths[row] = len(ids)
        return x, lengths, torch.tensor([labels[i] for i in idx])

    x_tr, len_tr, y_tr = encode(train_idx)
    x_te, len_te, y_te = encode(test_idx)
    return {
        "x_train": x_tr, "len_train": len_tr, "y_train": y_tr,
        "x_test": x_te, "len_test": len_te, "y_test": y_te,
        "vocab": len(vocab) + 2,
    }  # fmt: skip


class SentimentLSTM(nn.Module):
    """Embedding -> one-layer LSTM -> linear head on the state at each sentence's last token.

    The LSTM is a :class:`bayesdrop.VariationalLSTM` for all three variants (rates 0 for
    ``none`` and ``naive``), so the recurrence code and the parameters are identical.
    """

    def __init__(
        self, vocab: int, dim: int, hidden: int, variant: str, p: float, embed_p: float
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"Expected variant to be one of {VARIANTS}, but got {variant!r}.")
        self.variant = variant
        embedding = nn.Embedding(vocab, dim, padding_idx=PAD)
        rate = p if variant == "variational" else 0.0
        if variant == "variational":
            self.embed: nn.Module = bayesdrop.EmbeddingDropout(embedding, embed_p, batch_first=True)
        else:
            self.embed = embedding
        self.lstm = bayesdrop.VariationalLSTM(
            dim, hidden, batch_first=True, input_p=rate, hidden_p=rate, output_p=rate
        )
        naive = p if variant == "naive" else 0.0
        self.drop_in, self.drop_out = nn.Dropout(naive), nn.Dropout(naive)
        self.head = nn.Linear(hidden, 2)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        steps = int(lengths.max())
        out, _ = self.lstm(self.drop_in(self.embed(tokens[:, :steps])))
        last = out[torch.arange(len(lengths)), lengths - 1]
        return self.head(self.drop_out(last))


@dataclass
class RunResult:
    variant: str
    seed: int
    test_error: list[float] = field(default_factory=list)  # deterministic, after each epoch
    test_nll: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # running mean over the epoch
    mc_error: float = float("nan")
    mc_nll: float = float("nan")
    seconds: float = 0.0


def evaluate(model: SentimentLSTM, x: Tensor, lengths: Tensor, y: Tensor) -> tuple[float, float]:
    """Deterministic test error and NLL (dropout off)."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat(
            [model(xb, lb) for xb, lb in zip(x.split(512), lengths.split(512), strict=True)]
        )
    return (logits.argmax(-1) != y).double().mean().item(), F.cross_entropy(logits, y).item()


def mc_evaluate(
    model: SentimentLSTM, x: Tensor, lengths: Tensor, y: Tensor, num_samples: int
) -> tuple[float, float]:
    """MC error and NLL: probabilities averaged over masks, word-type dropout switched off."""
    model.eval()
    probs = torch.zeros(len(y), 2)
    with torch.no_grad(), bayesdrop.sampling(model), bayesdrop.sampling(model.embed, False):
        for _ in range(num_samples):
            probs += torch.cat(
                [
                    model(xb, lb).softmax(-1)
                    for xb, lb in zip(x.split(512), lengths.split(512), strict=True)
                ]
            )
    probs /= num_samples
    nll = -probs[torch.arange(len(y)), y].clamp_min(1e-12).log().mean().item()
    return (probs.argmax(-1) != y).double().mean().item(), nll


def train_one(variant: str, seed: int, data: dict, args: argparse.Namespace) -> RunResult:
    torch.manual_seed(seed)
    model = SentimentLSTM(data["vocab"], args.dim, args.hidden, variant, args.p, args.embed_p)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    order = torch.Generator().manual_seed(1000 + seed)
    x, lengths, y = data["x_train"], data["len_train"], data["y_train"]
    test = (data["x_test"], data["len_test"], data["y_test"])
    result = RunResult(variant, seed)
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        total, count = 0.0, 0
        for idx in torch.randperm(len(x), generator=order).split(args.batch_size):
            loss = F.cross_entropy(model(x[idx], lengths[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        result.train_loss.append(total / count)
        err, nll = evaluate(model, *test)
        result.test_error.append(err)
        result.test_nll.append(nll)
    if variant == "variational":
        result.mc_error, result.mc_nll = mc_evaluate(model, *test, args.mc_samples)
    result.seconds = time.perf_counter() - start
    return result


def summarise(results: list[RunResult]) -> dict[str, dict[str, np.ndarray]]:
    """Per variant: arrays (seeds, epochs) of test error, NLL and training loss."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for variant in VARIANTS:
        runs = [r for r in results if r.variant == variant]
        if runs:
            out[variant] = {
                key: np.array([getattr(r, key) for r in runs])
                for key in ("test_error", "test_nll", "train_loss")
            }
    return out


def print_report(results: list[RunResult], args: argparse.Namespace, data: dict) -> None:
    table = summarise(results)
    print(
        f"\nrt-polarity: {len(data['y_train'])} train / {len(data['y_test'])} test sentences, "
        f"vocabulary {data['vocab']}, max {args.max_len} tokens, embedding {args.dim}, LSTM "
        f"{args.hidden}, p={args.p}, word-type p={args.embed_p}, Adam lr {args.lr}, batch "
        f"{args.batch_size}, {args.epochs} epochs, {args.seeds} seeds\n"
    )
    print("Deterministic test error (%) after each epoch, mean ± std over seeds:\n")
    print("| epoch | " + " | ".join(table) + " |")
    print("|---:|" + "---|" * len(table))
    for e in range(args.epochs):
        cells = [
            f"{100 * t['test_error'][:, e].mean():.2f} ± {100 * t['test_error'][:, e].std():.2f}"
            for t in table.values()
        ]
        print(f"| {e + 1} | " + " | ".join(cells) + " |")
    print("\n| model | best epoch (mean curve) | best error % | last error % | last - best "
          "| last test NLL | last train loss | s / run |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for variant, t in table.items():
        curve = t["test_error"].mean(0)
        best = int(curve.argmin())
        secs = np.mean([r.seconds for r in results if r.variant == variant])
        print(
            f"| {variant} | {best + 1} | {100 * curve[best]:.2f} | {100 * curve[-1]:.2f} ± "
            f"{100 * t['test_error'][:, -1].std():.2f} | {100 * (curve[-1] - curve[best]):+.2f} | "
            f"{t['test_nll'][:, -1].mean():.3f} ± {t['test_nll'][:, -1].std():.3f} | "
            f"{t['train_loss'][:, -1].mean():.3f} | {secs:.0f} |"
        )
    var = [r for r in results if r.variant == "variational"]
    if var:
        det = np.array([r.test_error[-1] for r in var])
        mc = np.array([r.mc_error for r in var])
        mc_nll = np.array([r.mc_nll for r in var])
        det_nll = np.array([r.test_nll[-1] for r in var])
        print(
            f"\nvariational, last epoch, {args.mc_samples} MC samples: deterministic error "
            f"{100 * det.mean():.2f} ± {100 * det.std():.2f} %, MC error {100 * mc.mean():.2f} ± "
            f"{100 * mc.std():.2f} %; NLL {det_nll.mean():.3f} (deterministic) vs "
            f"{mc_nll.mean():.3f} (MC)"
        )


def main(argv: list[str] | None = None) -> list[RunResult]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_polarity(
        args.root,
        max_len=args.max_len,
        test_fraction=args.test_fraction,
        split_seed=args.split_seed,
        subset=args.subset,
    )
    start = time.perf_counter()
    results = []
    for seed in range(args.seeds):
        for variant in args.variants:
            r = train_one(variant, seed, data, args)
            results.append(r)
            errs = " ".join(f"{100 * e:.1f}" for e in r.test_error)
            print(f"seed {seed} {variant:>11}: test error % per epoch {errs} ({r.seconds:.0f} s)",
                  flush=True)  # fmt: skip
    print_report(results, args, data)
    print(f"\nwall time {time.perf_counter() - start:.0f} s")
    return results


if __name__ == "__main__":
    main()
