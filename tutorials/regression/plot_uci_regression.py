"""
UCI regression with uncertainty: MC dropout, Concrete Dropout and Pyro mean-field VI
====================================================================================

The yacht-hydrodynamics set of the UCI benchmark, on its first standard split: MC dropout with
the protocol's grid search over dropout rate and model precision, Concrete Dropout that learns
its rates (and a heteroscedastic noise) with no search, and a mean-field Gaussian Bayesian
network fitted with Pyro. We compare their test RMSE and log-likelihood and look at their
95% predictive intervals. ``benchmarks/uci.py`` runs the same on all 20 splits.

**What this page shows.** Each claim is checked by an ``assert`` in the code, so the page
fails to build if a claim stops holding:

1. Concrete Dropout's learned rates fall far below their initial 0.1 (both below 0.05).
2. Test log-likelihood: Concrete Dropout beats the searched MC dropout, which beats mean-field
   VI; MC dropout's test RMSE is the lowest of the three.
3. Concrete Dropout's heteroscedastic intervals follow the target: on the third of the test
   points with the largest resistance they are on average more than three times as wide as on
   the third with the smallest. MC dropout's intervals vary much less (less than a factor of
   two), and mean-field VI's are the widest everywhere.
4. None of the intervals is too narrow: each method's 95 % intervals hold at least 95 % of the
   test targets (mean-field VI's because they are wide everywhere).

All claims are checked in the full run shown here (2,000 epochs per network; the protocol's
search uses more, ``benchmarks/uci.py`` follows it). The smoke run (``BAYESDROP_SMOKE=1``, 60
epochs) only checks that the code runs. The run time is printed at the end (about a minute on
one CPU core).
"""

# %%
# Data and the protocol's split
# -----------------------------
# :func:`bayesdrop.datasets.load_uci` reads the standard layout (``BAYESDROP_DATA`` points at
# the folder holding ``uci/``). The validation set is the last 20% of the training split.
import time

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal

import bayesdrop
from bayesdrop.datasets import load_uci
from bayesdrop.nn import BatchedMLP
from bayesdrop.pyro import DropoutModel, MeanFieldMLP
from bayesdrop.sweep import RegressionBatch, fit_regression, predict_regression

start = time.perf_counter()
torch.manual_seed(0)
pyro.set_rng_seed(0)
ds = load_uci("yacht")
x_train, y_train, x_test, y_test = ds.split(0)
cut = int(0.8 * len(x_train))
epochs, num_samples, svi_epochs = 2000, 10_000, 500
# sphinx_gallery_start_ignore
# The tests' short run (BAYESDROP_SMOKE=1).
from bayesdrop.datasets import smoke_mode

smoke = smoke_mode()
if smoke:
    epochs, num_samples, svi_epochs = 60, 200, 30
# sphinx_gallery_end_ignore
print(f"{ds.name}: {len(x_train)} training and {len(x_test)} test points, {epochs} epochs")


