"""Small models shared by the predictor tests."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Dropout in every layer (nothing to cache)."""

    def __init__(self, p: float = 0.3) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(p), nn.Linear(5, 16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, 4)
        )

    def forward(self, x):
        return self.net(x)


class HeadCNN(nn.Module):
    """Dropout only before the linear head."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(p), nn.Linear(4 * 4 * 4, 3))

    def forward(self, x):
        return self.head(self.trunk(x))


class Residual(nn.Module):
    """The skip path bypasses the dropout: out = b(h + dropout(tanh(h)))."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.a, self.drop, self.b = nn.Linear(5, 6), nn.Dropout(p), nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.b(h + self.drop(torch.tanh(h)))


class Attention(nn.Module):
    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=p, batch_first=True)
        self.out = nn.Linear(8, 4)

    def forward(self, x):
        return self.out(self.layer(self.embed(x)).mean(1))


class WithBatchNorm(nn.Module):
    def __init__(self, p: float = 0.4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(p), nn.Linear(8, 3)
        )

    def forward(self, x):
        return self.net(x)


class EarlySize(nn.Module):
    """Reads the batch size before the dropout: x.view(n, -1) with n taken from the input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.drop, self.fc = nn.Conv2d(1, 2, 3), nn.Dropout(0.5), nn.Linear(2 * 6 * 6, 3)

    def forward(self, x):
        n = x.size(0)
        return self.fc(self.drop(self.conv(x)).view(n, -1))


class Heteroscedastic(nn.Module):
    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(p))
        self.mean, self.log_var = nn.Linear(16, 1), nn.Linear(16, 1)

    def forward(self, x):
        h = self.body(x)
        return self.mean(h), self.log_var(h)


def inputs(name: str, n: int = 6) -> torch.Tensor:
    shapes = {
        "MLP": (n, 5),
        "HeadCNN": (n, 1, 8, 8),
        "Residual": (n, 5),
        "Attention": (n, 7, 3),
        "WithBatchNorm": (n, 5),
        "EarlySize": (n, 1, 8, 8),
    }
    return torch.randn(*shapes[name], generator=torch.Generator().manual_seed(1))


def fitted_batchnorm() -> WithBatchNorm:
    model = WithBatchNorm()
    with torch.no_grad():
        model.train()(torch.randn(64, 5) * 2 + 1)
    return model.eval()
