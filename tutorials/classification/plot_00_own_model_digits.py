"""
Your own model in five minutes
==============================

You have a PyTorch classifier with dropout and want to know when to trust its predictions.
This tutorial takes an ordinary ``nn.Sequential`` with ``nn.Dropout`` (no bayesdrop layers),
trains it briefly on scikit-learn's handwritten digits (they ship with scikit-learn, nothing to
download), and then, with one call to :func:`bayesdrop.mc_predict`, gets the Monte-Carlo
dropout predictive distribution and its uncertainty: the predictive entropy (total) and the
mutual information (the part due to the unknown weights). We then look at whether the
uncertainty is higher where the model is wrong, and read a calibration report.

**What this page shows.** Each claim below is checked by an ``assert`` in the code, so the
page fails to build if a claim stops holding:

1. Monte-Carlo prediction does not cost accuracy: MC accuracy is within one point of the
   deterministic forward pass.
2. On the misclassified test digits, both the predictive entropy and the mutual information
   are on average more than twice as large as on the correctly classified ones (more than
   five times in the full run).
3. The predictive entropy flags the mistakes: AUROC above 0.85 for telling wrong from right
   predictions.
4. Keeping only the 80 % of test digits with the lowest predictive entropy raises the
   accuracy above the accuracy on all of them.
5. The mutual information never exceeds the predictive entropy (it is one of its two parts).
6. The MC predictive is well calibrated: expected calibration error below 0.03.

Claims 1-5 are checked both in the full run shown here (60 epochs) and in the short smoke run
(``BAYESDROP_SMOKE=1``, 10 epochs) that the tests use; the "more than five times" of claim 2
and claim 6 are checked in the full run only (after 10 epochs the network is still
under-confident). The full run takes a few seconds on one CPU core; the time is printed at the
end.
"""

# %%
# Data and an ordinary dropout network
# ------------------------------------
# 1,797 grey 8x8 images of the digits 0-9, split 60/40 into training and test points. The
# network is what you would write without bayesdrop: linear layers, ReLU, ``nn.Dropout``.

import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import bayesdrop
from bayesdrop.datasets import smoke_mode

start = time.perf_counter()
torch.manual_seed(0)
smoke = smoke_mode()
epochs = 10 if smoke else 60

digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # pixel values 0..16 -> [0, 1]
y = torch.tensor(digits.target)
idx_train, idx_test = train_test_split(
    np.arange(len(y)), test_size=0.4, random_state=0, stratify=digits.target
)
x_train, y_train, x_test, y_test = x[idx_train], y[idx_train], x[idx_test], y[idx_test]
print(f"{len(x_train)} training and {len(x_test)} test digits, {epochs} epochs")

model = nn.Sequential(
    nn.Linear(64, 128),
    nn.ReLU(),
    nn.Dropout(0.25),
    nn.Linear(128, 128),
    nn.ReLU(),
    nn.Dropout(0.25),
    nn.Linear(128, 10),
)

# %%
# Training, as usual
# ------------------
# Plain cross-entropy with Adam and a little weight decay (the weight decay is what turns
# dropout training into approximate variational inference; see
# :doc:`/theory/dropout_as_vi`). Nothing here is specific to bayesdrop.

optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
model.train()
for epoch in range(1, epochs + 1):
    total = 0.0
    for batch in torch.randperm(len(x_train)).split(64):
        loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
    if epoch == 1 or epoch % 10 == 0:
        elapsed = time.perf_counter() - start
        print(f"epoch {epoch:3d}: training loss {total / len(x_train):.4f} ({elapsed:.1f} s)")
model.eval()

with torch.no_grad():
    deterministic_probs = model(x_test).softmax(-1)
deterministic_accuracy = (deterministic_probs.argmax(-1) == y_test).float().mean().item()
print(f"deterministic forward pass: test accuracy {deterministic_accuracy:.4f}")

# %%
# Monte-Carlo dropout in one line
# -------------------------------
# :func:`bayesdrop.mc_predict` leaves the model in eval mode and switches on only its dropout
# layers (BatchNorm, had the model any, would keep its running statistics), draws
# ``num_samples`` dropout masks, and averages the probabilities. ``seed`` makes the result
# reproducible without touching the global random state. The result is a frozen dataclass.

