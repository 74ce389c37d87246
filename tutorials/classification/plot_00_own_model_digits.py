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
7. The predictive entropy and one minus the confidence flag the mistakes better (higher
   AUROC) than the mutual information.
8. The mean mutual information rises with the number of samples, and changes less from 100 to
   1,000 samples than from 10 to 100.
9. ``num_samples="auto"`` runs to ``max_samples`` at the default tolerance on this test set,
   and stops earlier with ``tolerance=0.02``.
10. The deterministic network is about as confident as it is accurate (within one point), the
    MC predictive is under-confident, and its NLL is the higher of the two.

Claims 1-5 and 7-9 are checked both in the full run shown here (60 epochs) and in the short
smoke run (``BAYESDROP_SMOKE=1``, 10 epochs) that the tests use; the "more than five times" of
claim 2 and claims 6 and 10 are checked in the full run only (after 10 epochs the network is
still under-confident). The full run takes under half a minute on one CPU core; the time is
printed at the end.
"""

# %%
# Data and an ordinary dropout network
# ------------------------------------
# 1,797 grey 8x8 images of the digits 0-9, split 60/40 into training and test points. The
# network is what you would write without bayesdrop: linear layers, ReLU, ``nn.Dropout``.

import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import bayesdrop
from bayesdrop.calibration import misclassification_detection

start = time.perf_counter()
torch.manual_seed(0)
epochs = 60
# sphinx_gallery_start_ignore
# The tests' short run (BAYESDROP_SMOKE=1) trains for 10 epochs.
from bayesdrop.datasets import smoke_mode

smoke = smoke_mode()
if smoke:
    epochs = 10
# sphinx_gallery_end_ignore

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
deterministic_confidence = deterministic_probs.max(-1).values.mean().item()
deterministic_nll = nn.functional.nll_loss(deterministic_probs.log(), y_test).item()
print(
    f"deterministic forward pass: test accuracy {deterministic_accuracy:.4f}, "
    f"mean confidence {deterministic_confidence:.4f}, NLL {deterministic_nll:.4f}"
)

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
    # sphinx_gallery_start_ignore
    assert smoke or wrong > 5 * right  # claim 2, full run
    # sphinx_gallery_end_ignore
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
# sphinx_gallery_start_ignore
assert smoke or report.metrics.ece < 0.03  # claim 6, full run
# sphinx_gallery_end_ignore

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
# Which score flags the mistakes?
# -------------------------------
# The report above ranks the test digits by the predictive entropy. Any per-input score can be
# judged the same way, with :func:`bayesdrop.calibration.misclassification_detection`: the
# AUROC of telling the wrong predictions from the right ones. Mistakes happen on ambiguous
# digits as much as on unfamiliar ones, so the scores of *total* uncertainty (the predictive
# entropy, one minus the confidence) flag them better than the mutual information, which only
# sees the disagreement between masks (claim 7). The variation ratio counts votes, in steps of
# :math:`1/S`.

scores = {
    "predictive entropy": pred.predictive_entropy,
    "1 - confidence": 1 - pred.probs.max(-1).values,
    "mutual information": pred.mutual_information,
    "variation ratio": pred.variation_ratio,
}
auroc = {
    name: misclassification_detection(pred.probs, y_test, score).auroc
    for name, score in scores.items()
}
for name, value in auroc.items():
    print(f"misclassification AUROC, {name:>18}: {value:.3f}")
assert auroc["predictive entropy"] > auroc["mutual information"]  # claim 7
assert auroc["1 - confidence"] > auroc["mutual information"]  # claim 7

# %%
# How many samples?
# -----------------
# The mutual information is biased low at a small number of samples :math:`S` (the entropy
# of an average of few samples is on average below that of the true mean): its mean over the
# test digits rises with :math:`S`, and from :math:`S = 100` on it changes less than it did
# between 10 and 100 samples (claim 8). ``num_samples="auto"`` samples until the standard
# error of every mean probability and every mutual information is at most ``tolerance``
# (default 0.01), or ``max_samples`` (default 1,000) is reached. The rule looks at the worst
# digit of the batch: at the default tolerance it runs to ``max_samples``, while
# ``tolerance=0.02`` stops earlier (claim 9).

mean_mi = {}
for num_samples in (5, 10, 100, 1000):
    sampled = bayesdrop.mc_predict(model, x_test, num_samples=num_samples, seed=0)
    mean_mi[num_samples] = sampled.mutual_information.mean().item()
    print(f"S = {num_samples:4d}: mean mutual information {mean_mi[num_samples]:.4f}")
assert mean_mi[5] < mean_mi[10] < mean_mi[100]  # claim 8
assert abs(mean_mi[1000] - mean_mi[100]) < mean_mi[100] - mean_mi[10]  # claim 8

auto = {}
for tolerance in (0.01, 0.02):
    auto[tolerance] = bayesdrop.mc_predict(
        model, x_test, num_samples="auto", tolerance=tolerance, seed=0
    )
    print(
        f"tolerance {tolerance}: stopped at S = {auto[tolerance].num_samples}, largest standard "
        f"errors {auto[tolerance].probs_std_error.max():.3f} (probabilities), "
        f"{auto[tolerance].mutual_information_std_error.max():.3f} (mutual information)"
    )
assert auto[0.01].num_samples == 1000  # claim 9
assert auto[0.02].num_samples < 1000  # claim 9

# %%
# Monte-Carlo versus deterministic confidence
# -------------------------------------------
# Averaging the predictions of sampled masks makes the predictive less confident than the
# deterministic forward pass. This network was about as confident as it was accurate, and the
# MC predictive is under-confident (its mean confidence below its accuracy), so its NLL is the
# higher of the two (claim 10; the FAQ discusses it).

mc_confidence = pred.probs.max(-1).values.mean().item()
print(
    f"deterministic: accuracy {deterministic_accuracy:.4f}, mean confidence "
    f"{deterministic_confidence:.4f}, NLL {deterministic_nll:.4f}"
)
print(
    f"MC dropout:    accuracy {mc_accuracy:.4f}, mean confidence {mc_confidence:.4f}, "
    f"NLL {report.metrics.nll:.4f}"
)
# sphinx_gallery_start_ignore
if not smoke:  # claim 10, full run (after 10 epochs both are under-confident)
    assert abs(deterministic_confidence - deterministic_accuracy) < 0.01
    assert mc_confidence < mc_accuracy
    assert report.metrics.nll > deterministic_nll

# The numbers other pages quote (docs/_ext/generated_numbers.py): written in a docs build only.
if os.environ.get("BAYESDROP_NUMBERS"):
    import json
    from pathlib import Path

    numbers = {
        "deterministic_accuracy": round(deterministic_accuracy, 4),
        "deterministic_confidence": round(deterministic_confidence, 4),
        "deterministic_nll": round(deterministic_nll, 4),
        "mc_accuracy": round(mc_accuracy, 4),
        "mc_confidence": round(mc_confidence, 4),
        "mc_nll": round(float(report.metrics.nll), 4),
        "num_test": len(x_test),
        "auroc_entropy": round(auroc["predictive entropy"], 3),
        "auroc_confidence": round(auroc["1 - confidence"], 3),
        "auroc_mutual_information": round(auroc["mutual information"], 3),
        "auroc_variation_ratio": round(auroc["variation ratio"], 3),
        **{f"mean_mi_{k}": round(v, 4) for k, v in mean_mi.items()},
        "auto_default_samples": auto[0.01].num_samples,
        "auto_default_probs_se": round(auto[0.01].probs_std_error.max().item(), 3),
        "auto_default_mi_se": round(auto[0.01].mutual_information_std_error.max().item(), 3),
        "auto_loose_samples": auto[0.02].num_samples,
    }
    folder = Path(os.environ["BAYESDROP_NUMBERS"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "digits.json").write_text(
        json.dumps(
            {
                "tutorial": "tutorials/classification/plot_00_own_model_digits.py",
                "mode": "smoke" if smoke else "full",
                "numbers": numbers,
            },
            indent=1,
        )
    )
# sphinx_gallery_end_ignore

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
# sphinx_gallery_tags = ["digits (scikit-learn)"]
