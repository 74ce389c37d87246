"""
Early and late dropout schedules
================================

"Dropout Reduces Underfitting" (Liu et al., ICML 2023) turns dropout on or off at a cutoff
epoch: *early dropout* uses dropout only at the beginning of training (it helps models that
underfit), *late dropout* only after the cutoff (it helps models that overfit).
:func:`bayesdrop.schedules.drop_schedule` gives the rate of every optimiser step, and
:class:`bayesdrop.schedules.DropoutScheduler` writes it into every dropout of a model after each
``optimizer.step()``.

This tutorial plots the schedules, then trains a small under-fitting MLP on Fashion-MNIST with
no dropout, standard, early and late dropout and compares the training curves.

**What this page shows.** Each claim is checked by an ``assert`` in the code, so the page
fails to build if a claim stops holding:

1. Early dropout uses the rate until the cutoff and 0 after it; late dropout is 0 until the
   cutoff and the rate after it; stochastic depth gives block ``i`` of ``D`` the rate
   ``linspace(0, r, D)[i]``.
2. On the under-fitting MLP, early dropout ends at a *lower* training loss than no dropout (the
   paper's claim), although it is behind after the first epoch, while it is on; standard and
   late dropout end *higher* than no dropout. Late dropout follows no dropout exactly until the
   cutoff (its rate is 0 there) and stays above it in every epoch after it: switching it on
   sets the fit back against the same run without it.

Claim 1 is checked in every run, claim 2 in the full run shown here (30,000 images, 10 epochs,
one seed; ``benchmarks/early_dropout.py`` repeats it over five seeds). The short smoke run
(``BAYESDROP_SMOKE=1``: 3,000 images, 4 epochs) leaves too few steps after the cutoff for the
effect to appear. The run time is printed at the end (about half a minute on one CPU core).
"""

# %%
# The schedules
# -------------
# The paper's ViT-T setting is early dropout 0.1, linear, cutoff at epoch 50 of 300; its ViT-B
# setting is late stochastic depth 0.4 from epoch 50. Here with 10 iterations per epoch, all
# at rate 0.1:
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bayesdrop.datasets import load_fashion_mnist
from bayesdrop.schedules import DropoutScheduler, drop_schedule

start = time.perf_counter()
common = dict(epochs=300, iters_per_epoch=10)
schedules = {
    "standard 0.1": drop_schedule(0.1, **common),
    "early 0.1, constant": drop_schedule(0.1, **common, cutoff_epoch=50, mode="early"),
    "early 0.1, linear": drop_schedule(
        0.1, **common, cutoff_epoch=50, mode="early", shape="linear"
    ),
    "late 0.1": drop_schedule(0.1, **common, cutoff_epoch=50, mode="late"),
}
fig, axes = plt.subplots(1, 4, figsize=(12, 2.6), sharey=True)
for ax, (name, values) in zip(axes, schedules.items(), strict=True):
    ax.plot(np.arange(len(values)) / 10, values)
    ax.axvline(50, color="grey", lw=0.8, ls=":")
    ax.set(title=name, xlabel="epoch")
axes[0].set_ylabel("drop rate")
fig.tight_layout()
cut = 50 * 10  # the first step after the cutoff epoch
for name, values in schedules.items():
    before, after = np.asarray(values[:cut]), np.asarray(values[cut:])
    print(
        f"{name:20s}: {before[0]:.2f} -> {before[-1]:.3f} before the cutoff, "
        f"{after[0]:.2f} -> {after[-1]:.2f} after"
    )
early, late = np.asarray(schedules["early 0.1, constant"]), np.asarray(schedules["late 0.1"])
assert (early[:cut] == 0.1).all() and (early[cut:] == 0).all()  # claim 1
assert (late[:cut] == 0).all() and (late[cut:] == 0.1).all()  # claim 1

# %%
# Stochastic depth uses the same schedule with a depth rule: block ``i`` of ``D`` gets
# ``linspace(0, v, D)[i]``. ``DropoutScheduler(model, schedule, target="drop_path")`` applies it
# to every :class:`bayesdrop.nn.DropPath` (which, unlike ``nn.Identity``, stays schedulable at
# rate 0).
import bayesdrop

