"""
A variational LSTM language model on Penn Treebank
==================================================

Gal & Ghahramani's variational LSTM drops the same units at every time step of a sequence:
on the inputs, on the recurrent state and on the output, and whole word types in the
embedding. This tutorial trains a small word-level language model with it, compares the
deterministic perplexity with MC dropout (probabilities averaged over masks), and shows what
the masks look like next to the per-step masks of ``torch.nn.Dropout``.
"""

# %%
# Data and model
# --------------
# :func:`bayesdrop.datasets.load_ptb` reads Mikolov's PTB files from ``BAYESDROP_DATA/ptb``.
# We train on the first tokens of the training split only, so that this page builds in
# seconds; ``benchmarks/ptb_lm.py`` runs the larger comparisons.
import matplotlib.pyplot as plt
import torch

import bayesdrop
from bayesdrop.datasets import batchify, load_ptb, smoke_mode
from bayesdrop.models import LanguageModel, perplexity, train_epoch

torch.manual_seed(0)
torch.set_num_threads(1)
smoke = smoke_mode()
corpus = load_ptb()
train_tokens, eval_tokens, hidden = (4_000, 2_000, 32) if smoke else (60_000, 10_000, 200)
train = batchify(corpus.train[:train_tokens], 20)
valid = batchify(corpus.valid[:eval_tokens], 10)
print(f"vocabulary {corpus.vocab_size:,}; training on {train.numel():,} tokens")

model = LanguageModel(
    corpus.vocab_size,
    hidden_size=hidden,
    num_layers=2,
    embedding_p=0.1,  # word types
    input_p=0.35,  # inputs of both layers
    hidden_p=0.2,  # recurrent state h_{t-1}
    output_p=0.35,  # top-layer output
    masks="untied",  # one mask per gate
)
print(model.rnn)

# %%
# Training
# --------
# Plain SGD with gradient clipping, truncated back-propagation over 35 steps (the paper uses a
# learning rate of 1 over the whole corpus; on this small subset a larger one learns faster).
# Masks are drawn afresh for every chunk of 35 steps and reused at each of its steps.
optimizer = torch.optim.SGD(model.parameters(), lr=5.0 if smoke else 2.0)
for epoch in range(2 if smoke else 3):
    loss = train_epoch(model, train, optimizer, bptt=35, clip=5.0)
    print(f"epoch {epoch + 1}: training perplexity {torch.tensor(loss).exp():.0f}")

# %%
# Deterministic vs MC perplexity
# ------------------------------
# The deterministic approximation switches every mask off. MC dropout runs the validation text
# once per mask set, carrying the state through the pass, and averages the probability of each
# next word over the passes.
det = perplexity(model, valid)
mc = perplexity(model, valid, num_samples=4 if smoke else 10)
print(f"validation perplexity: deterministic {det:.1f}, MC dropout {mc:.1f}")

# %%
# What the masks look like
# ------------------------
# One sequence, 40 time steps, 48 units of the recurrent state. The variational mask is drawn
# once per sequence and repeats at every step (horizontal stripes); ``torch.nn.Dropout``
# applied step by step draws a new mask each time (salt and pepper). The untied variant has
# one such mask per gate.
steps, units = 40, min(48, hidden)
masks = model.rnn.sample_masks(1)
variational = masks.hidden[0][0, 0, :units].unsqueeze(1).expand(units, steps)
per_step = torch.nn.Dropout(model.rnn.hidden_p)(torch.ones(units, steps))

fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), sharey=True)
panels = [
    (variational, "variational (input gate): one mask per sequence"),
    (per_step, "torch.nn.Dropout at every step"),
    (masks.hidden[0][1, 0, :units].unsqueeze(1).expand(units, steps), "untied: forget gate"),
]
for ax, (mask, title) in zip(axes, panels, strict=True):
    ax.imshow(mask > 0, cmap="Greys_r", aspect="auto", interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("time step")
axes[0].set_ylabel("unit of $h_{t-1}$ (white: kept)")
fig.tight_layout()

# %%
# Word-type dropout drops a word everywhere it occurs in a sequence: the two occurrences of
# a repeated word (``N``, ``<unk>``, ``the`` below) share one mask value.
sentence = corpus.train[24:48].unsqueeze(1)  # (T, N=1), from the second line of the corpus
table = model.embedding.sample_masks(1)
word_mask = bayesdrop.functional.word_type_mask(sentence, table)
for token, value in zip(sentence[:, 0].tolist(), word_mask[:, 0].tolist(), strict=True):
    print(f"{corpus.vocab[token]:>12s}  {'kept' if value > 0 else 'DROPPED'}")
