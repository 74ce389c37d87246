"""drop_schedule against the reference definition; DropoutScheduler reach, resume and errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import bayesdrop
from bayesdrop.schedules import DropoutScheduler, drop_schedule


def reference_schedule(rate, epochs, iters, cutoff, mode, shape):
    """Re-derivation of drop_scheduler (facebookresearch/dropout, utils.py), piece by piece."""
    if mode == "standard":
        return np.full(epochs * iters, rate)
    early = cutoff * iters
    late = (epochs - cutoff) * iters
    if mode == "early":
        head = np.full(early, rate) if shape == "constant" else np.linspace(rate, 0, early)
        return np.concatenate((head, np.full(late, 0)))
    return np.concatenate((np.full(early, 0), np.full(late, rate)))


CASES = [
    ("standard", "constant", 0),
    ("early", "constant", 0),
    ("early", "constant", 2),
    ("early", "constant", 5),
    ("early", "linear", 1),
    ("early", "linear", 2),
    ("early", "linear", 5),
    ("late", "constant", 0),
    ("late", "constant", 3),
    ("late", "constant", 5),
]


@pytest.mark.parametrize(("mode", "shape", "cutoff"), CASES)
@pytest.mark.parametrize("iters", [1, 7])
def test_schedule_matches_reference(mode, shape, cutoff, iters):
    got = drop_schedule(
        0.3, epochs=5, iters_per_epoch=iters, cutoff_epoch=cutoff, mode=mode, shape=shape
    )
    want = reference_schedule(0.3, 5, iters, cutoff, mode, shape)
    assert got.dtype == np.float64 and got.shape == (5 * iters,)
    np.testing.assert_array_equal(got, want)


def test_schedule_endpoints():
    s = drop_schedule(0.1, epochs=300, iters_per_epoch=4, cutoff_epoch=50, mode="early",
                      shape="linear")  # fmt: skip
    assert s[0] == 0.1 and s[199] == 0.0 and (s[200:] == 0).all()
    assert np.all(np.diff(s[:200]) < 0)
    np.testing.assert_allclose(s[1] - s[0], -0.1 / 199)
    late = drop_schedule(0.4, epochs=300, iters_per_epoch=4, cutoff_epoch=50, mode="late")
    assert late[199] == 0.0 and late[200] == 0.4 and late[-1] == 0.4
    one = drop_schedule(0.2, epochs=3, iters_per_epoch=1, cutoff_epoch=1, mode="early",
                        shape="linear")  # fmt: skip
    assert one.tolist() == [0.2, 0.0, 0.0]  # a one-step ramp is the rate itself
    full = drop_schedule(0.2, epochs=3, iters_per_epoch=2, cutoff_epoch=3, mode="early")
    assert (full == 0.2).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(cutoff_epoch=6, mode="early"), r"`cutoff_epoch` to be at most `epochs` \(5\)"),
        (dict(cutoff_epoch=6, mode="late"), r"cutoff must lie within the schedule"),
        (dict(mode="middle"), r"Expected `mode` to be one of 'standard', 'early', 'late'"),
        (dict(mode="early", shape="cosine"), r"Expected `shape` to be one of 'constant', 'linear'"),
        (dict(mode="late", shape="linear", cutoff_epoch=2), r"'constant' for mode='late'"),
        (dict(shape="linear"), r"`shape` to be 'constant' for mode='standard'"),
        (dict(cutoff_epoch=2), r"`cutoff_epoch` to be 0 for mode='standard'"),
        (dict(cutoff_epoch=-1, mode="early"), r"`cutoff_epoch` to be a non-negative integer"),
    ],
)  # fmt: skip
def test_schedule_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        drop_schedule(0.1, epochs=5, iters_per_epoch=2, **kwargs)


def test_schedule_argument_errors():
    with pytest.raises(ValueError, match=r"`drop_rate` to be a probability in \[0, 1\)"):
        drop_schedule(1.0, epochs=2, iters_per_epoch=2)
    with pytest.raises(ValueError, match=r"`epochs` to be a positive integer"):
        drop_schedule(0.1, epochs=0, iters_per_epoch=2)
    with pytest.raises(TypeError, match=r"`iters_per_epoch` to be an integer"):
        drop_schedule(0.1, epochs=2, iters_per_epoch=2.5)


class Net(nn.Module):
    """One module of every kind the scheduler must reach, plus one it must skip."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.drop2d = nn.Dropout2d(0.5)
        self.alpha = nn.AlphaDropout(0.5)
        self.mha = nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
        self.encoder = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5, batch_first=True)
        self.mc = bayesdrop.MCDropout(nn.Linear(8, 8), p=0.5)
        self.spatial = bayesdrop.nn.SpatialMCDropout(0.5)
        self.concrete = bayesdrop.ConcreteDropout(nn.Linear(8, 8))
        self.path = bayesdrop.nn.DropPath(0.5)


