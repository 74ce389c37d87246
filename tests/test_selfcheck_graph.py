"""The first-call check read from a graph (issue 20's cost target): a pass whose draws are all
made by torch's own noise modules on the batch's rows is not recorded; anything else a graph
cannot vouch for (a user module inside a torch module, a hook, noise on a tensor without the
batch's rows, noise on a weight) still goes to the recorder, which finds the shared draw."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import bayesdrop

pytestmark = pytest.mark.usefixtures("one_thread")

selfcheck = sys.modules["bayesdrop.predict._selfcheck"]
X = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))


def _recordings(monkeypatch) -> list[int]:
    """How many passes the first-call check recorded."""
    recorded: list[int] = []
    real = selfcheck.functional_noise

    def counted(*args, **kwargs):
        recorded.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(selfcheck, "functional_noise", counted)
    return recorded


class Trunk(nn.Module):
    def __init__(self, body: nn.Module | None = None) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.body = body if body is not None else nn.Sequential(nn.Tanh(), nn.Dropout(0.3))
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.body(3.0 * self.fc(x)))


def _agrees_with_the_loop(model, pred, **opts) -> None:
    loop = bayesdrop.mc_predict(model, X, num_samples=256, seed=1, engine="loop", **opts)
    ratio = float(pred.mutual_information.mean() / loop.mutual_information.mean())
    assert 0.75 < ratio < 1.33, ratio


def test_torch_noise_modules_on_the_rows_need_no_recording(monkeypatch):
    recorded = _recordings(monkeypatch)
    torch.manual_seed(0)
    model = Trunk().eval()
    pred = bayesdrop.mc_predict(model, X, num_samples=256, seed=0)
    assert pred.engine == "cached" and recorded == []
    _agrees_with_the_loop(model, pred)
    # the seeded samples do not depend on whether the check ran (a second call has none)
    again = bayesdrop.mc_predict(model, X, num_samples=256, seed=0)
    torch.testing.assert_close(again.probs, pred.probs, rtol=0, atol=0)


def test_a_batched_model_with_a_trace_needs_no_recording(monkeypatch):
    recorded = _recordings(monkeypatch)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).eval()
    pred = bayesdrop.mc_predict(model, X, num_samples=64, seed=0)
    assert pred.engine == "batched" and recorded == []


class DrawsPerCall(nn.Module):
    """A user's activation that draws once per call (a shared scale), inside a torch module."""

    def forward(self, x):
        return x * (1.0 + torch.rand([]))


class OnReduced(nn.Module):
    """A torch dropout given a tensor reduced over the batch: one mask shared by every row."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop, self.out = nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 3)
        self.rows = nn.Dropout(0.05)  # per row: the repeats of a pass are not identical

    def forward(self, x):
        h = torch.tanh(3.0 * self.fc(x))
        gate = self.drop(h.mean(0, keepdim=True))  # (1, 16): no batch rows
        return self.out(self.rows(h) * gate)


def test_a_user_module_inside_a_torch_module_is_recorded(monkeypatch):
    recorded = _recordings(monkeypatch)
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation=DrawsPerCall())
    body = nn.Sequential(nn.Unflatten(1, (1, 16)), layer, nn.Flatten(1), nn.Dropout(0.3))
    model = Trunk(body).eval()
    pred = bayesdrop.mc_predict(model, X, num_samples=256, seed=0)
    assert recorded, "the graph cannot vouch for a user module"
    assert "shared the draws" in pred.engine_reason, pred.engine_reason


def test_noise_on_a_tensor_without_the_rows_is_caught_by_the_watch(monkeypatch):
    recorded = _recordings(monkeypatch)
    torch.manual_seed(0)
    model = OnReduced().eval()
    pred = bayesdrop.mc_predict(model, X, num_samples=256, seed=0)
    assert recorded, "the watched output had no batch rows: the recorder measures it"
    assert "shared the draws of `drop`" in pred.engine_reason, pred.engine_reason
    _agrees_with_the_loop(model, pred)


class LSTMOnReduced(nn.Module):
    """An LSTM whose dropout between layers (drawn inside the kernel, never through a Python
    dropout call) runs on a summary of the whole batch: one mask shared by every row."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(8, 16), nn.Linear(16, 3)
        self.lstm = nn.LSTM(16, 16, num_layers=2, dropout=0.5, batch_first=True)
        self.rows = nn.Dropout(0.05)  # per row: the repeats of a pass are not identical

    def forward(self, x):
        h = torch.tanh(3.0 * self.fc(x))
        summary, _ = self.lstm(h.mean(0, keepdim=True).unsqueeze(1))  # (1, 1, 16)
        return self.out(self.rows(h) * torch.tanh(3.0 * summary[:, 0]))


def test_recurrent_kernel_noise_without_the_rows_is_found(monkeypatch):
    # the kernel's draw is seen by the watch (its output lacks the rows) and by the recorder
    # (a draw of the same size in a pass of one sample and of k): shared, one sample per pass
    recorded = _recordings(monkeypatch)
    torch.manual_seed(0)
    model = LSTMOnReduced().eval()
    pred = bayesdrop.mc_predict(model, X, num_samples=256, seed=0)
    assert recorded, "the kernel's output had no batch rows: the recorder measures it"
    assert "shared the draws of `lstm` (lstm)" in pred.engine_reason, pred.engine_reason
    _agrees_with_the_loop(model, pred)


def test_a_hook_sends_the_pass_to_the_recorder(monkeypatch):
    recorded = _recordings(monkeypatch)
    torch.manual_seed(0)
    model = Trunk().eval()
    handle = model.body[0].register_forward_hook(lambda m, i, o: o * (1.0 + torch.rand([])))
    try:
        pred = bayesdrop.mc_predict(model, X, num_samples=256, seed=0)
    finally:
        handle.remove()
    assert recorded and "shared the draws" in pred.engine_reason, pred.engine_reason


def test_planted_blind_check_misses_what_the_watch_catches(monkeypatch):
    # with the watch switched off (every output taken as having the rows), the reduced-tensor
    # dropout is batched and its mutual information falls short: the watch is what catches it
    monkeypatch.setattr(selfcheck, "draw_rows", _blind_watch)
    torch.manual_seed(0)
    model = OnReduced().eval()
    pred = bayesdrop.mc_predict(model, X, num_samples=256, seed=0)
    assert pred.engine == "cached" and "shared" not in pred.engine_reason
    check = bayesdrop.check_noise(model, X, num_samples=128)
    assert not check.ok, check.describe()


class _blind_watch:  # stands in for the context manager
    def __init__(self, rows) -> None:
        pass

    def __enter__(self):
        return [True]

    def __exit__(self, *exc) -> None:
        return None
