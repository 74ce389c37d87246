"""
A LoRA fine-tuned language model: per-token uncertainty and generation
======================================================================

The language models people fine-tune today are transformers with LoRA adapters, and the
adapters' dropout (PEFT's ``lora_dropout``) is often the only dropout left: released decoder
checkpoints mostly ship with dropout 0. Sampling that dropout makes the fine-tuned model an
ensemble, and :func:`bayesdrop.score_tokens` and :func:`bayesdrop.generate` give, for every
token, the ensemble's log-probability, its predictive entropy and the mutual information (MI)
between the next token and the dropout masks, the epistemic part of the uncertainty.

This page builds a small GPT-2-style model from a configuration (random weights, nothing
downloaded) with the word-level vocabulary of Penn Treebank's training split, pre-trains it
briefly on the first half of that split with no dropout, fine-tunes LoRA adapters with
``lora_dropout=0.1`` on the second half (the base frozen), and then scores held-out PTB
sentences and movie-review sentences (``rt-polarity``, out of domain) word by word, plots the
MI along a sentence of each, and generates continuations with the MI of each generated word.
Base and adapters see the same corpus here: with a released checkpoint the pre-training is
dropped and the fine-tune is on your own text.

**What this page shows.** Each claim is checked by an ``assert`` in the code:

1. The LoRA fine-tune lowers the validation perplexity of the pre-trained base model.
2. Only the adapters' dropout layers are sampled (the base model has no dropout).
3. The mean per-token MI is higher on the movie reviews than on held-out PTB sentences, also
   counting only the words predicted after a known (not ``<unk>``) word, although the
   reviews' perplexity is lower (on their known words too).
4. The MI is a small part of the predictive entropy of every generated word: most of the
   model's uncertainty about the next word is aleatoric (the expected entropy).

Claims 2 and 4 are checked in every run, claims 1 and 3 in the full run shown here; the smoke
run (``BAYESDROP_SMOKE=1``) trains for a few steps only, to check that the code runs. The run
time is printed at the end (about three minutes on one CPU core). ``BAYESDROP_DATA`` names the
folder holding ``ptb/`` and ``rt-polarity/``.
"""

# %%
# A small GPT-2 from a configuration
# ----------------------------------
# :func:`bayesdrop.datasets.load_ptb` reads Mikolov's PTB files: 10,000 words including
# ``<unk>`` for the rarer ones, ``<eos>`` at the end of every sentence; a word is one token.
# With a released checkpoint, the line that builds ``base`` becomes
# ``base = transformers.AutoModelForCausalLM.from_pretrained(name)`` and ``encode`` becomes a
# call of ``transformers.AutoTokenizer.from_pretrained(name)`` (``padding_side="left"`` for
# prompts); the pre-training section is then dropped and nothing else changes.
import os
import re
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import peft
import torch
import transformers

import bayesdrop
from bayesdrop.datasets import load_ptb

start = time.perf_counter()
torch.manual_seed(0)
torch.set_num_threads(1)
transformers.logging.set_verbosity_error()  # its notices on padding and on the loss type
pretrain_steps, lora_steps, num_sentences, num_samples = 110, 60, 100, 8
# sphinx_gallery_start_ignore
# The tests' short run (BAYESDROP_SMOKE=1).
from bayesdrop.datasets import smoke_mode

smoke = smoke_mode()
if smoke:
    pretrain_steps, lora_steps, num_sentences, num_samples = 8, 4, 16, 4
# sphinx_gallery_end_ignore

data = Path(os.environ.get("BAYESDROP_DATA", "../shared/data"))
corpus = load_ptb(data)
index = {word: i for i, word in enumerate(corpus.vocab)}
UNK, EOS = index["<unk>"], index["<eos>"]
config = transformers.GPT2Config(
    vocab_size=corpus.vocab_size,
    n_embd=64,
    n_layer=2,
    n_head=4,
    n_positions=64,
    resid_pdrop=0.0,  # no dropout in the base model, as in most released decoders
    embd_pdrop=0.0,
    attn_pdrop=0.0,
    bos_token_id=EOS,
    eos_token_id=EOS,
)
base = transformers.GPT2LMHeadModel(config)
print(f"vocabulary {corpus.vocab_size:,} words; {base.num_parameters():,} parameters")

# %%
# Pre-training, then a LoRA fine-tune with adapter dropout
# --------------------------------------------------------
# Both stages train on random windows of 64 tokens of the training stream, 32 windows a step,
# with AdamW and a linearly decaying learning rate; the model's own loss shifts the labels.
# PEFT's LoRA adapters (rank 8) go on the attention and MLP projections of both blocks; the
# base weights are frozen and ``lora_dropout=0.1`` drops each adapter's input features.
half = len(corpus.train) // 2


def fit(model: torch.nn.Module, tokens: torch.Tensor, steps: int, lr: float, seed: int) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - i / steps)
    starts = torch.randint(
        len(tokens) - 64, (steps, 32), generator=torch.Generator().manual_seed(seed)
    )
    model.train()
    for windows in starts:
        x = torch.stack([tokens[s : s + 64] for s in windows.tolist()])
        loss = model(input_ids=x, labels=x).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
    model.eval()


