"""
R-Drop: making two dropout sub-models agree
===========================================

R-Drop (Liang et al., NeurIPS 2021) passes every training input through the network twice,
with independent dropout masks, and adds the symmetric KL divergence between the two predicted
distributions to both cross-entropies:

.. math::

    \\mathcal L = \\mathrm{CE}(P_1, y) + \\mathrm{CE}(P_2, y)
    + \\alpha \\cdot \\tfrac12 \\left[\\mathrm{KL}(P_1\\|P_2) + \\mathrm{KL}(P_2\\|P_1)\\right].

:func:`bayesdrop.rdrop_loss` is this loss as a pure function; :class:`bayesdrop.RDrop` wraps a
model and runs both passes as *one* forward on the concatenated batch ``[x; x]``.
"""

# %%
# The loss on two sets of logits
# ------------------------------
# The KL is summed over classes and averaged over the batch; ``alpha`` is the paper's. The
# reference codes scale it differently (see :func:`bayesdrop.rdrop_loss` for the table).
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import bayesdrop
from bayesdrop.datasets import load_fashion_mnist, smoke_mode

torch.manual_seed(0)
logits1, logits2 = torch.randn(4, 3), torch.randn(4, 3)
target = torch.tensor([0, 2, 1, 1])
for alpha in (0.0, 1.0, 5.0):
    loss = bayesdrop.rdrop_loss(logits1, logits2, target, alpha=alpha)
    print(f"alpha={alpha}: {loss.item():.4f}")

# %%
# Training with R-Drop
# --------------------
# An MLP with dropout on a Fashion-MNIST subset, trained with plain dropout and with R-Drop
# (alpha = 1). ``RDrop`` returns a frozen dataclass with the loss, its two terms and the
# averaged logits.
smoke = smoke_mode()
num_train, epochs = (1500, 2) if smoke else (10000, 10)
x, y = load_fashion_mnist(split="train")
x_test, y_test = load_fashion_mnist(split="test")
subset = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:num_train]
x, y = x[subset].flatten(1), y[subset]
x_test, y_test = x_test[:2000].flatten(1), y_test[:2000]


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10)
    )  # fmt: skip


def train(alpha):
    model = make_model()
    objective = None if alpha is None else bayesdrop.RDrop(model, alpha=alpha)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(1)
    consistency = []
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(num_train, generator=order).split(64):
            if objective is None:
                loss = F.cross_entropy(model(x[idx]), y[idx])
            else:
                out = objective(x[idx], y[idx])
                loss = out.loss
                consistency.append(out.consistency.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        probs = model(x_test).softmax(-1)
    accuracy = (probs.argmax(-1) == y_test).float().mean().item()
    return accuracy, consistency


acc_plain, _ = train(None)
acc_rdrop, consistency = train(1.0)
print(f"plain dropout: test accuracy {acc_plain:.3f}")
print(f"R-Drop (alpha=1): test accuracy {acc_rdrop:.3f}")

# %%
# The consistency term (the symmetric KL between the two sub-models) during training:
fig, ax = plt.subplots(figsize=(5, 3))
steps = torch.tensor(consistency)
window = min(20, len(steps))
ax.plot(steps.unfold(0, window, 1).mean(1))  # running mean over `window` steps
ax.set(xlabel="step", ylabel="symmetric KL", title="R-Drop consistency term")
fig.tight_layout()

# %%
# Regression
# ----------
# For regression outputs the consistency term is the squared gap between the two passes:
# ``rdrop_mse_loss = MSE1 + MSE2 + alpha * MSE(out1, out2)``, or ``RDrop(model,
# task="regression")``.
pred1, pred2, y_reg = torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([2.0])
print(bayesdrop.functional.rdrop_mse_loss(pred1, pred2, y_reg, alpha=0.5))
