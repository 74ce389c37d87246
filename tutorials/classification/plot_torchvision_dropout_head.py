"""
A torchvision classifier given a dropout head
=============================================

You bring a pretrained image model, such as torchvision's ResNet-18, and want Monte-Carlo
dropout uncertainty from it. ResNet-18 has no dropout, so there is nothing to sample: this
recipe shows what :func:`bayesdrop.mc_predict` says about such a model, gives the model a
dropout head (``nn.Dropout`` before the last linear layer), fine-tunes it briefly on
Fashion-MNIST and predicts with :class:`bayesdrop.MCPredictor`. Because the dropout sits only
in the head, bayesdrop's ``cached`` engine runs the backbone once per input and only the head
once per sample: the backbone's cost is paid once, not once per sample.

The page runs offline: the network starts from random weights, a stand-in for the hub weights.
With internet access, the one line that changes is marked in the code
(``weights=ResNet18_Weights.DEFAULT``).

**What this page shows.** Each claim is checked by an ``assert`` in the code, so the page
fails to build if a claim stops holding:

1. ``mc_predict`` refuses the model without dropout with a
   :class:`bayesdrop.BayesdropValueError` (also a ``ValueError``) whose message says what was
   looked for and how to add dropout.
2. With the dropout head the automatic engine choice is ``cached``: the backbone's first
   convolution sees each input once, the head at least once per input and sample, whereas the
   ``batched`` engine runs the backbone on every sample; the cached prediction is the faster.
3. The Monte-Carlo accuracy is within two points of the deterministic forward pass.
4. The uncertainty flags mistakes: as a score for "this prediction is wrong", the predictive
   entropy has an AUROC above 0.7 and the mutual information one above 0.6; the predictive
   entropy is the better of the two. The mutual information never exceeds the predictive
   entropy.
5. Handwritten digits (MNIST), which the model never saw, get a higher mean predictive entropy
   and a higher mean mutual information than the Fashion-MNIST test images.

All claims are checked in the full run shown here (70 training steps, 50 samples); the short
smoke run that the tests use (20 steps, 20 samples) checks all but the mutual information part
of claim 5. ``BAYESDROP_DATA`` names the folder holding ``fashion-mnist/`` and ``mnist/``; the run
time is printed at the end.
"""

# %%
# A pretrained model without dropout
# ----------------------------------
# ``weights=None`` gives random weights and runs offline; ``num_classes=10`` sizes the last
# layer for Fashion-MNIST's ten classes.

import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torchvision
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import bayesdrop
from bayesdrop.datasets import load_fashion_mnist, load_mnist

# sphinx_gallery_start_ignore
smoke = bayesdrop.datasets.smoke_mode()  # BAYESDROP_SMOKE=1: the short run of the tests
# sphinx_gallery_end_ignore
start = time.perf_counter()
torch.manual_seed(0)
num_steps, batch_size, num_test, num_samples = 70, 64, 1000, 50
# sphinx_gallery_start_ignore
if smoke:
    num_steps, num_test, num_samples = 20, 400, 20
# sphinx_gallery_end_ignore

model = torchvision.models.resnet18(weights=None, num_classes=10)
# pretrained: resnet18(weights=torchvision.models.ResNet18_Weights.DEFAULT), with 1,000
# classes, whose last layer the dropout head below replaces anyway
model.eval()

refused = None
try:
    bayesdrop.mc_predict(model, torch.randn(2, 3, 32, 32))
except bayesdrop.BayesdropValueError as error:
    print(f"{type(error).__name__}: {error}")
    refused = error
assert isinstance(refused, ValueError) and "at least one dropout" in str(refused)  # claim 1

# %%
# A dropout head
# --------------
# ResNet-18's head is the linear layer ``model.fc`` after global average pooling (512
# features). Putting ``nn.Dropout`` in front of it gives the model a noise module to sample;
# the backbone stays as it was.

model.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, 10))
print("noise modules:", [name for name, _ in bayesdrop.nn.stochastic_modules(model)])