@torch.no_grad()
def perplexity(model: torch.nn.Module, tokens: torch.Tensor) -> float:
    """Deterministic perplexity on the first 64 windows of 64 tokens (dropout off)."""
    x = tokens[: 64 * 64].view(64, 64)
    return float(model(input_ids=x, labels=x).loss.exp())


fit(base, corpus.train[:half], pretrain_steps, 3e-3, seed=0)
base_ppl = perplexity(base, corpus.valid)
print(
    f"pre-trained base: validation perplexity {base_ppl:.0f} ({time.perf_counter() - start:.0f} s)"
)

lora = peft.LoraConfig(
    r=8,
    lora_alpha=32,
    lora_dropout=0.1,
    target_modules=["c_attn", "c_proj", "c_fc"],  # attention and MLP projections
    fan_in_fan_out=True,  # GPT-2's projections are Conv1D layers
    task_type="CAUSAL_LM",
)
with warnings.catch_warnings():
    # peft 0.21 reads transformers' deprecated `is_gradient_checkpointing`
    warnings.filterwarnings("ignore", category=FutureWarning)
    model = peft.get_peft_model(base, lora)
fit(model, corpus.train[half:], lora_steps, 1e-2, seed=1)
lora_ppl = perplexity(model, corpus.valid)
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(
    f"LoRA fine-tune ({trainable:,} trainable parameters): validation perplexity "
    f"{lora_ppl:.0f} ({time.perf_counter() - start:.0f} s)"
)
# sphinx_gallery_start_ignore
if not smoke:
    assert lora_ppl < base_ppl, (lora_ppl, base_ppl)  # claim 1
# sphinx_gallery_end_ignore


# %%
# The perplexities are far from a trained language model's (a few CPU minutes of training);
# what matters here is the adapters' dropout.
#
# Held-out PTB against movie reviews
# ----------------------------------
# The movie reviews are tokenised differently: we split off ``'s`` and ``n't`` as PTB does,
# write numbers as ``N``, drop punctuation (PTB has none) and map every word outside the PTB
# vocabulary to ``<unk>``. Both sets take the first sentences of 8 to 30 words (the reviews
# shuffled, seeded). Each sentence is scored after an ``<eos>`` prompt, with ``<eos>`` as its
# last token; the MI at position :math:`t` is the uncertainty of predicting word :math:`t`
# from the words before it.
def ptb_words(line: str) -> list[str]:
    words = re.sub(r"(n't|'s|'re|'ve|'m|'ll|'d)\b", r" \1", line).split()
    words = ["N" if re.fullmatch(r"[\d.,:/-]*\d[\d.,:/-]*", w) else w for w in words]
    return [w for w in words if re.search(r"[a-z0-9]", w, flags=re.IGNORECASE)]


def encode(words: list[str]) -> list[int]:
    return [index.get(w, UNK) for w in words] + [EOS]


def first_sentences(sentences: list[list[str]], n: int) -> list[list[str]]:
    return [words for words in sentences if 8 <= len(words) <= 30][:n]


valid_words = [corpus.vocab[t] for t in corpus.valid.tolist()]
ends = [i for i, w in enumerate(valid_words) if w == "<eos>"]
held_out = [valid_words[i + 1 : j] for i, j in zip([-1, *ends], ends, strict=False)]
reviews = []
for name in ("rt-polarity.pos", "rt-polarity.neg"):
    reviews += (data / "rt-polarity" / name).read_text(encoding="latin-1").splitlines()
order = torch.randperm(len(reviews), generator=torch.Generator().manual_seed(0)).tolist()
sets = {
    "PTB (held out)": first_sentences(held_out, num_sentences),
    "rt-polarity": first_sentences([ptb_words(reviews[i]) for i in order], num_sentences),
}


