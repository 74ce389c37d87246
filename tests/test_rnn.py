"""VariationalLSTM / VariationalGRU: equivalence with torch, mask semantics, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import bayesdrop
from bayesdrop import functional as BF
from bayesdrop.nn import RNNMasks

PAIRS = {"lstm": (bayesdrop.VariationalLSTM, nn.LSTM), "gru": (bayesdrop.VariationalGRU, nn.GRU)}


def make(kind, *, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    ours_cls, torch_cls = PAIRS[kind]
    ref_kw = {k: kw[k] for k in ("num_layers", "batch_first", "bias") if k in kw}
    ref = torch_cls(kw.pop("input_size", 3), kw.pop("hidden_size", 5), **ref_kw).to(dtype)
    ours = ours_cls(ref.input_size, ref.hidden_size, **kw).to(dtype)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def initial_state(kind, layers, batch, hidden, dtype=torch.float64):
    h0 = torch.randn(layers, batch, hidden, dtype=dtype)
    return (h0, torch.randn_like(h0)) if kind == "lstm" else h0


# ------------------------------------------------------------------ equivalence with torch
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("masks", ["untied", "tied"])
def test_zero_rates_equal_torch(kind, batch_first, num_layers, masks):
    ours, ref = make(kind, num_layers=num_layers, batch_first=batch_first, masks=masks,
                     input_p=0.0, hidden_p=0.0, output_p=0.0)  # fmt: skip
    ours.train()  # p = 0 samples "masks" of ones: nothing may change
    x = torch.randn((4, 7, 3) if batch_first else (7, 4, 3), dtype=torch.float64)
    hx = initial_state(kind, num_layers, 4, 5)
    out, state = ours(x, hx)
    ref_out, ref_state = ref(x, hx)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-6)
    ours_states = state if kind == "lstm" else [state]
    for a, b in zip(ours_states, ref_state if kind == "lstm" else [ref_state], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_eval_mode_ignores_rates_and_bias_false(kind):
    ours, ref = make(kind, num_layers=2, bias=False, input_p=0.5, hidden_p=0.5, output_p=0.5)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(ours.eval()(x)[0], ref(x)[0], rtol=0, atol=1e-6)
    assert "bias_ih_l0" not in dict(ours.named_parameters())


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_state_dict_round_trip(kind):
    ours, ref = make(kind, num_layers=2)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for name, value in ours.state_dict().items():
        assert value.shape == ref.state_dict()[name].shape
    with torch.no_grad():
        for p in ours.parameters():
            p.mul_(2.0)
    back = PAIRS[kind][1](3, 5, num_layers=2).double()
    back.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(back(x)[0], ours.eval()(x)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_from_torch(kind):
    ours_cls, torch_cls = PAIRS[kind]
    ref = torch_cls(3, 5, num_layers=2, batch_first=True).double()
    ours = ours_cls.from_torch(ref, hidden_p=0.3, masks="tied")
    assert ours.batch_first and ours.hidden_p == 0.3 and ours.weight_hh_l1.dtype == torch.float64
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    torch.testing.assert_close(ours.eval()(x)[0], ref(x)[0], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="`rnn` to be unidirectional"):
        ours_cls.from_torch(torch_cls(3, 5, bidirectional=True))
    with pytest.raises(TypeError, match=f"`rnn` to be a torch.nn.{torch_cls.__name__}"):
        ours_cls.from_torch(nn.Linear(3, 5))


# ------------------------------------------------------------------ an independent recurrence
def manual_forward(module, x, masks: RNNMasks):
    """Per-gate loops written from the equations (time-major x), to check the fused code."""
    G, H = module.num_gates, module.hidden_size
    N = x.shape[1]
    h_all = x
    for k in range(module.num_layers):
        w_ih, w_hh = getattr(module, f"weight_ih_l{k}"), getattr(module, f"weight_hh_l{k}")
        b_ih, b_hh = getattr(module, f"bias_ih_l{k}"), getattr(module, f"bias_hh_l{k}")
        m_x, m_h = masks.inputs[k], masks.hidden[k]
        h = x.new_zeros(N, H)
        c = x.new_zeros(N, H)
        outs = []
        for t in range(h_all.shape[0]):
            pre_x, pre_h = [], []
            for g in range(G):
                xg = h_all[t] * (1.0 if m_x is None else m_x[g % m_x.shape[0]])
                hg = h * (1.0 if m_h is None else m_h[g % m_h.shape[0]])
                sl = slice(g * H, (g + 1) * H)
                pre_x.append(F.linear(xg, w_ih[sl], b_ih[sl]))
                pre_h.append(F.linear(hg, w_hh[sl], b_hh[sl]))
            if G == 4:
                i, f = (pre_x[0] + pre_h[0]).sigmoid(), (pre_x[1] + pre_h[1]).sigmoid()
                gg, o = (pre_x[2] + pre_h[2]).tanh(), (pre_x[3] + pre_h[3]).sigmoid()
                c = f * c + i * gg
                h = o * c.tanh()
            else:
                r, z = (pre_x[0] + pre_h[0]).sigmoid(), (pre_x[1] + pre_h[1]).sigmoid()
                n = (pre_x[2] + r * pre_h[2]).tanh()
                h = (1 - z) * n + z * h
            outs.append(h)
        h_all = torch.stack(outs)
    return h_all if masks.output is None else h_all * masks.output


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("masks", ["untied", "tied"])
@pytest.mark.parametrize("backend", ["manual", "autograd"])
def test_matches_manual_recurrence_with_masks(kind, masks, backend):
    ours, _ = make(kind, num_layers=2, masks=masks, backend=backend,
                   input_p=0.4, hidden_p=0.4, output_p=0.4)  # fmt: skip
    x = torch.randn(6, 5, 3, dtype=torch.float64)
    drawn = ours.sample_masks(5)
    G = ours.num_gates if masks == "untied" else 1
    assert drawn.inputs[0].shape == (G, 5, 3) and drawn.hidden[1].shape == (G, 5, 5)
    assert drawn.output.shape == (5, 5)
    out, _ = ours(x, masks=drawn)
    torch.testing.assert_close(out, manual_forward(ours, x, drawn), rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("masks", ["untied", "tied"])
def test_fast_path_equals_reference_recurrence_with_gradients(kind, masks):
    # the default (hand-written backward) path against the per-gate loop written from the
    # equations, differentiated by autograd: the same outputs and the same gradients for x and
    # every parameter, with seeded masks of every kind on (a faster path cannot drift)
    ours, _ = make(kind, num_layers=2, hidden_size=6, masks=masks,
                   input_p=0.4, hidden_p=0.4, output_p=0.4)  # fmt: skip
    gen = torch.Generator().manual_seed(3)
    drawn = ours.sample_masks(4, generator=gen)
    x = torch.randn(9, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    weights = torch.randn(9, 4, 6, dtype=torch.float64, generator=gen)
    grads = []
    for forward in (lambda: ours(x, masks=drawn)[0], lambda: manual_forward(ours, x, drawn)):
        out = forward()
        (out * weights).sum().backward()
        grads.append([out.detach(), x.grad.clone(), *[p.grad.clone() for p in ours.parameters()]])
        x.grad = None
        ours.zero_grad(set_to_none=True)
    for fast, reference in zip(*grads, strict=True):
        torch.testing.assert_close(fast, reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_mask_reaches_previous_state(kind):
    ours, _ = make(kind, input_p=0.0, hidden_p=0.5, output_p=0.0)
    x = torch.randn(8, 4, 3, dtype=torch.float64)
    deterministic = ours.eval()(x)[0]
    with bayesdrop.sampling(ours):
        sampled = ours(x)[0]
    # h_{-1} = 0, so the first step cannot see the mask; every later step does.
    torch.testing.assert_close(sampled[0], deterministic[0], rtol=0, atol=1e-12)
    assert all(not torch.allclose(sampled[t], deterministic[t]) for t in range(1, 8))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_masks_constant_over_time_and_differ_across_rows(kind):
    ours, _ = make(kind, input_p=0.0, hidden_p=0.0, output_p=0.5, hidden_size=16)
    x = torch.randn(9, 1, 3, dtype=torch.float64).expand(9, 8, 3)  # 8 identical sequences
    deterministic = ours.eval()(x)[0]
    with bayesdrop.sampling(ours):
        sampled = ours(x)[0]
    ratio = sampled / deterministic  # the mask value, (T, N, H)
    assert set(ratio.round(decimals=8).unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(ratio, ratio[:1].expand_as(ratio))  # the same at every step
    assert len({tuple(row.tolist()) for row in ratio[0]}) > 1  # rows differ


def test_masks_are_reused_when_given():
    ours, _ = make("lstm", num_layers=2, input_p=0.3, hidden_p=0.3, output_p=0.3)
    x = torch.randn(10, 3, 3, dtype=torch.float64)
    masks = ours.sample_masks(3)
    whole, _ = ours(x, masks=masks)
    first, state = ours(x[:4], masks=masks)
    second, _ = ours(x[4:], state, masks=masks)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=0, atol=1e-12)


def test_sampling_flags_and_contract():
    ours, _ = make("lstm", dtype=torch.float32)
    x = torch.randn(5, 2, 3)
    ours.eval()
    assert torch.equal(ours(x)[0], ours(x)[0])
    with bayesdrop.sampling(ours):
        assert not torch.equal(ours(x)[0], ours(x)[0])
    assert ours.mc is None
    ours.train()
    with bayesdrop.sampling(ours, enabled=False):
        assert torch.equal(ours(x)[0], ours(x)[0])
    assert bayesdrop.nn.is_stochastic(ours)


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("masks", ["untied", "tied"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_gradcheck_with_fixed_masks(kind, masks, batch_first):
    ours, _ = make(kind, num_layers=2, hidden_size=3, input_size=2, masks=masks,
                   batch_first=batch_first, input_p=0.3, hidden_p=0.3, output_p=0.3)  # fmt: skip
    drawn = ours.sample_masks(2)
    names = [n for n, _ in ours.named_parameters()]
    x = torch.randn((2, 4, 2) if batch_first else (4, 2, 2), dtype=torch.float64)
    h0 = torch.randn(2, 2, 3, dtype=torch.float64)
    inputs = [x, h0, torch.randn_like(h0), *[p.detach() for p in ours.parameters()]]
    inputs = [t.clone().requires_grad_(True) for t in inputs]

    def f(x, h0, c0, *params):
        hx = (h0, c0) if kind == "lstm" else h0
        out, state = torch.func.functional_call(
            ours, dict(zip(names, params, strict=True)), (x, hx), {"masks": drawn}
        )
        return out, *(state if kind == "lstm" else [state])

    assert torch.autograd.gradcheck(f, inputs)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_manual_backward_equals_autograd(kind):
    ours, _ = make(kind, num_layers=2, hidden_size=6, input_p=0.3, hidden_p=0.3, output_p=0.3)
    ref, _ = make(kind, num_layers=2, hidden_size=6, input_p=0.3, hidden_p=0.3, output_p=0.3,
                  backend="autograd")  # fmt: skip
    x = torch.randn(7, 3, 3, dtype=torch.float64, requires_grad=True)
    masks = ours.sample_masks(3)
    grads = []
    for module in (ours, ref):
        out, _ = module(x, masks=masks)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads.append([x.grad.clone(), *[p.grad for p in module.parameters()]])
        x.grad = None
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ KL
@pytest.mark.parametrize("masks", ["untied", "tied"])
def test_kl_per_weight_matrix(masks):
    ours = bayesdrop.VariationalLSTM(3, 5, 2, input_p=0.3, hidden_p=0.2, masks=masks,
                                     length_scale=0.5)  # fmt: skip
    copies = 4 if masks == "untied" else 1

    def term(w, p, k):
        entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))
        return 0.5 * 0.25 * (1 - p) * w.pow(2).sum() - k * copies * entropy

    expected = sum(
        term(getattr(ours, f"weight_ih_l{k}"), 0.3, 3 if k == 0 else 5)
        + term(getattr(ours, f"weight_hh_l{k}"), 0.2, 5)
        for k in range(2)
    )
    kl = ours.kl()
    torch.testing.assert_close(kl, expected)
    kl.backward()
    assert ours.weight_hh_l1.grad is not None and ours.bias_ih_l0.grad is None
    model = nn.Sequential(nn.Linear(2, 3), ours)
    torch.testing.assert_close(bayesdrop.kl_divergence(model), kl.detach())


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name", ["input_p", "hidden_p", "output_p"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_rates_outside_unit_interval(name, value):
    with pytest.raises(ValueError, match=rf"`{name}` to be a probability in \[0, 1\)"):
        bayesdrop.VariationalLSTM(3, 5, **{name: value})
    gru = bayesdrop.VariationalGRU(3, 5)
    with pytest.raises(ValueError, match=rf"`{name}`"):
        setattr(gru, name, value)
    assert getattr(gru, name) == 0.25  # unchanged


def test_bad_options():
    with pytest.raises(ValueError, match="`masks` to be one of 'untied', 'tied'"):
        bayesdrop.VariationalLSTM(3, 5, masks="per-step")
    with pytest.raises(ValueError, match="`backend`"):
        bayesdrop.VariationalGRU(3, 5, backend="cuda")
    with pytest.raises(ValueError, match="`hidden_size` to be a positive integer"):
        bayesdrop.VariationalLSTM(3, 0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bad_input_shapes(kind):
    ours, _ = make(kind, batch_first=True)
    with pytest.raises(ValueError, match=r"`input` to be a 3-D tensor \(batch, seq, features\)"):
        ours(torch.randn(7, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"feature size input_size=3.*4 features"):
        ours(torch.randn(2, 7, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least one step"):
        ours(torch.randn(2, 0, 3, dtype=torch.float64))
    packed = pack_padded_sequence(torch.randn(2, 4, 3), torch.tensor([4, 2]), batch_first=True)
    with pytest.raises(TypeError, match="`input` to be a padded tensor"):
        ours(packed)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_batch_first_mismatch_in_initial_state(kind):
    ours, _ = make(kind, num_layers=2, batch_first=True)
    x = torch.randn(4, 7, 3, dtype=torch.float64)  # (N=4, T=7)
    wrong = torch.randn(4, 2, 5, dtype=torch.float64)  # batch first: torch never does that
    hx = (wrong, wrong) if kind == "lstm" else wrong
    with pytest.raises(ValueError, match=r"`h_0` to be of shape \(2, 4, 5\).*also with batch_f"):
        ours(x, hx)
    if kind == "lstm":
        with pytest.raises(TypeError, match=r"`hx` to be a tuple \(h_0, c_0\)"):
            ours(x, wrong)


def test_masks_for_another_batch():
    ours, _ = make("lstm")
    with pytest.raises(ValueError, match="`masks` to be masks for a batch of 4"):
        ours(torch.randn(6, 4, 3, dtype=torch.float64), masks=ours.sample_masks(3))
    with pytest.raises(TypeError, match="`masks` to be an RNNMasks"):
        ours(torch.randn(6, 4, 3, dtype=torch.float64), masks=torch.ones(4, 5))


def test_functional_recurrence_rejects_unknown_backend():
    gx, h = torch.zeros(2, 4, 1, 3), torch.zeros(1, 3)
    with pytest.raises(ValueError, match="`backend` to be one of 'manual', 'autograd'"):
        BF.lstm_recurrence(gx, h, h, torch.zeros(12, 3), backend="jit")
