"""
Out-of-distribution detection with MC dropout
=============================================

A classifier trained on Fashion-MNIST gives confident answers on inputs it has never seen:
handwritten digits (MNIST) and letters (notMNIST) get a high top probability from its
deterministic forward pass. Monte-Carlo dropout turns the dropout it was trained with into a
predictive distribution: :func:`bayesdrop.mc_predict` samples the dropout
masks and returns the predictive entropy (total uncertainty) and the mutual information
(BALD, the part due to the unknown weights). Here we check that both are larger on the
foreign inputs, and by how much.

**What this page shows.** Each claim is checked by an ``assert`` in the code, so the page
fails to build if a claim stops holding:

0. The deterministic network is confident on the foreign inputs: on both foreign sets its
   mean top probability is above 0.7 (printed below, beside Fashion-MNIST's).
1. On both foreign sets, the mean predictive entropy and the mean mutual information are
   higher, and the mean top probability lower, than on Fashion-MNIST; the mutual information
   never exceeds the predictive entropy.
2. As a score for "this input is foreign", the mutual information separates both foreign sets
   from Fashion-MNIST better than the predictive entropy, which in turn does better than the
   deterministic network's softmax entropy (AUROC, higher is better).
3. The mutual information separates well (AUROC above 0.9 on both foreign sets) but not
   perfectly (below 0.99).

All claims are checked in the full run shown here (60,000 training images, 3 epochs, 3,000
test images per set, 100 samples). The smoke run (``BAYESDROP_SMOKE=1``: 5,000 images, one
epoch) checks claim 1 only. The run time is printed at the end (about a minute on one CPU
core). ``BAYESDROP_DATA`` names the folder holding ``fashion-mnist/``, ``mnist/`` and
``notmnist/``.
"""

# %%
# Data and a small convolutional network
# --------------------------------------
# The network has dropout only in its head, as many image models do. bayesdrop's ``cached``
# engine therefore runs the convolutions once per batch and only the head once per sample.

import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

import bayesdrop
from bayesdrop.datasets import load_fashion_mnist, load_mnist, load_notmnist

start = time.perf_counter()
torch.manual_seed(0)
num_train, epochs, num_test, num_samples = 60000, 3, 3000, 100
# sphinx_gallery_start_ignore
# The tests' short run (BAYESDROP_SMOKE=1).
from bayesdrop.datasets import smoke_mode

smoke = smoke_mode()
if smoke:
    num_train, epochs, num_test, num_samples = 5000, 1, 1000, 30
# sphinx_gallery_end_ignore

x_train, y_train = load_fashion_mnist(split="train")
perm = torch.randperm(len(x_train))[:num_train]
x_train, y_train = x_train[perm], y_train[perm]
test_sets = {
    "Fashion-MNIST": load_fashion_mnist(split="test")[0][:num_test],
    "MNIST": load_mnist(split="test")[0][:num_test],
    "notMNIST": load_notmnist()[0][:num_test],
}

model = nn.Sequential(
    nn.Conv2d(1, 16, 3),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Dropout(0.5),
    nn.Linear(32 * 5 * 5, 128),
    nn.ReLU(),
    nn.Dropout(0.5),
    nn.Linear(128, 10),
)

# %%
# Training: plain cross-entropy with dropout
# ------------------------------------------

optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
model.train()
for epoch in range(epochs):
    total = 0.0
    for batch in torch.randperm(num_train).split(128):
        loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
    print(
        f"epoch {epoch + 1}: training loss {total / num_train:.3f} "
        f"({time.perf_counter() - start:.0f} s)"
    )
model.eval()

with torch.no_grad():
    x_test, y_test = load_fashion_mnist(split="test")
    accuracy = (model(x_test[:num_test]).argmax(-1) == y_test[:num_test]).float().mean()
    confidence = {name: model(x).softmax(-1).amax(-1) for name, x in test_sets.items()}
print(f"test accuracy (deterministic forward): {accuracy:.3f}")
for name, top in confidence.items():
    print(
        f"deterministic top probability on {name:>13}: mean {top.mean():.3f}, "
        f"above 0.9 for {(top > 0.9).float().mean():.0%} of the inputs"
    )
# sphinx_gallery_start_ignore
if not smoke:  # claim 0, full run
    assert all(confidence[name].mean() > 0.7 for name in ("MNIST", "notMNIST"))
# sphinx_gallery_end_ignore

# %%
# Monte-Carlo prediction in one line
# ----------------------------------
# ``mc_predict`` keeps the model in eval mode and samples only the dropout layers; the result
# is a frozen dataclass with the mean probabilities and the uncertainty measures, and records
# which engine ran.