def dropout_rates(net: Net) -> dict[str, float]:
    return {
        "drop": net.drop.p,
        "drop2d": net.drop2d.p,
        "alpha": net.alpha.p,
        "mha": net.mha.dropout,
        "encoder.self_attn": net.encoder.self_attn.dropout,
        "encoder.dropout": net.encoder.dropout.p,
        "encoder.dropout1": net.encoder.dropout1.p,
        "encoder.dropout2": net.encoder.dropout2.p,
        "mc": net.mc.p,
        "spatial": net.spatial.p,
    }


def test_scheduler_reaches_every_dropout_kind():
    net = Net()
    concrete_p = net.concrete.p.item()
    sched = DropoutScheduler(net, [0.1, 0.2, 0.3])
    assert set(dropout_rates(net).values()) == {0.1}
    sched.step()
    assert set(dropout_rates(net).values()) == {0.2}
    assert set(sched.targets) == set(dropout_rates(net))
    assert sched.skipped == ["concrete", "path"]
    assert net.concrete.p.item() == concrete_p  # a learned rate is left alone
    assert net.path.p == 0.5  # drop path belongs to target="drop_path"


def test_scheduled_attention_dropout_takes_effect():
    """Rate 0 makes attention deterministic in training mode; a positive rate does not."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).train()
    x = torch.randn(2, 5, 8)
    sched = DropoutScheduler(layer, [0.0, 0.6])
    assert torch.equal(layer(x), layer(x))
    sched.step()
    assert not torch.equal(layer(x), layer(x))
    assert layer.self_attn.dropout == 0.6


def test_scheduler_holds_last_value_and_reports():
    net = nn.Sequential(nn.Dropout(0.0))
    sched = DropoutScheduler(net, torch.tensor([0.3, 0.1], dtype=torch.float64))
    for _ in range(5):
        sched.step()
    assert sched.step_count == 5 and sched.last_rate == 0.1 and net[0].p == 0.1
    assert sched.module_rates() == {"0": 0.1}


def blocks(depth: int) -> nn.Module:
    return nn.Sequential(*[bayesdrop.nn.DropPath(0.0) for _ in range(depth)], nn.Dropout(0.2))


def test_drop_path_linear_depth_rule_matches_reference():
    net = blocks(12)
    DropoutScheduler(net, [0.5], target="drop_path")
    got = [net[i].p for i in range(12)]
    want = [v.item() for v in torch.linspace(0, 0.5, 12)]  # the reference's update_drop_path
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    assert got[0] == 0.0 and got[-1] == 0.5
    assert net[12].p == 0.2  # plain dropout is not touched by target="drop_path"


def test_drop_path_schedule_over_steps_and_uniform_rule():
    net = blocks(3)
    sched = DropoutScheduler(net, [0.4, 0.2], target="drop_path")
    assert [net[i].p for i in range(3)] == [0.0, 0.2, 0.4]
    sched.step()
    assert [net[i].p for i in range(3)] == [0.0, 0.1, 0.2]
    uniform = blocks(3)
    DropoutScheduler(uniform, [0.4], target="drop_path", depth_rule="uniform")
    assert [uniform[i].p for i in range(3)] == [0.4] * 3


def test_drop_path_reaches_timm_style_modules():
    class TimmDropPath(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop_prob = 0.0

    net = nn.Sequential(TimmDropPath(), TimmDropPath())
    DropoutScheduler(net, [0.3], target="drop_path")
    assert [m.drop_prob for m in net] == [0.0, 0.3]


def run(model, sched, opt, steps, x, y):
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def test_resume_from_state_dict_continues_exactly():
    torch.manual_seed(0)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    schedule = drop_schedule(0.5, epochs=4, iters_per_epoch=3, cutoff_epoch=2, mode="early",
                             shape="linear")  # fmt: skip

    def fresh():
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.0), nn.Linear(16, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, DropoutScheduler(model, schedule)

    model, opt, sched = fresh()
    torch.manual_seed(2)
    full = run(model, sched, opt, 12, x, y)

    model, opt, sched = fresh()
    torch.manual_seed(2)
    first = run(model, sched, opt, 5, x, y)
    saved = copy.deepcopy((model.state_dict(), opt.state_dict(), sched.state_dict()))
    rng = torch.get_rng_state()

    model2, opt2, sched2 = fresh()  # a new process: rates back at schedule[0]
    assert model2[2].p == 0.5
    model2.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    sched2.load_state_dict(saved[2])
    assert sched2.step_count == 5 and model2[2].p == schedule[5]
    torch.set_rng_state(rng)
    assert first + run(model2, sched2, opt2, 7, x, y) == full


def test_scheduler_errors():
    with pytest.raises(ValueError, match=r"`model` to be a model containing a dropout module"):
        DropoutScheduler(nn.Linear(2, 2), [0.1])
    with pytest.raises(ValueError, match=r"a model containing a bayesdrop.nn.DropPath"):
        DropoutScheduler(nn.Sequential(nn.Dropout()), [0.1], target="drop_path")
    with pytest.raises(ValueError, match=r"`schedule` to be rates in \[0, 1\)"):
        DropoutScheduler(nn.Dropout(), [0.1, 1.0])
    with pytest.raises(ValueError, match=r"`schedule` to be a non-empty 1-D array"):
        DropoutScheduler(nn.Dropout(), [])
    with pytest.raises(TypeError, match=r"`schedule` to be a 1-D array of rates"):
        DropoutScheduler(nn.Dropout(), 0.1)
    with pytest.raises(TypeError, match=r"`schedule` to be a 1-D array of rates, but got str"):
        DropoutScheduler(nn.Dropout(), "0.1")
    with pytest.raises(ValueError, match=r"`target` to be one of 'dropout', 'drop_path'"):
        DropoutScheduler(nn.Dropout(), [0.1], target="attention")
    with pytest.raises(TypeError, match=r"`model` to be a torch.nn.Module"):
        DropoutScheduler("model", [0.1])


def test_load_state_dict_errors_leave_state_unchanged():
    net = nn.Sequential(nn.Dropout(0.0))
    sched = DropoutScheduler(net, [0.1, 0.2, 0.3])
    sched.step()
    other = DropoutScheduler(blocks(2), [0.1], target="drop_path").state_dict()
    with pytest.raises(ValueError, match=r"`state_dict\['target'\]` to be 'dropout'"):
        sched.load_state_dict(other)
    with pytest.raises(ValueError, match=r"`state_dict` to be a dict with keys"):
        sched.load_state_dict({"step": 1})
    bad = sched.state_dict() | {"step": -1}
    with pytest.raises(ValueError, match=r"`state_dict\['step'\]` to be a non-negative integer"):
        sched.load_state_dict(bad)
    assert sched.step_count == 1 and net[0].p == 0.2


def test_warns_about_functional_dropout():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.1)

        def forward(self, x):
            return nn.functional.dropout(self.drop(x), 0.5, training=self.training)

    with pytest.warns(UserWarning, match=r"call functional dropout"):
        DropoutScheduler(nn.Sequential(Functional()), [0.2])