def score(sentences: list[list[str]]) -> bayesdrop.lm.TokenUncertainty:
    sentences = [encode(words) for words in sentences]
    length = max(map(len, sentences))
    target = torch.full((len(sentences), length), EOS)
    mask = torch.zeros(len(sentences), length, dtype=torch.long)
    for i, s in enumerate(sentences):
        target[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
    prompt = torch.full((len(sentences), 1), EOS)
    return bayesdrop.score_tokens(
        model, prompt, target, target_mask=mask, num_samples=num_samples, seed=0, chunk_size=2
    )


scores = {name: score(sentences) for name, sentences in sets.items()}
lora_layers = [n for n, _ in model.named_modules() if n.endswith("lora_dropout.default")]
known_mi, known_ppl = {}, {}
for name, out in scores.items():
    assert set(out.noise_modules) == set(lora_layers)  # claim 2
    mi, tokens = out.mutual_information[out.mask], out.tokens[out.mask]
    after = torch.cat([torch.full_like(out.tokens[:, :1], EOS), out.tokens[:, :-1]], 1)[out.mask]
    known_mi[name] = float(mi[after != UNK].mean())
    known_ppl[name] = float((-out.log_probs[out.mask][tokens != UNK].mean()).exp())
    print(
        f"{name:15s} {len(mi):5,} words, {(tokens == UNK).float().mean():5.1%} <unk>: "
        f"mean MI {mi.mean() * 1e3:.2f} mnats ({known_mi[name] * 1e3:.2f} after a known word); "
        f"perplexity {(-out.log_probs[out.mask].mean()).exp():.0f} "
        f"({known_ppl[name]:.0f} on the known words)"
    )
print(f"sampled: {len(lora_layers)} lora_dropout layers, e.g. {lora_layers[0]}")
mean_mi = {name: float(out.mutual_information[out.mask].mean()) for name, out in scores.items()}
# sphinx_gallery_start_ignore
if not smoke:  # claim 3
    assert mean_mi["rt-polarity"] > mean_mi["PTB (held out)"], mean_mi
    assert known_mi["rt-polarity"] > known_mi["PTB (held out)"], known_mi
    assert known_ppl["rt-polarity"] < known_ppl["PTB (held out)"], known_ppl
# sphinx_gallery_end_ignore

# %%
# The MI is higher on the movie reviews, also when only the predictions made after a known
# word are counted, so the reviews' three times as many ``<unk>`` words are not the whole
# story. The MI does not follow the perplexity: the reviews' perplexity is lower than PTB's,
# on their known words too, yet the dropout samples disagree more about their next words. The
# MI values are small (millinats): only the adapters' dropout is sampled, on top of a frozen
# base.
#
# MI along a sentence
# -------------------
# One sentence of each set (the first of at most 14 words), one bar per word: the MI of the
# prediction of that word from the words before it. Words outside the PTB vocabulary, scored
# as ``<unk>``, are starred.
fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharey=True)
for ax, (name, out), colour in zip(axes, scores.items(), ["tab:blue", "tab:orange"], strict=True):
    row = next(i for i, words in enumerate(sets[name]) if len(words) <= 14)
    words = [w if w in index else f"{w}*" for w in sets[name][row]] + ["<eos>"]
    mi = out.mutual_information[row, : len(words)] * 1e3
    ax.bar(range(len(words)), mi, color=colour)
    ax.set_xticks(range(len(words)), words, rotation=40, ha="right", fontsize=10)
    ax.set_title(f"{name}: mean MI of the sentence {float(mi.mean()):.2f} mnats", fontsize=11)
    ax.set_ylabel("MI (millinats)")
fig.tight_layout()

# %%
# Generation with uncertainty
# ---------------------------
# :func:`bayesdrop.generate` decodes from the average of the next-word distributions of the
# dropout samples, each sample keeping its own cache, and returns every generated word with its
# MI. Greedy decoding (the default) makes this briefly trained model repeat its most frequent
# words (``<unk>``, ``N``), so we draw each word from the average instead (``decoding="sample"``,
# seeded). The prompts have different lengths: they are left padded, with an attention mask.
prompts = [["the", "company", "said"], ["shares", "of"], ["the", "film", "is", "a"]]
width = max(map(len, prompts))
input_ids = torch.tensor([[EOS] * (width - len(p)) + [index[w] for w in p] for p in prompts])
attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
generated = bayesdrop.generate(
    model,
    input_ids,
    attention_mask=attention_mask,
    max_new_tokens=10,
    num_samples=num_samples,
    decoding="sample",
    eos_token_id=EOS,
    seed=0,
)
for prompt, tokens, keep, mi in zip(
    prompts, generated.tokens, generated.mask, generated.mutual_information, strict=True
):
    words = [
        f"{corpus.vocab[t]} ({m * 1e3:.1f})" for t, m in zip(tokens[keep], mi[keep], strict=True)
    ]
    print(" ".join(prompt), "|", " ".join(words))
share = generated.mutual_information / generated.predictive_entropy
share = share[generated.mask]
print(f"MI / predictive entropy of the generated words: at most {float(share.max()):.2%}")
assert float(share.max()) < 0.01  # claim 4

# %%
# Each word is followed by its MI in millinats. The MI is well under 1 % of the predictive
# entropy of every generated word: the adapters' dropout moves the next-word distribution
# only a little, and most of the uncertainty is in the distribution itself.
#
# ``noise=`` samples only the dropout layers whose names a regular expression finds, for
# example the adapters of the last block; the others are off for the call:
last_block = bayesdrop.generate(
    model,
    input_ids,
    attention_mask=attention_mask,
    max_new_tokens=10,
    num_samples=num_samples,
    decoding="sample",
    eos_token_id=EOS,
    seed=0,
    noise=r"\.h\.1\.",
)
print(f"noise=r'\\.h\\.1\\.' sampled {len(last_block.noise_modules)} of {len(lora_layers)} layers")
assert all(".h.1." in n for n in last_block.noise_modules)
print(f"this tutorial ran in {time.perf_counter() - start:.1f} s")
# sphinx_gallery_thumbnail_number = 1
# sphinx_gallery_tags = ["Penn Treebank", "rt-polarity"]
