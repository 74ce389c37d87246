"""
Calibration report of a classifier, and temperature scaling
===========================================================

A classifier is *calibrated* when its confidence matches its accuracy: of all the predictions
made with confidence 0.8, about 80 % should be right. This tutorial trains a small network on
scikit-learn's digits until it is over-confident, reads its calibration report and reliability
diagram, and repairs it with temperature scaling.

**What this page shows.** Each claim is checked by an ``assert`` in the code, so the page
fails to build if a claim stops holding:

1. The network memorises its noisy training labels (final training loss below 0.1) and is
   over-confident on the clean test labels: its mean confidence exceeds its accuracy by more
   than 0.1, and its ECE is above 0.1.
2. Most test predictions lie in the most confident bins (confidence of at least 0.8).
3. Temperature scaling, fitted on the validation split, finds :math:`T > 1`, leaves the
   accuracy unchanged, and lowers both the ECE and the NLL on the test split.
4. Before scaling at most one occupied bin lies above the diagonal; after it, more do (the
   scaled predictions are under-confident in those bins). The largest gap of one bin (the MCE)
   is printed before and after: it comes from a few sparsely filled bins and is not what the
   fit minimises.

The claims are checked in the full run shown here and in the smoke run
(``BAYESDROP_SMOKE=1``) that the tests use. The run time is printed at the end (a few seconds).
"""

# %%
# An over-confident network
# -------------------------
# A plain MLP trained on labels of which 30 % were replaced at random memorises the noise: its
# training loss keeps falling, its logits grow apart, and on clean test labels it ends up far
# more confident than accurate.
import time

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import bayesdrop
from bayesdrop.calibration import (
    CalibrationReport,
    ReliabilityDisplay,
    TemperatureScaling,
    bin_statistics,
)

start = time.perf_counter()
torch.manual_seed(0)
digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16
y = torch.tensor(digits.target)
idx_train, idx_rest = train_test_split(range(len(y)), test_size=0.5, random_state=0, stratify=y)
idx_val, idx_test = train_test_split(idx_rest, test_size=0.5, random_state=0, stratify=y[idx_rest])

y_train = y[idx_train].clone()
noisy = torch.rand(len(y_train)) < 0.3
y_train[noisy] = torch.randint(0, 10, (int(noisy.sum()),))

model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
steps = 400
# sphinx_gallery_start_ignore
from bayesdrop.datasets import smoke_mode

if smoke_mode():
    steps = 300  # the tests' short run
# sphinx_gallery_end_ignore
for step in range(steps):
    loss = nn.functional.cross_entropy(model(x[idx_train]), y_train)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if (step + 1) % 100 == 0:
        print(f"step {step + 1}: training loss {loss.item():.3f}")
assert loss.item() < 0.1  # claim 1: the noisy labels are memorised

with torch.no_grad():
    logits_val, logits_test = model(x[idx_val]), model(x[idx_test])
probs_test, y_test = logits_test.softmax(-1), y[idx_test]

# %%
# The report
# ----------
# :class:`~bayesdrop.calibration.CalibrationReport` collects accuracy, the expected and maximum
# calibration errors (15 equal-width bins), the Brier score, the negative log-likelihood and how
# well the predictive entropy flags the misclassified points.
report = CalibrationReport.from_predictions(probs_test, y_test, name="MLP on digits")
print(report.summary())
confidence = probs_test.amax(-1)
accuracy_test = (probs_test.argmax(-1) == y_test).float().mean().item()
print(f"mean confidence {confidence.mean():.3f}, accuracy {accuracy_test:.3f}")
print(f"share of predictions with confidence >= 0.8: {(confidence >= 0.8).float().mean():.2f}")
assert confidence.mean().item() > accuracy_test + 0.1 and report.metrics.ece > 0.1  # claim 1
assert (confidence >= 0.8).float().mean() > 0.5  # claim 2

# %%
# ``report.to_html("report.html")`` writes the same numbers and four diagrams into one
# self-contained page, and ``bayesdrop report predictions.npz`` does it from the command line.
#
# Reading the reliability diagram
# -------------------------------
# Each bar is a confidence bin: its height is the accuracy of the predictions in it, the
# hatched part the gap to the mean confidence of the bin. Bars below the diagonal mean
# over-confidence. The histogram beneath shows where the predictions lie: most of them sit in the
# last bins, so the ECE, a weighted mean of the gaps, is dominated by those bins, while the MCE
# (the largest gap) can come from a nearly empty bin.
fig, (ax, hist_ax) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, height_ratios=[3, 1])
ReliabilityDisplay.from_predictions(probs_test, y_test, name="before").plot(ax, hist_ax=hist_ax)
fig.tight_layout()

# %%
# Temperature scaling
# -------------------
# Temperature scaling divides the logits by one number :math:`T`, fitted by minimising the NLL on
# held-out data (never on the test set). :math:`T > 1` softens the predictions; the predicted
# class, hence the accuracy, does not change. (netcal reports :math:`1/T`.)
scaler = TemperatureScaling().fit(logits_val, y[idx_val])
print(f"fitted temperature T = {scaler.temperature_:.2f}")
probs_scaled = scaler.transform(logits_test)

scores = {}
for label, probs in (("before", probs_test), ("after", probs_scaled)):
    ece = bayesdrop.expected_calibration_error(probs, y_test).item()
    nll = bayesdrop.calibration.negative_log_likelihood(probs, y_test).item()
    acc = bayesdrop.calibration.accuracy(probs, y_test).item()
    scores[label] = (acc, ece, nll)
    print(f"{label:>6}: accuracy {acc:.3f}  ECE {ece:.4f}  NLL {nll:.4f}")
(acc_before, ece_before, nll_before), (acc_after, ece_after, nll_after) = scores.values()
assert scaler.temperature_ > 1 and acc_after == acc_before  # claim 3
assert ece_after < ece_before and nll_after < nll_before  # claim 3

# %%
# Bin by bin
# ----------
# The ECE is a weighted mean of the gaps; bin by bin, the picture is mixed. Before scaling
# (almost) every occupied bin lies below the diagonal (over-confident); temperature scaling
# lifts the well-populated confident bins towards it, but a single :math:`T` overshoots in
# others, which end *above* the diagonal (under-confident). The largest gap of any one bin (the
# MCE, often from a bin with a handful of points) is not what :math:`T` minimises: compare the
# two values printed below.
for label, probs in (("before", probs_test), ("after", probs_scaled)):
    stats = bin_statistics(probs.amax(-1), probs.argmax(-1) == y_test)
    occupied = stats.counts > 0
    gap = (stats.mean_accuracy() - stats.mean_confidence())[occupied]
    mce = bayesdrop.calibration.expected_calibration_error(probs, y_test, norm="max").item()
    print(
        f"{label:>6}: {int(occupied.sum())} occupied bins, {int((gap > 0).sum())} above the "
        f"diagonal, {int((gap < 0).sum())} below; MCE {mce:.3f}"
    )
    scores[label] += (int((gap > 0).sum()),)
assert scores["before"][3] <= 1 and scores["after"][3] > scores["before"][3]  # claim 4

# %%
# Before and after, side by side: the confident bins move towards the diagonal, some past it.
fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
ReliabilityDisplay.from_predictions(probs_test, y_test, name="before").plot(axes[0])
ReliabilityDisplay.from_predictions(probs_scaled, y_test, name="after").plot(axes[1])
axes[1].set_ylabel("")
fig.tight_layout()
print(f"this tutorial ran in {time.perf_counter() - start:.1f} s")
# sphinx_gallery_thumbnail_number = 2
# sphinx_gallery_tags = ["digits (scikit-learn)"]
