"""PTB word-level language model: variational (untied) vs standard dropout, MC vs deterministic.

Gal & Ghahramani (2016) section 5.2, scaled to a small CPU: by default 2 x 200 LSTM units trained
for a few epochs on the first tokens of the training split, both models at equal epochs and with
the same optimiser. It reports validation and test perplexity of the deterministic
approximation (dropout off) and of MC dropout (probabilities averaged over ``--mc-samples``
passes, one mask per pass, state carried through the pass).

    python benchmarks/ptb_lm.py                                  # "small": 2 x 200, ~6 CPU-min
    python benchmarks/ptb_lm.py --preset medium --device cuda    # the paper's medium model
    python benchmarks/ptb_lm.py --preset large --device cuda     # 2 x 1500, 55 epochs

Presets set the paper's sizes, rates and schedule; explicit flags override them.
"""

from __future__ import annotations

import argparse
import time

import torch

from bayesdrop.datasets import batchify, load_ptb
from bayesdrop.models import LanguageModel, perplexity, train_epoch

# hidden, epochs, rates (embedding, input, hidden, output), init range, lr decay start
PRESETS = {
    "small": dict(hidden=200, epochs=4, train_tokens=30_000, eval_tokens=8_000,
                  rates=(0.1, 0.35, 0.2, 0.35), init=0.05, decay_after=2, mc_samples=8, clip=5.0),
    "medium": dict(hidden=650, epochs=39, train_tokens=0, eval_tokens=0, clip=5.0,
                   rates=(0.2, 0.35, 0.2, 0.35), init=0.05, decay_after=6, mc_samples=100),
    "large": dict(hidden=1500, epochs=55, train_tokens=0, eval_tokens=0,
                  rates=(0.3, 0.5, 0.3, 0.5), init=0.04, decay_after=10, mc_samples=100, clip=10.0),
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--hidden", type=int)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-tokens", type=int, help="first N training tokens (0: all)")
    parser.add_argument("--eval-tokens", type=int, help="first N valid/test tokens (0: all)")
    parser.add_argument("--rates", type=float, nargs=4, metavar=("EMB", "IN", "HID", "OUT"))
    parser.add_argument("--init", type=float)
    parser.add_argument("--decay-after", type=int, help="lr /= 1.15 each epoch after this one")
    parser.add_argument("--mc-samples", type=int)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--eval-batch", type=int, default=10)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--clip", type=float)
    parser.add_argument("--weight-decay", type=float, default=1e-7)
    parser.add_argument("--models", nargs="+", default=["variational", "standard"],
                        choices=["variational", "standard"])  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="data folder (default: BAYESDROP_DATA)")
    args = parser.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def build(kind: str, vocab_size: int, args: argparse.Namespace) -> LanguageModel:
    emb, inp, hid, out = args.rates
    if kind == "standard":  # Zaremba et al.: no word-type and no recurrent dropout
        emb, hid = 0.0, 0.0
    return LanguageModel(vocab_size, args.hidden, args.layers, dropout=kind, embedding_p=emb,
                         input_p=inp, hidden_p=hid, output_p=out, masks="untied",
                         init_range=args.init)  # fmt: skip


def run_model(kind: str, corpus, data: dict, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    model = build(kind, corpus.vocab_size, args).to(args.device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        if epoch > args.decay_after:
            for group in opt.param_groups:
                group["lr"] /= 1.15
        loss = train_epoch(model, data["train"], opt, bptt=args.bptt, clip=args.clip)
        print(f"  {kind} epoch {epoch}: train ppl {torch.tensor(loss).exp():.1f}", flush=True)
    row = {"model": kind, "train_s": time.perf_counter() - start}
    for split in ("valid", "test"):
        row[f"{split}_det"] = perplexity(model, data[split], bptt=args.bptt)
        row[f"{split}_mc"] = perplexity(model, data[split], bptt=args.bptt,
                                        num_samples=args.mc_samples)  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    corpus = load_ptb(args.root)

    def cut(tokens, limit):
        return tokens[:limit] if limit else tokens

    data = {
        "train": batchify(cut(corpus.train, args.train_tokens), args.batch).to(args.device),
        "valid": batchify(cut(corpus.valid, args.eval_tokens), args.eval_batch).to(args.device),
        "test": batchify(cut(corpus.test, args.eval_tokens), args.eval_batch).to(args.device),
    }
    print(f"PTB, {args.layers} x {args.hidden} LSTM, {args.epochs} epochs on "
          f"{data['train'].numel():,} training tokens; rates (emb, in, hid, out) = {args.rates}; "
          f"MC: {args.mc_samples} passes; evaluation on {data['valid'].numel():,} / "
          f"{data['test'].numel():,} tokens", flush=True)  # fmt: skip
    rows = [run_model(kind, corpus, data, args) for kind in args.models]
    print("\n| dropout | valid (det.) | valid (MC) | test (det.) | test (MC) | train time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['valid_det']:.1f} | {r['valid_mc']:.1f} | "
              f"{r['test_det']:.1f} | {r['test_mc']:.1f} | {r['train_s']:.0f} s |")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
