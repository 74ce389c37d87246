"""Small "does it learn" checks of the dropout posterior."""

from __future__ import annotations

import torch
from torch import nn

import bayesdrop


def test_predictive_variance_grows_away_from_the_data():
    torch.manual_seed(0)
    x = torch.empty(128, 1).uniform_(-1, 1)
    y = x.pow(3) + 0.05 * torch.randn_like(x)
    model = nn.Sequential(
        nn.Linear(1, 64),
        nn.ReLU(),
        bayesdrop.MCDropout(nn.Linear(64, 64), p=0.1),
        nn.ReLU(),
        bayesdrop.MCDropout(nn.Linear(64, 1), p=0.1),
    )
    elbo = bayesdrop.ELBO(num_data=128, likelihood="gaussian", tau=100.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = elbo(model(x), y, model).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    probe = torch.tensor([[-4.0], [-0.5], [0.0], [0.5], [4.0]])
    with torch.no_grad(), bayesdrop.sampling(model):
        draws = torch.stack([model(probe) for _ in range(500)]).squeeze(-1)
    sd = draws.std(0)
    assert sd[[0, 4]].min() > 3 * sd[1:4].max(), sd
    # and the fit is good where the data are
    assert (draws.mean(0)[1:4] - probe[1:4, 0].pow(3)).abs().max() < 0.15
