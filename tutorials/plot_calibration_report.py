"""
Calibration report of a classifier, and temperature scaling
===========================================================

A classifier is *calibrated* when its confidence matches its accuracy: of all the predictions
made with confidence 0.8, about 80 % should be right. This tutorial trains a small network on
scikit-learn's digits until it is over-confident, reads its calibration report and reliability
diagram, and repairs it with temperature scaling.
"""

# %%
# An over-confident network
# -------------------------
# A plain MLP trained on labels of which 30 % were replaced at random memorises the noise: its
# training loss keeps falling, its logits grow apart, and on clean test labels it ends up far
# more confident than accurate.
import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import bayesdrop
from bayesdrop.calibration import CalibrationReport, ReliabilityDisplay, TemperatureScaling
from bayesdrop.datasets import smoke_mode

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
for _ in range(300 if smoke_mode() else 400):
    loss = nn.functional.cross_entropy(model(x[idx_train]), y_train)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

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

for label, probs in (("before", probs_test), ("after", probs_scaled)):
    ece = bayesdrop.expected_calibration_error(probs, y_test).item()
    nll = bayesdrop.calibration.negative_log_likelihood(probs, y_test).item()
    acc = bayesdrop.calibration.accuracy(probs, y_test).item()
    print(f"{label:>6}: accuracy {acc:.3f}  ECE {ece:.4f}  NLL {nll:.4f}")

# %%
# Before and after, side by side: the bars move up to the diagonal.
fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
ReliabilityDisplay.from_predictions(probs_test, y_test, name="before").plot(axes[0])
ReliabilityDisplay.from_predictions(probs_scaled, y_test, name="after").plot(axes[1])
axes[1].set_ylabel("")
fig.tight_layout()
