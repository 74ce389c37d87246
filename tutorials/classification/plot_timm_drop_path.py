"""
A timm model with drop_rate and drop_path_rate
==============================================

timm builds its models with two kinds of noise: ``drop_rate``, dropout before the classifier,
and ``drop_path_rate``, stochastic depth (``DropPath``), which drops a residual block's branch
for a whole input, with rates growing from the first block to the last. Both are switched on
in training. This recipe takes a small ConvNeXt from timm, shows that bayesdrop finds both
kinds of noise, trains the model briefly on Fashion-MNIST and compares Monte-Carlo prediction
that samples both with prediction that samples only the classifier's dropout
(:func:`bayesdrop.mc_predict`'s ``noise=`` option).

The page runs offline: the network starts from random weights, a stand-in for the hub weights
(``pretrained=True`` with hub access, marked in the code).

**What this page shows.** Each claim is checked by an ``assert`` in the code, so the page
fails to build if a claim stops holding:

1. :func:`bayesdrop.nn.stochastic_modules` finds the ConvNeXt's ``DropPath`` modules and the
   head's ``nn.Dropout``; after training, :func:`bayesdrop.check_noise` finds that the
   predictor's samples agree with the model's training-mode noise.
2. timm's ResNet applies its ``drop_rate`` with functional dropout (``F.dropout`` in
   ``forward_head``): ``stochastic_modules`` lists no dropout module for it, ``mc_predict``
   samples it all the same (a positive mutual information with ``drop_path_rate=0``), and
   ``noise=`` refuses the model with a ``BayesdropValueError``.
3. Both predictions use the ``cached`` engine, and sampling only the head is the faster of
   the two (more than five times faster in the full run).
4. At these rates the stochastic depth adds little: the mean mutual information with the head's
   dropout alone is within 20 % of that with both kinds of noise.
5. Both predictions are within two points of the deterministic forward pass in accuracy.

All claims are checked in the full run shown here (80 training steps, 20 samples) and, but for
the "five times" of claim 3, in the short smoke run that the tests use (25 steps, 10
samples). ``BAYESDROP_DATA`` names the folder holding ``fashion-mnist/``; the run time is printed
at the end.
"""

# %%
# A ConvNeXt with both kinds of noise
# -----------------------------------
# ``convnext_atto`` is a small ConvNeXt. Its stem cuts the image into
# 4x4 patches and three stages halve the resolution, so it needs at least 32x32 inputs.

import time

import matplotlib.pyplot as plt
import timm
import torch
from timm.layers import DropPath
from torch import nn
from torch.nn import functional as F

import bayesdrop
from bayesdrop.datasets import load_fashion_mnist

# sphinx_gallery_start_ignore
smoke = bayesdrop.datasets.smoke_mode()  # BAYESDROP_SMOKE=1: the short run of the tests
# sphinx_gallery_end_ignore
start = time.perf_counter()
torch.manual_seed(0)
num_steps, batch_size, num_test, num_samples = 80, 64, 500, 20
# sphinx_gallery_start_ignore
if smoke:
    num_steps, num_test, num_samples = 25, 200, 10
# sphinx_gallery_end_ignore

model = timm.create_model(
    "convnext_atto",
    pretrained=False,  # pretrained=True with hub access
    num_classes=10,
    drop_rate=0.3,
    drop_path_rate=0.1,
)

print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
noisy = bayesdrop.nn.stochastic_modules(model)
drop_paths = [(name, m.drop_prob) for name, m in noisy if isinstance(m, DropPath)]
dropouts = [(name, m.p) for name, m in noisy if isinstance(m, nn.Dropout)]
print(
    f"{len(drop_paths)} DropPath modules, rates {drop_paths[0][1]:.3f} ({drop_paths[0][0]}) "
    f"to {drop_paths[-1][1]:.3f} ({drop_paths[-1][0]})"
)
print("dropout modules:", ", ".join(f"{name} (p={p})" for name, p in dropouts))
assert drop_paths and [name for name, _ in dropouts] == ["head.drop"]  # claim 1

# %%
# When the dropout is a function: timm's ResNet
# ---------------------------------------------
# Not every timm model keeps its ``drop_rate`` in a module. timm's ResNet calls
# ``F.dropout`` in ``forward_head``, so no module stands for it. bayesdrop samples functional
# dropout all the same (:func:`bayesdrop.sampling` runs the dropout functions as in
# training), but ``noise=``, which selects noise by module name, cannot tell it apart and
# refuses such a model. A ResNet with ``drop_path_rate=0`` (untrained; a few random inputs
# suffice to show this) has functional dropout as its only noise:

resnet = timm.create_model("resnet18", pretrained=False, num_classes=10, drop_rate=0.3).eval()
print("stochastic modules of timm's resnet18:", bayesdrop.nn.stochastic_modules(resnet))
inputs = torch.randn(4, 3, 32, 32)
functional = bayesdrop.mc_predict(resnet, inputs, num_samples=10, seed=0)
print(f"mean mutual information {functional.mutual_information.mean():.2e}")
refusal = None
try:
    bayesdrop.mc_predict(resnet, inputs, num_samples=10, noise="fc")