blocks = nn.Sequential(*[bayesdrop.nn.DropPath() for _ in range(6)])
DropoutScheduler(blocks, [0.5], target="drop_path")
print([round(block.p, 2) for block in blocks])
assert np.allclose([block.p for block in blocks], np.linspace(0, 0.5, 6))  # claim 1

# %%
# An underfitting model
# ---------------------
# A 784-16-16-10 MLP cannot fit Fashion-MNIST: its training loss stays well above zero. We
# train it with the four schedules (same seed, same batches) and record the training loss on
# the whole training subset with dropout off after every epoch.
num_train, epochs, cutoff = 30000, 10, 3
# sphinx_gallery_start_ignore
from bayesdrop.datasets import smoke_mode

smoke = smoke_mode()
if smoke:
    num_train, epochs, cutoff = 3000, 4, 1  # the tests' short run
# sphinx_gallery_end_ignore
x, y = load_fashion_mnist(split="train")
subset = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:num_train]
x, y = x[subset].flatten(1), y[subset]
iters = (num_train + 127) // 128


def make_schedule(method):
    kw = dict(epochs=epochs, iters_per_epoch=iters)
    if method == "none":
        return drop_schedule(0.0, **kw)
    if method == "standard":
        return drop_schedule(0.1, **kw)
    if method == "early":
        return drop_schedule(0.1, **kw, cutoff_epoch=cutoff, mode="early", shape="linear")
    return drop_schedule(0.1, **kw, cutoff_epoch=cutoff, mode="late")


def train(method):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 16), nn.ReLU(), nn.Dropout(),
        nn.Linear(16, 10),
    )  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    scheduler = DropoutScheduler(model, make_schedule(method))
    order = torch.Generator().manual_seed(1)
    curve = []
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(num_train, generator=order).split(128):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            curve.append(F.cross_entropy(model(x), y).item())
    print(
        f"{method:9s} training loss per epoch: "
        + " ".join(f"{v:.3f}" for v in curve)
        + f" ({time.perf_counter() - start:.0f} s)"
    )
    return curve


curves = {method: train(method) for method in ("none", "standard", "early", "late")}

fig, ax = plt.subplots(figsize=(5, 3.5))
for method, curve in curves.items():
    ax.plot(range(1, epochs + 1), curve, marker="o", label=method)
ax.axvline(cutoff, color="grey", lw=0.8, ls=":")
ax.set(xlabel="epoch", ylabel="training loss (dropout off)", title="784-16-16-10 MLP")
ax.legend()
fig.tight_layout()
final = {method: curve[-1] for method, curve in curves.items()}
for method, value in final.items():
    print(f"{method:9s} final training loss {value:.4f} ({value / final['none']:.3f} x none)")
# sphinx_gallery_start_ignore
if not smoke:  # claim 2, full run
    assert final["early"] < final["none"]  # early dropout reduces underfitting
    assert curves["early"][0] > curves["none"][0]  # behind while it is on
    assert final["standard"] > final["none"] and final["late"] > final["none"]
    assert np.allclose(curves["late"][:cutoff], curves["none"][:cutoff])  # the same run
    assert all(curves["late"][e] > curves["none"][e] for e in range(cutoff, epochs))
# sphinx_gallery_end_ignore

# %%
# Reading the curves
# ------------------
# Standard dropout slows the fit of a model that already underfits. Late dropout is the
# no-dropout run until the cutoff; switched on after it, it keeps the training loss above that
# run's in every later epoch (the no-dropout loss itself does not fall in every epoch: compare
# the two curves, not one curve's step). Early dropout is behind after the first
# epoch but ends *below* no dropout: the paper's claim that dropout early in training reduces
# underfitting. It is shown here for one seed; ``benchmarks/README.md`` records it over five
# seeds and on the full training set. The paper proposes late dropout for models that overfit,
# which this MLP does not.
print(f"this tutorial ran in {time.perf_counter() - start:.1f} s")
# sphinx_gallery_thumbnail_number = 2
# sphinx_gallery_tags = ["Fashion-MNIST"]