predictions = {
    name: bayesdrop.mc_predict(model, x, num_samples=num_samples, seed=0)
    for name, x in test_sets.items()
}
first = predictions["Fashion-MNIST"]
print(f"engine: {first.engine} ({first.engine_reason}), S = {first.num_samples}")
assert first.engine == "cached"  # the convolutions run once, the head once per sample
for name, pred in predictions.items():
    print(
        f"{name:>14}: predictive entropy {pred.predictive_entropy.mean():.3f}, "
        f"mutual information {pred.mutual_information.mean():.4f}, "
        f"max probability {pred.probs.amax(-1).mean():.3f}"
    )
    assert bool((pred.mutual_information <= pred.predictive_entropy + 1e-6).all())  # claim 1
inside = predictions["Fashion-MNIST"]
for name in ("MNIST", "notMNIST"):
    pred = predictions[name]
    assert pred.predictive_entropy.mean() > inside.predictive_entropy.mean()  # claim 1
    assert pred.mutual_information.mean() > inside.mutual_information.mean()  # claim 1
    assert pred.probs.amax(-1).mean() < inside.probs.amax(-1).mean()  # claim 1

# %%
# Separating the foreign inputs
# -----------------------------
# An uncertainty score separates in- from out-of-distribution inputs if foreign inputs get
# higher scores; the AUROC is the probability that a random foreign input scores higher than
# a random Fashion-MNIST one (0.5: no separation, 1: perfect). The deterministic network's
# softmax entropy is the baseline.

with torch.no_grad():
    deterministic = {
        name: bayesdrop.functional.entropy(model(x).softmax(-1)) for name, x in test_sets.items()
    }


def auroc(inside: torch.Tensor, outside: torch.Tensor) -> float:
    labels = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    return roc_auc_score(labels, np.r_[inside.numpy(), outside.numpy()])


scores = {
    "softmax entropy (no MC)": lambda name: deterministic[name],
    "predictive entropy": lambda name: predictions[name].predictive_entropy,
    "mutual information": lambda name: predictions[name].mutual_information,
}
aurocs = {
    label: {ood: auroc(score("Fashion-MNIST"), score(ood)) for ood in ("MNIST", "notMNIST")}
    for label, score in scores.items()
}
for label, row in aurocs.items():
    print(f"AUROC, {label:>24}: " + ", ".join(f"{ood} {value:.3f}" for ood, value in row.items()))
# sphinx_gallery_start_ignore
if not smoke:  # claims 2 and 3, full run
    for ood in ("MNIST", "notMNIST"):
        softmax, entropy, mutual = (aurocs[label][ood] for label in scores)
        assert mutual > entropy > softmax  # claim 2
        assert 0.9 < mutual < 0.99  # claim 3
# sphinx_gallery_end_ignore

# %%
# Histograms
# ----------

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, field, title in zip(
    axes,
    ("predictive_entropy", "mutual_information"),
    ("predictive entropy (nats)", "mutual information (nats)"),
    strict=True,
):
    top = max(getattr(p, field).max().item() for p in predictions.values())
    bins = np.linspace(0.0, top, 40)
    for name, pred in predictions.items():
        ax.hist(getattr(pred, field).numpy(), bins=bins, alpha=0.5, density=True, label=name)
    ax.set_xlabel(title)
axes[0].set_ylabel("density")
axes[0].legend()
fig.tight_layout()

# %%
# Example inputs with their uncertainty
# -------------------------------------
# Each row shows the three most and the three least uncertain inputs of a test set
# (by mutual information), with the predicted Fashion-MNIST class.

classes = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat"]
classes += ["Sandal", "Shirt", "Sneaker", "Bag", "Boot"]
fig, axes = plt.subplots(3, 6, figsize=(12, 7.5))
for row, (name, pred) in enumerate(predictions.items()):
    order = pred.mutual_information.argsort()
    picks = torch.cat([order[:3], order[-3:]])
    for col, index in enumerate(picks.tolist()):
        ax = axes[row, col]
        ax.imshow(test_sets[name][index, 0].numpy(), cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        mi = pred.mutual_information[index].item()
        ax.set_title(f"{classes[pred.prediction[index]]}\nMI {mi:.3f}", fontsize=12)
    axes[row, 0].set_ylabel(name, fontsize=12)
fig.suptitle("least uncertain (left) and most uncertain (right) inputs", fontsize=13)
fig.tight_layout()

# %%
# What to take away
# -----------------
# The mutual information separates the foreign inputs best (the AUROC table above), the
# deterministic softmax entropy worst, and the MC predictive entropy lies in between. The
# predictive entropy includes the aleatoric part: the model is unsure on many Fashion-MNIST
# images too, and that part does not distinguish them
# from foreign inputs, whereas the mutual information isolates the disagreement between dropout
# masks. Dropout captures only part of the model's ignorance, so the separation is not perfect.
# With ``num_samples="auto"`` the predictor picks the number of samples from the Monte-Carlo
# standard error of the probabilities and of the mutual information.
print(f"this tutorial ran in {time.perf_counter() - start:.1f} s")
# sphinx_gallery_thumbnail_number = 1
# sphinx_gallery_tags = ["Fashion-MNIST", "MNIST", "notMNIST"]