except bayesdrop.BayesdropValueError as error:
    refusal = error
    print(f"noise='fc': {type(error).__name__}: {error}")
assert bayesdrop.nn.stochastic_modules(resnet) == []  # claim 2
assert functional.mutual_information.mean() > 0  # claim 2
assert refusal is not None  # claim 2

# %%
# With such a model, keep ``drop_rate=0`` and give it a dropout head instead
# (``resnet.fc = nn.Sequential(nn.Dropout(p), nn.Linear(512, 10))``, as in the torchvision
# recipe). The ConvNeXt needs nothing of the kind: its head's dropout is the module
# ``head.drop``.
#
# Training, briefly
# -----------------
# Fashion-MNIST's grey 28x28 images are padded to 32x32 and repeated over three channels.
# A short AdamW run with a one-cycle learning rate; dropout and stochastic depth are on in
# ``model.train()`` as timm intends.

x_train, y_train = load_fashion_mnist(split="train")
x_test, y_test = load_fashion_mnist(split="test")


def to_rgb32(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) grey images -> (N, 3, 32, 32)."""
    return F.pad(images, (2, 2, 2, 2)).expand(-1, 3, -1, -1)


x_test, y_test = to_rgb32(x_test[:num_test]), y_test[:num_test]
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
    if step % 20 == 0 or step == num_steps:
        print(f"step {step:3d}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)")
model.eval()

with torch.no_grad():
    deterministic_accuracy = (model(x_test).argmax(-1) == y_test).float().mean().item()
print(f"deterministic forward pass: test accuracy {deterministic_accuracy:.3f}")

# %%
# Does the predictor sample what training samples?
# ------------------------------------------------
# :func:`bayesdrop.check_noise` draws samples of a few inputs with the engine ``mc_predict``
# would use and in training mode (normalisation layers kept in eval), and compares their
# means and spread.

check = bayesdrop.check_noise(model, x_test)
print(
    f"check_noise: ok={check.ok}, engine {check.engine!r}, spread {check.sampled_spread:.3g} "
    f"sampled vs {check.training_spread:.3g} in training mode ({check.num_samples} samples)"
)
assert check.ok  # claim 1

# %%
# Sampling both kinds of noise, or only the head's dropout
# --------------------------------------------------------
# By default ``mc_predict`` samples every noise module. ``noise=r"^head\."`` samples only
# those whose name the regular expression finds; the others are off for the call (at their
# mean, as in eval mode). That is a different, narrower predictive distribution, not an
# estimate of the full one; what it buys is speed, as the cached engine then runs everything
# before the head once.

results = {}
for label, noise in (("DropPath + head dropout", None), ("head dropout only", r"^head\.")):
    tic = time.perf_counter()
    pred = bayesdrop.mc_predict(model, x_test, num_samples=num_samples, seed=0, noise=noise)
    seconds = time.perf_counter() - tic
    accuracy = (pred.prediction == y_test).float().mean().item()
    results[label] = (pred, seconds, accuracy)
    print(f"{label}: engine {pred.engine!r} ({pred.engine_reason})")
    print(
        f"    accuracy {accuracy:.3f}, mean mutual information "
        f"{pred.mutual_information.mean():.4f}, {seconds:.2f} s per call "
        f"({num_test} images, {pred.num_samples} samples)"
    )

(both, both_s, both_acc), (head, head_s, head_acc) = results.values()
ratio = (head.mutual_information.mean() / both.mutual_information.mean()).item()
print(f"head only: {both_s / head_s:.1f} times faster, {ratio:.2f} times the mean MI")
assert both.engine == head.engine == "cached"  # claim 3
assert head_s < both_s  # claim 3
# sphinx_gallery_start_ignore
if not smoke:
    assert both_s > 5 * head_s  # claim 3, full run
# sphinx_gallery_end_ignore
assert 0.8 < ratio < 1.25  # claim 4
assert abs(both_acc - deterministic_accuracy) <= 0.02  # claim 5
assert abs(head_acc - deterministic_accuracy) <= 0.02  # claim 5

fig, ax = plt.subplots(figsize=(5.2, 4.4))
top = both.mutual_information.max().item()
ax.scatter(both.mutual_information, head.mutual_information, s=8, alpha=0.5)
ax.plot([0, top], [0, top], color="grey", linewidth=1, label="equal")
ax.set_xlabel("mutual information, DropPath + head dropout (nats)", fontsize=11)
ax.set_ylabel("mutual information, head dropout only (nats)", fontsize=11)
ax.set_title("Epistemic uncertainty of each test image", fontsize=12)
ax.legend()
fig.tight_layout()

# %%
# Where to go next
# ----------------
# * The torchvision recipe in this group: a model without dropout given a dropout head.
# * :doc:`/user_guide/library_models`: timm, torchvision and Hugging Face models, and what
#   each engine can do with them.

print(f"this tutorial ran in {time.perf_counter() - start:.1f} s")
plt.show()
# sphinx_gallery_tags = ["Fashion-MNIST"]
