"""
Concrete Dropout for 1-D regression
===================================

Train a small network whose drop rates are learned (Concrete Dropout), with the ELBO as the
objective, and look at its Monte-Carlo predictive: the mean, the aleatoric noise and the
epistemic uncertainty that grows away from the data.
"""

# %%
# Data with a gap
# ---------------
# A noisy sine observed on two intervals; nothing is observed in between or outside.
import matplotlib.pyplot as plt
import torch
from torch import nn

import bayesdrop
from bayesdrop.datasets import smoke_mode

torch.manual_seed(0)
num_data = 200
x = torch.cat(
    [torch.empty(num_data // 2).uniform_(-3, -1), torch.empty(num_data // 2).uniform_(1, 3)]
)[:, None]
noise_std = 0.15
y = torch.sin(2 * x) + noise_std * torch.randn_like(x)

# %%
# A network with Concrete Dropout before every dense layer
# --------------------------------------------------------
# Each :class:`bayesdrop.ConcreteDropout` wraps the layer whose input it drops, so its KL knows
# that layer's weights. The likelihood is Gaussian with a precision ``tau`` equal to the true
# noise precision.
hidden = 128
model = nn.Sequential(
    bayesdrop.ConcreteDropout(nn.Linear(1, hidden)),
    nn.ReLU(),
    bayesdrop.ConcreteDropout(nn.Linear(hidden, hidden)),
    nn.ReLU(),
    bayesdrop.ConcreteDropout(nn.Linear(hidden, 1)),
)
tau = 1 / noise_std**2
elbo = bayesdrop.ELBO(num_data=num_data, likelihood="gaussian", tau=tau)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

epochs = 150 if smoke_mode() else 1500
history = []
model.train()
for _ in range(epochs):
    for idx in torch.randperm(num_data).split(50):
        terms = elbo(model(x[idx]), y[idx], model)
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
    history.append([m.p.item() for m in model if isinstance(m, bayesdrop.ConcreteDropout)])
model.eval()
print("learned drop rates:", [round(p, 3) for p in history[-1]])

# %%
# How the drop rates move
# -----------------------
# Each layer's rate settles where the KL's two forces balance against the data term.
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(torch.tensor(history))
ax.set(xlabel="epoch", ylabel="learned p", title="Concrete Dropout rates")
ax.legend([f"layer {i}" for i in range(3)])
fig.tight_layout()

# %%
# The Monte-Carlo predictive
# --------------------------
# Under :func:`bayesdrop.sampling` every dropout samples; 200 draws give the predictive mean and
# the epistemic variance, and :math:`\tau^{-1}` is the aleatoric part.
grid = torch.linspace(-5, 5, 400)[:, None]
with torch.no_grad(), bayesdrop.sampling(model):
    draws = torch.stack([model(grid) for _ in range(200)])
mean = draws.mean(0).squeeze()
epistemic = draws.var(0, unbiased=False).squeeze()
total_std = (epistemic + 1 / tau).sqrt()

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.scatter(x, y, s=6, c="k", label="data")
ax.plot(grid, torch.sin(2 * grid), "g--", lw=1, label="truth")
ax.plot(grid, mean, "C0", label="MC mean")
ax.fill_between(
    grid.squeeze(), mean - 2 * total_std, mean + 2 * total_std, alpha=0.3, label="±2 predictive sd"
)
ax.set(ylim=(-3, 3), xlabel="x", ylabel="y")
ax.legend(loc="lower left", fontsize=8)
fig.tight_layout()

# %%
# Epistemic uncertainty grows away from the data
# ----------------------------------------------
inside = ((grid.abs() > 1) & (grid.abs() < 3)).squeeze()
print(
    f"epistemic sd where data lie: {epistemic[inside].sqrt().mean():.3f}, "
    f"elsewhere: {epistemic[~inside].sqrt().mean():.3f}"
)
fig, ax = plt.subplots(figsize=(7, 2.5))
ax.plot(grid, epistemic.sqrt())
ax.axvspan(-3, -1, color="k", alpha=0.1)
ax.axvspan(1, 3, color="k", alpha=0.1)
ax.set(xlabel="x", ylabel="epistemic sd")
fig.tight_layout()
