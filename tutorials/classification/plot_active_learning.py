"""
Active learning with MC-dropout uncertainty
===========================================

Labels are expensive; a model that knows what it does not know can choose which images to have
labelled next. :mod:`bayesdrop.active` scores a pool of unlabelled images with Monte-Carlo
dropout (BALD: the mutual information between the label and the weights, Gal, Islam &
Ghahramani 2017) and picks a batch -- the top-k scores, or BatchBALD (Kirsch et al. 2019),
which scores the batch jointly and so does not pick the same kind of image ten times.

This tutorial runs a small version of the MNIST study of ``benchmarks/active_learning.py``
(which holds the full study: 5,000-image pool, five methods, three seeds): a pool of 1,000
MNIST training images, 20 labelled images to start (2 per class), 10 acquired per round, a
small CNN retrained every round. Claims shown and checked with ``assert`` at the end:

1. every method ends more than 10 points of test accuracy above where it started (full run
   only: the smoke run trains too briefly). The curves need not rise every round: a small CNN
   retrained from scratch on a few dozen labels is noisy, and a round can lower the accuracy;
   the rounds that did are printed per method;
2. with exact copies of the most uncertain image in the pool, top-k BALD spends its whole batch
   on the copies while BatchBALD takes at most two (full run only, it needs a trained model);
3. no image is ever acquired twice (both runs).

Set ``BAYESDROP_SMOKE=1`` for a fast run and ``BAYESDROP_DATA`` to the folder holding
``mnist/``.
"""

# %%
# Data, model, training
# ---------------------
# Dropout sits only in the dense head: the pool is scored with bayesdrop's ``cached`` engine,
# which runs the convolutions once per batch and only the head once per MC sample.

import time

import matplotlib.pyplot as plt
import torch
from torch import nn

from bayesdrop import active
from bayesdrop.datasets import load_mnist

start_time = time.perf_counter()
torch.set_num_threads(1)
pool_size, rounds, steps, test_size = 1000, 8, 150, 1000
# sphinx_gallery_start_ignore
from bayesdrop.datasets import smoke_mode

smoke = smoke_mode()
if smoke:
    pool_size, rounds, steps, test_size = 300, 2, 20, 300  # the tests' short run
# sphinx_gallery_end_ignore

x_all, y_all = load_mnist(split="train-5k")
keep = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(0))[:pool_size]
x_pool, y_pool = x_all[keep], y_all[keep]
x_test, y_test = load_mnist(split="test")
x_test, y_test = x_test[:test_size], y_test[:test_size]


def make_model():
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(512, 128), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(128, 10),
    )  # fmt: skip


def train(labelled, new):
    """Retrain from scratch on all labelled images (the loop hands us the indices)."""
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.5 / len(labelled))
    x, y = x_pool[labelled], y_pool[labelled]
    for _ in range(steps):
        batch = torch.randint(len(x), (min(32, len(x)),))
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def accuracy(model):
    with torch.no_grad():
        return float((model(x_test).argmax(-1) == y_test).float().mean())


# %%
# The loop: acquire, hand the new indices to ``train``, record the curve
# ----------------------------------------------------------------------
# :func:`bayesdrop.active.run_active_learning` owns no training loop: ``train`` gets the
# labelled indices and returns a model; the loop scores the pool, labels the chosen points of
# the :class:`~bayesdrop.active.ActiveSplit` and evaluates.

curves, splits = {}, {}
for method in ("bald", "batchbald", "random"):
    split = active.ActiveSplit.balanced(y_pool, per_class=2, seed=0)
    curves[method] = active.run_active_learning(
        split, x_pool, train, accuracy, k=10, rounds=rounds, method=method, seed=0,
        num_samples=20, progress=False,
    )  # fmt: skip
    splits[method] = split
    c, seconds = curves[method], time.perf_counter() - start_time
    steps_up = zip(c.num_labelled[1:], c.values, c.values[1:], strict=False)
    dips = [int(n) for n, a, b in steps_up if b < a]
    print(f"{method:10s} accuracy {c.values[0]:.3f} -> {c.values[-1]:.3f} "
          f"with {c.num_labelled[-1]} labels ({seconds:.0f} s); "
          f"lower than the round before at {dips or 'no'} labels")  # fmt: skip

fig, ax = plt.subplots(figsize=(6, 4))
for method, c in curves.items():
    ax.plot(c.num_labelled, c.values, marker="o", label=method)
ax.set_xlabel("labelled images")
ax.set_ylabel("test accuracy")
ax.legend()
_ = ax.set_title(f"MNIST, pool of {pool_size}, acquisition size 10")

# %%
# What each method picks first
# ----------------------------
# The ten images of the first acquisition (after the 20 starting images). BALD's top-k tends to
# take several images of the same confusing kind; BatchBALD spreads its batch.

fig, axes = plt.subplots(3, 10, figsize=(12, 4.6))
for row, method in zip(axes, curves, strict=True):
    first = curves[method].acquired[0]
    for ax, index in zip(row, first, strict=True):
        ax.imshow(x_pool[index, 0], cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(int(y_pool[index])), fontsize=12)
    row[0].set_ylabel(method, fontsize=11)
fig.suptitle("first acquired batch (title: true label)", fontsize=13)
fig.tight_layout()

# %%
# Exact copies in the pool
# ------------------------
# Put four copies of the pool's most uncertain image (by BALD) beside it. Top-k BALD scores
# each copy alone and takes them all; BatchBALD scores the batch jointly and sees that a second
# label of the same image says less about the weights than the first (not nothing: where the
# model is unsure of the label itself, two draws of it are not the same draw), so it takes one
# or two copies and spends the rest of its batch elsewhere. BatchBALD needs the same dropout
# mask for every image of one MC sample; :func:`~bayesdrop.active.score_pool` arranges that
# (:func:`~bayesdrop.active.consistent_masks`).

model = train(splits["bald"].labelled, splits["bald"].labelled)
options = {"method": "batchbald", "num_samples": 50, "seed": 0, "progress": False}
samples = active.score_pool(model, x_pool, **options).samples  # (S, N, C), consistent masks
top = int(active.bald(samples).argmax())
pool = torch.cat([x_pool, x_pool[top : top + 1].repeat(4, 1, 1, 1)])
samples = active.score_pool(model, pool, **options).samples  # same seed: same masks
copies = {top, *range(pool_size, pool_size + 4)}
picked = {
    "bald": active.top_k(active.bald(samples), 5).indices,
    "batchbald": active.batchbald(samples, 5).indices,
}
picked = {m: len(copies & set(i.tolist())) for m, i in picked.items()}
for method, n in picked.items():
    print(f"{method:10s} takes {n} of the 5 copies")

# %%
# Checks
# ------

for method, split in splits.items():
    labelled = split.labelled.tolist()
    assert len(labelled) == len(set(labelled)) == 20 + 10 * rounds, method  # claim 3
# sphinx_gallery_start_ignore
if not smoke:  # claims 1 and 2, full run
    for method, c in curves.items():
        assert c.values[-1] > c.values[0] + 0.1, (method, c.values)  # claim 1
    assert picked["bald"] == 5 and picked["batchbald"] <= 2, picked  # claim 2
# sphinx_gallery_end_ignore
print(f"run time {time.perf_counter() - start_time:.0f} s")
# sphinx_gallery_tags = ["MNIST"]