# %%
# Fashion-MNIST as the network expects it
# ---------------------------------------
# The images are grey 28x28; the network takes three colour channels. ``to_rgb32`` pads them
# to 32x32, repeats the grey channel three times and normalises with the ImageNet mean and
# standard deviation that the pretrained weights were trained with.

x_train, y_train = load_fashion_mnist(split="train")
x_test, y_test = load_fashion_mnist(split="test")
x_test, y_test = x_test[:num_test], y_test[:num_test]
x_digits = load_mnist(split="test")[0][:num_test]

mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_rgb32(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) in [0, 1] -> (N, 3, 32, 32), normalised as for ImageNet."""
    return (F.pad(images, (2, 2, 2, 2)).expand(-1, 3, -1, -1) - mean) / std


print(f"{num_steps * batch_size} training images, {num_test} test images of each set")

# %%
# Fine-tuning, briefly
# --------------------
# A short run of AdamW with a one-cycle learning rate over ``num_steps`` batches of 64 images.
# Dropout trains as usual in ``model.train()``; nothing here is specific to bayesdrop.

optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=num_steps)
order = torch.randperm(len(x_train))[: num_steps * batch_size].view(num_steps, batch_size)
model.train()
for step, batch in enumerate(order, 1):
    loss = F.cross_entropy(model(to_rgb32(x_train[batch])), y_train[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    if step % 10 == 0:
        print(f"step {step:3d}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)")
model.eval()

with torch.no_grad():
    deterministic_accuracy = (model(to_rgb32(x_test)).argmax(-1) == y_test).float().mean().item()
print(f"deterministic forward pass: test accuracy {deterministic_accuracy:.3f}")

# %%
# Which engine, and why
# ---------------------
# ``pred.engine`` says which engine ran and ``pred.engine_reason`` why: the model traces
# (torch.fx), so the automatic choice is ``cached``, which runs the part of the graph that no
# dropout feeds once and repeats only the rest for the samples. To see it, forward hooks count
# the rows that reach the first convolution and the head's linear layer, for the cached engine
# and for the ``batched`` engine (the whole model on the batch repeated ``k`` times per pass),
# on 32 test images with 20 samples.

rows = {"backbone (conv1)": 0, "head (fc[1])": 0}


def counter(key: str):
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        rows[key] += len(output)

    return hook


hooks = [
    model.conv1.register_forward_hook(counter("backbone (conv1)")),
    model.fc[1].register_forward_hook(counter("head (fc[1])")),
]
probe, probe_samples = to_rgb32(x_test[:32]), 20
seen = {}
for engine in ("auto", "batched"):
    rows.update(dict.fromkeys(rows, 0))
    tic = time.perf_counter()
    pred = bayesdrop.mc_predict(model, probe, num_samples=probe_samples, seed=0, engine=engine)
    seconds = time.perf_counter() - tic
    seen[pred.engine] = dict(rows, seconds=seconds)
    counts = ", ".join(f"{key} {value} rows" for key, value in rows.items())
    print(f"engine {pred.engine!r} ({pred.engine_reason}): {counts}, {seconds:.2f} s")
for hook in hooks:
    hook.remove()

n_rows = len(probe) * probe_samples
assert set(seen) == {"cached", "batched"}  # claim 2: auto chose cached
assert seen["cached"]["backbone (conv1)"] == len(probe)  # claim 2: the backbone once per input
assert seen["cached"]["head (fc[1])"] >= n_rows  # claim 2: the head once per sample
assert seen["batched"]["backbone (conv1)"] >= n_rows  # claim 2
assert seen["cached"]["seconds"] < seen["batched"]["seconds"]  # claim 2

# %%
# Monte-Carlo prediction over a data loader
# -----------------------------------------
# :class:`bayesdrop.MCPredictor` takes the options once and streams a ``DataLoader``; the
# model is traced once for the cached engine, and the labels of the batches come back as
# ``pred.target``. The model stays in eval mode: only the dropout samples, the BatchNorm
# layers keep their running statistics.

predictor = bayesdrop.MCPredictor(model, num_samples=num_samples, seed=0, progress=False)
running_mean = model.bn1.running_mean.clone()
tic = time.perf_counter()
pred = predictor.predict(DataLoader(TensorDataset(to_rgb32(x_test), y_test), batch_size=250))
print(
    f"engine {pred.engine!r} ({pred.engine_reason}), {pred.num_samples} samples, "
    f"{time.perf_counter() - tic:.1f} s for {num_test} images"
)
correct = pred.prediction == pred.target
mc_accuracy = correct.float().mean().item()
print(f"MC dropout: test accuracy {mc_accuracy:.3f} (deterministic {deterministic_accuracy:.3f})")
assert pred.engine == "cached" and not model.training
assert torch.equal(model.bn1.running_mean, running_mean)  # BatchNorm statistics untouched
assert abs(mc_accuracy - deterministic_accuracy) <= 0.02  # claim 3

# %%
# Does the uncertainty flag the mistakes?
# ---------------------------------------
# The AUROC of a score for "this prediction is wrong" is the probability that a random
# misclassified image scores higher than a random correctly classified one (0.5: no better
# than chance, 1: perfect). The predictive entropy measures all uncertainty, the mutual
# information only the disagreement between dropout masks.

entropy, mutual_info = pred.predictive_entropy, pred.mutual_information
wrong = (~correct).numpy()
aurocs = {
    "predictive entropy": roc_auc_score(wrong, entropy.numpy()),
    "mutual information": roc_auc_score(wrong, mutual_info.numpy()),
}
for name, value in aurocs.items():
    print(f"misclassification AUROC of the {name}: {value:.3f} ({int(wrong.sum())} mistakes)")
assert aurocs["predictive entropy"] > 0.7 and aurocs["mutual information"] > 0.6  # claim 4
assert aurocs["predictive entropy"] > aurocs["mutual information"]  # claim 4
assert bool((mutual_info <= entropy + 1e-6).all())  # claim 4

# %%
# Handwritten digits, never seen in training
# ------------------------------------------
# The same predictor on MNIST test digits, prepared the same way.

digits = predictor.predict(DataLoader(TensorDataset(to_rgb32(x_digits)), batch_size=250))
for name, p in (("Fashion-MNIST", pred), ("MNIST", digits)):
    print(
        f"{name:>13}: mean predictive entropy {p.predictive_entropy.mean():.3f}, "
        f"mean mutual information {p.mutual_information.mean():.4f}"
    )
assert digits.predictive_entropy.mean() > pred.predictive_entropy.mean()  # claim 5
# sphinx_gallery_start_ignore
if not smoke:
    assert digits.mutual_information.mean() > pred.mutual_information.mean()  # claim 5
# sphinx_gallery_end_ignore

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for ax, field, label in zip(
    axes,
    ("predictive_entropy", "mutual_information"),
    ("predictive entropy (nats)", "mutual information (nats)"),
    strict=True,
):
    top = max(getattr(p, field).max().item() for p in (pred, digits))
    bins = np.linspace(0.0, top, 30)
    values = getattr(pred, field)
    ax.hist(values[correct].numpy(), bins=bins, density=True, alpha=0.5, label="Fashion, right")
    ax.hist(values[~correct].numpy(), bins=bins, density=True, alpha=0.5, label="Fashion, wrong")
    ax.hist(getattr(digits, field).numpy(), bins=bins, density=True, alpha=0.5, label="MNIST")
    ax.set_xlabel(label, fontsize=11)
    ax.set_title(label.split(" (")[0], fontsize=12)
axes[0].set_ylabel("density", fontsize=11)
axes[0].legend()
fig.tight_layout()

# %%
# Where to go next
# ----------------
# * :doc:`/user_guide/own_model`: the engines, memory, data loaders.
# * The timm recipe in this group: models whose stochastic depth (``DropPath``) is sampled
#   too, and sampling only part of the noise with ``noise=``.

print(f"this tutorial ran in {time.perf_counter() - start:.1f} s")
plt.show()
# sphinx_gallery_tags = ["Fashion-MNIST", "MNIST"]
