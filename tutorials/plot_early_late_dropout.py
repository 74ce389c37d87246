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
"""

# %%
# The schedules
# -------------
# The paper's ViT-T setting is early dropout 0.1, linear, cutoff at epoch 50 of 300; its ViT-B
# setting is late stochastic depth 0.4 from epoch 50. Here with 10 iterations per epoch:
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bayesdrop.datasets import load_fashion_mnist, smoke_mode
from bayesdrop.schedules import DropoutScheduler, drop_schedule

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

# %%
# Stochastic depth uses the same schedule with a depth rule: block ``i`` of ``D`` gets
# ``linspace(0, v, D)[i]``. ``DropoutScheduler(model, schedule, target="drop_path")`` applies it
# to every :class:`bayesdrop.nn.DropPath` (which, unlike ``nn.Identity``, stays schedulable at
# rate 0).
import bayesdrop

blocks = nn.Sequential(*[bayesdrop.nn.DropPath() for _ in range(6)])
DropoutScheduler(blocks, [0.5], target="drop_path")
print([round(block.p, 2) for block in blocks])

# %%
# An underfitting model
# ---------------------
# A 784-16-16-10 MLP cannot fit Fashion-MNIST: its training loss stays well above zero. We
# train it with the four schedules (same seed, same batches) and record the training loss on
# the whole training subset with dropout off after every epoch.
smoke = smoke_mode()
num_train, epochs, cutoff = (3000, 4, 1) if smoke else (30000, 10, 3)
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
    return curve


curves = {method: train(method) for method in ("none", "standard", "early", "late")}

fig, ax = plt.subplots(figsize=(5, 3.5))
for method, curve in curves.items():
    ax.plot(range(1, epochs + 1), curve, marker="o", label=method)
ax.axvline(cutoff, color="grey", lw=0.8, ls=":")
ax.set(xlabel="epoch", ylabel="training loss (dropout off)", title="784-16-16-10 MLP")
ax.legend()
fig.tight_layout()
for method, curve in curves.items():
    print(f"{method:9s} final training loss {curve[-1]:.4f}")

# %%
# Reading the curves
# ------------------
# Standard dropout slows the fit of a model that already underfits. The paper's claim is that
# *early* dropout ends *below* no dropout. On this small MLP (one seed here, several in
# ``benchmarks/early_dropout.py``) the effect is small and need not appear: see
# ``benchmarks/README.md`` for the measured multi-seed result.