pred = bayesdrop.mc_predict(model, x_test, num_samples=100, seed=0)
print(f"engine {pred.engine!r} ({pred.engine_reason}), {pred.num_samples} samples")

correct = pred.prediction == y_test
mc_accuracy = correct.float().mean().item()
print(f"MC dropout: test accuracy {mc_accuracy:.4f} ({int((~correct).sum())} mistakes)")
assert abs(mc_accuracy - deterministic_accuracy) <= 0.01  # claim 1

# %%
# Is the model more uncertain where it is wrong?
# ----------------------------------------------
# The predictive entropy :math:`\mathcal H[\bar p]` measures all uncertainty; the mutual
# information :math:`I` only the disagreement between dropout masks (epistemic uncertainty,
# BALD). Both are in nats; with 10 classes the entropy is at most :math:`\log 10 \approx 2.3`.

entropy, mutual_info = pred.predictive_entropy, pred.mutual_information
for name, values in (("predictive entropy", entropy), ("mutual information", mutual_info)):
    right, wrong = values[correct].mean().item(), values[~correct].mean().item()
    print(f"{name:>18}: {right:.4f} on correct, {wrong:.4f} on wrong ({wrong / right:.1f}x)")
    assert wrong > 2 * right  # claim 2
    assert smoke or wrong > 5 * right  # claim 2, full run
assert bool((mutual_info <= entropy + 1e-6).all())  # claim 5

fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
for ax, values, label in zip(
    axes,
    (entropy, mutual_info),
    ("predictive entropy (nats)", "mutual information (nats)"),
    strict=True,
):
    bins = np.linspace(0.0, values.max().item(), 30)
    ax.hist(values[correct].numpy(), bins=bins, density=True, alpha=0.6, label="correct")
    ax.hist(values[~correct].numpy(), bins=bins, density=True, alpha=0.6, label="wrong")
    ax.set_xlabel(label)
axes[0].set_ylabel("density")
axes[0].legend()
fig.suptitle("Uncertainty of correct and wrong test predictions")
fig.tight_layout()

# %%
# The most uncertain test digits
# ------------------------------
# Often genuinely ambiguous writing. Each title: the predicted class, its mean probability,
# and the true label.

order = entropy.argsort(descending=True)[:8]
fig, axes = plt.subplots(2, 4, figsize=(7, 4.2))
for ax, i in zip(axes.flat, order.tolist(), strict=True):
    ax.imshow(x_test[i].reshape(8, 8).numpy(), cmap="gray_r")
    guess, p_max = int(pred.prediction[i]), pred.probs[i].max().item()
    ax.set_title(f"{guess} (p={p_max:.2f}), true {int(y_test[i])}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()

# %%
# A calibration report
# --------------------
# :class:`bayesdrop.CalibrationReport` takes the prediction result and the labels. It reports
# accuracy, expected and maximum calibration error (ECE, MCE; 15 equal-width bins), Brier score
# and negative log-likelihood, and how well the uncertainty flags mistakes (AUROC, AUPR, false
# positive rate at 95 % true positives). ``report.to_html("report.html")`` writes the same
# numbers with reliability diagrams into one file.

report = bayesdrop.CalibrationReport.from_predictions(pred, y_test, name="dropout MLP on digits")
print(report.summary())
assert report.misclassification is not None
assert report.misclassification.auroc > 0.85  # claim 3
assert smoke or report.metrics.ece < 0.03  # claim 6, full run

# %%
# Referral: keep only the confident predictions
# ----------------------------------------------
# A practical use of the uncertainty: hand the 20 % most uncertain inputs to a human and
# predict the rest.

keep = entropy.argsort()[: int(0.8 * len(entropy))]
kept_accuracy = correct[keep].float().mean().item()
print(
    f"accuracy on all test digits {mc_accuracy:.4f}, on the 80 % most certain {kept_accuracy:.4f}"
)
assert kept_accuracy > mc_accuracy  # claim 4

# %%
# Where to go next
# ----------------
# * :doc:`/user_guide/own_model`: ``sampling`` vs ``convert``, the engines, memory, data
#   loaders.
# * :doc:`/user_guide/uncertainty_measures`: which measure for which job, and how many samples.
# * The other tutorials: out-of-distribution inputs, calibration and temperature scaling,
#   learned dropout rates, regression, recurrent networks.

print(f"this tutorial ran in {time.perf_counter() - start:.1f} s")
plt.show()