def progress(label):
    """A callback for ``fit_regression`` that prints every quarter of the epochs."""

    def report(epoch):
        if (epoch + 1) % (epochs // 4) == 0:
            print(f"  {label}: epoch {epoch + 1} ({time.perf_counter() - start:.0f} s)")

    return report


# %%
# MC dropout: the whole grid as one batch of networks
# ---------------------------------------------------
# A :class:`bayesdrop.nn.BatchedMLP` holds the 12 networks of the grid (4 dropout rates x 3
# precisions); each gets weight decay :math:`\lambda = (1-p) l^2 / (2 N \tau)` and its own
# standardisation of the data. :func:`bayesdrop.sweep.fit_regression` trains them together.
grid = [(p, tau) for p in ds.dropout_rates for tau in ds.tau_values]
sub = RegressionBatch.from_arrays([x_train[:cut]] * len(grid), [y_train[:cut]] * len(grid))
net = BatchedMLP(len(grid), ds.X.shape[1], (50,), 1, p=[p for p, _ in grid])
taus = torch.tensor([tau for _, tau in grid])
fit_regression(net, sub, epochs=epochs, tau=taus, progress=progress("grid of 12 networks"))
val = predict_regression(
    net,
    sub,
    [x_train[cut:]] * len(grid),
    [y_train[cut:]] * len(grid),
    num_samples=min(num_samples, 1000),
    tau=taus,
)
best_p, best_tau = grid[int(val.log_likelihood.argmax())]
print(f"chosen by validation log-likelihood: p = {best_p}, tau = {best_tau}")

full = RegressionBatch.from_arrays([x_train], [y_train])
mc_net = BatchedMLP(1, ds.X.shape[1], (50,), 1, p=best_p)
fit_regression(mc_net, full, epochs=epochs, tau=best_tau, progress=progress("MC dropout"))
mc = predict_regression(mc_net, full, [x_test], [y_test], num_samples=num_samples, tau=best_tau)

# %%
# Concrete Dropout: learned rates, no search
# ------------------------------------------
# Two outputs, the mean and the log-variance of a heteroscedastic Gaussian; the regulariser
# uses :math:`l^2/N` and :math:`2/N` (:func:`bayesdrop.regularizer_constants` with
# ``tau=1``).
cd_net = BatchedMLP(1, ds.X.shape[1], (50,), 2, dropout="concrete", p=0.1)
fit_regression(cd_net, full, epochs=epochs, progress=progress("Concrete Dropout"))
concrete = predict_regression(cd_net, full, [x_test], [y_test], num_samples=num_samples)
learned_rates = cd_net.drop_rates()[0].detach()
print("learned drop rates (input, hidden):", learned_rates.numpy().round(3))
# sphinx_gallery_start_ignore
assert smoke or bool((learned_rates < 0.05).all())  # claim 1
# sphinx_gallery_end_ignore

# %%
# Mean-field variational inference with Pyro
# ------------------------------------------
# :class:`bayesdrop.pyro.MeanFieldMLP` is a Pyro model of the same architecture with
# Gaussian priors on the weights and a Gamma prior on the noise precision; an ``AutoNormal``
# guide makes the posterior a fully factorised Gaussian.
pyro.clear_param_store()
mfvi = MeanFieldMLP(ds.X.shape[1], (50,))
guide = AutoNormal(mfvi, init_scale=0.01)
svi = SVI(mfvi, guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
n = len(x_train)
for epoch in range(epochs // 4):
    for idx in torch.randperm(n).split(128):
        svi.step(full.x[:, idx], full.y[:, idx], num_data=n)
    if (epoch + 1) % (epochs // 16) == 0:
        print(f"  mean-field VI: epoch {epoch + 1} ({time.perf_counter() - start:.0f} s)")
x_std, _ = full.standardize_inputs([x_test])
draws = Predictive(mfvi, guide=guide, num_samples=1000, return_sites=["mean", "precision"])(x_std)
mu = draws["mean"].reshape(1000, -1) * full.y_std + full.y_mean
noise_var = (full.y_std**2 / draws["precision"].reshape(1000, 1)).mean(0)
mfvi_mean, mfvi_var = mu.mean(0), mu.var(0) + noise_var

# %%
# The same MC-dropout network as a Pyro model
# -------------------------------------------
# :class:`bayesdrop.pyro.DropoutModel` turns any network with bayesdrop layers into a Pyro
# model whose ``Trace_ELBO`` with the empty guide is ``num_data`` times bayesdrop's ELBO, and
# ``Predictive`` draws MC-dropout samples from it. A short run, to show the plumbing:
pyro.clear_param_store()
torch_net = torch.nn.Sequential(
    bayesdrop.MCDropout(torch.nn.Linear(ds.X.shape[1], 50), p=best_p),
    torch.nn.ReLU(),
    bayesdrop.MCDropout(torch.nn.Linear(50, 1), p=best_p),
)
model = DropoutModel(torch_net, num_data=n, tau=best_tau * float(full.y_std) ** 2)
svi = SVI(model, model.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
losses = []
for _ in range(svi_epochs):
    for idx in torch.randperm(n).split(128):
        losses.append(svi.step(full.x[0, idx], full.y[0, idx, None]) / n)
samples = Predictive(model, guide=model.guide, num_samples=100, return_sites=["prediction"])(
    x_std[0]
)["prediction"]
print(
    f"negative ELBO per point: {losses[0]:.2f} -> {losses[-1]:.2f}; "
    f"Predictive samples {tuple(samples.shape)}"
)

# %%
# Test RMSE and log-likelihood
# ----------------------------
# In original units; MC dropout's LL uses the chosen precision, Concrete Dropout's its
# predicted variances. ``picp`` is the fraction of test targets inside the central 95%
# interval (mean +- 1.96 std of the Gaussian approximation of the predictive).
y_t = torch.as_tensor(y_test, dtype=torch.float32)


def summary(mean, var):
    std = var.sqrt()
    rmse = (mean - y_t).pow(2).mean().sqrt()
    picp = ((y_t - mean).abs() <= 1.96 * std).float().mean()
    return float(rmse), float(picp)


mfvi_ll = (
    torch.logsumexp(
        torch.distributions.Normal(
            mu, (full.y_std**2 / draws["precision"].reshape(1000, 1)).sqrt()
        ).log_prob(y_t),
        0,
    )
    .sub(np.log(1000))
    .mean()
)
rows = {
    "MC dropout (grid)": (*summary(mc.mean[0], mc.variance[0]), float(mc.log_likelihood[0])),
    "Concrete Dropout": (
        *summary(concrete.mean[0], concrete.variance[0]),
        float(concrete.log_likelihood[0]),
    ),
    "Pyro mean-field VI": (*summary(mfvi_mean, mfvi_var), float(mfvi_ll)),
}
print(f"{'method':20s} {'RMSE':>7s} {'PICP95':>7s} {'test LL':>8s}")
for name, (rmse, picp, ll) in rows.items():
    print(f"{name:20s} {rmse:7.3f} {picp:7.2f} {ll:8.3f}")

intervals = {
    "MC dropout (grid)": (mc.mean[0], mc.variance[0]),
    "Concrete Dropout": (concrete.mean[0], concrete.variance[0]),
    "Pyro mean-field VI": (mfvi_mean, mfvi_var),
}
thirds = np.array_split(np.argsort(y_test), 3)
print("mean width of the 95% interval, test points split by target into thirds:")
print(f"{'method':20s} {'lowest':>7s} {'middle':>7s} {'highest':>7s}")
widths = {}
for name, (_, var) in intervals.items():
    width = 2 * 1.96 * var.detach().sqrt().numpy()
    widths[name] = [float(width[third].mean()) for third in thirds]
    print(f"{name:20s} " + " ".join(f"{w:7.2f}" for w in widths[name]))
# sphinx_gallery_start_ignore
if not smoke:
    rmse = {name: row[0] for name, row in rows.items()}
    picp = {name: row[1] for name, row in rows.items()}
    ll = {name: row[2] for name, row in rows.items()}
    mc_name, cd_name, vi_name = rows
    assert ll[cd_name] > ll[mc_name] > ll[vi_name]  # claim 2
    assert rmse[mc_name] == min(rmse.values())  # claim 2
    assert widths[cd_name][2] > 3 * widths[cd_name][0]  # claim 3
    assert max(widths[mc_name]) < 2 * min(widths[mc_name])  # claim 3
    assert all(
        widths[vi_name][i] > max(widths[mc_name][i], widths[cd_name][i]) for i in range(3)
    )  # claim 3
    assert min(picp.values()) >= 0.95  # claim 4
# sphinx_gallery_end_ignore

# %%
# Predictive intervals
# --------------------
# Test points sorted by their target. Yacht's residuary resistance spans two orders of
# magnitude: a homoscedastic model must use one noise level everywhere, the heteroscedastic
# Concrete head makes its intervals narrow at small resistances and wide at large ones (the
# widths printed above). MC dropout's intervals widen a little at large resistances through
# their epistemic part; mean-field VI's are wide everywhere.
order = np.argsort(y_test)
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharey=True)
for ax, (name, mean, var) in zip(
    axes,
    [
        ("MC dropout (grid)", mc.mean[0], mc.variance[0]),
        ("Concrete Dropout", concrete.mean[0], concrete.variance[0]),
        ("Pyro mean-field VI", mfvi_mean, mfvi_var),
    ],
    strict=True,
):
    m, s = mean.detach()[order].numpy(), var.detach()[order].sqrt().numpy()
    idx = np.arange(len(order))
    ax.fill_between(idx, m - 1.96 * s, m + 1.96 * s, alpha=0.3, label="95% interval")
    ax.plot(idx, m, lw=1, label="predictive mean")
    ax.scatter(idx, y_test[order], s=8, c="k", label="target")
    ax.set(title=name, xlabel="test point (sorted by target)")
axes[0].set_ylabel("residuary resistance")
axes[0].legend(loc="upper left", fontsize=8)
fig.tight_layout()

# %%
# When Concrete Dropout's learned noise over-fits
# -----------------------------------------------
# Concrete Dropout picks its rates by the ELBO, not by held-out likelihood. With 50 hidden
# units and a few hundred points the entropy term :math:`\tfrac{2}{N} K \mathcal H(p)` is
# weak, and the learned rates fall far below where they started (claim 1): the predictive is
# then nearly a point estimate with a learned noise level. Where that noise is well identified,
# as on yacht here, this beats the searched MC dropout's log-likelihood (claim 2). Where the
# data are small and noisy (UCI ``concrete``; the full protocol's numbers are in
# ``benchmarks/README.md``), the noise fitted on the training data is too small for unseen data
# and MC dropout's test log-likelihood is the better one; rescaling the noise variance by one
# factor fitted on the validation split closes most of that gap, but that is a fit on held-out
# data again. Check the learned rates before trusting the intervals.
print(f"this tutorial ran in {time.perf_counter() - start:.1f} s")
# sphinx_gallery_thumbnail_number = 1
# sphinx_gallery_tags = ["UCI yacht"]
