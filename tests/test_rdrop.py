"""rdrop_loss, rdrop_mse_loss, symmetric_kl and the RDrop objective."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import bayesdrop
from bayesdrop.functional import rdrop_mse_loss, symmetric_kl


def test_hand_computed_value():
    # P1 = (1/2, 1/2), P2 = (1/4, 3/4), y = 1:
    # CE1 = log 2, CE2 = log(4/3), KL(P1||P2) = (1/2) log 2 + (1/2) log(2/3),
    # KL(P2||P1) = (1/4) log(1/2) + (3/4) log(3/2).
    a = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    kl12 = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    kl21 = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    want = math.log(2) + math.log(4 / 3) + 3.0 * 0.5 * (kl12 + kl21)
    got = bayesdrop.rdrop_loss(a, b, torch.tensor([1]), alpha=3.0)
    assert got.item() == pytest.approx(want, abs=1e-12)
    assert symmetric_kl(a, b).item() == pytest.approx(math.log(3) / 8, abs=1e-12)


def test_against_f_kl_div_both_ways():
    torch.manual_seed(0)
    l1, l2 = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (7,))
    lp1, lp2 = F.log_softmax(l1, -1), F.log_softmax(l2, -1)
    # F.kl_div(log_q, p) is KL(p || q); 'batchmean' sums over classes and averages over rows
    kl_12 = F.kl_div(lp2, lp1.exp(), reduction="batchmean")
    kl_21 = F.kl_div(lp1, lp2.exp(), reduction="batchmean")
    ce = F.cross_entropy(l1, y) + F.cross_entropy(l2, y)
    got = bayesdrop.rdrop_loss(l1, l2, y, alpha=0.7)
    torch.testing.assert_close(got, ce + 0.7 * 0.5 * (kl_12 + kl_21))
    # the default reduction 'mean' also averages over the 5 classes: 5 times smaller
    with pytest.warns(UserWarning, match="reduction: 'mean'"):
        kl_mean = F.kl_div(lp2, lp1.exp()) + F.kl_div(lp1, lp2.exp())
    torch.testing.assert_close(got, ce + 0.7 * 0.5 * 5 * kl_mean)
    # log_target=True form, KL(P1||P2) per row, to pin the direction of each term
    per_row = F.kl_div(lp2, lp1, reduction="none", log_target=True).sum(-1)
    torch.testing.assert_close(per_row, (lp1.exp() * (lp1 - lp2)).sum(-1))


def test_reductions_and_sequence_shape():
    torch.manual_seed(1)
    l1, l2 = torch.randn(3, 4, 6), torch.randn(3, 4, 6)
    y = torch.randint(0, 6, (3, 4))
    none = bayesdrop.rdrop_loss(l1, l2, y, reduction="none")
    assert none.shape == (3, 4)
    torch.testing.assert_close(bayesdrop.rdrop_loss(l1, l2, y, reduction="sum"), none.sum())
    torch.testing.assert_close(bayesdrop.rdrop_loss(l1, l2, y), none.mean())
    flat = bayesdrop.rdrop_loss(l1.reshape(12, 6), l2.reshape(12, 6), y.reshape(12))
    torch.testing.assert_close(bayesdrop.rdrop_loss(l1, l2, y), flat)


def test_ignore_index_drops_tokens_from_every_term():
    torch.manual_seed(2)
    l1, l2 = torch.randn(6, 4), torch.randn(6, 4)
    y = torch.tensor([0, 3, -100, 1, -100, 2])
    keep = y != -100
    got = bayesdrop.rdrop_loss(l1, l2, y, alpha=2.0)
    want = bayesdrop.rdrop_loss(l1[keep], l2[keep], y[keep], alpha=2.0)
    torch.testing.assert_close(got, want)
    none = bayesdrop.rdrop_loss(l1, l2, y, alpha=2.0, reduction="none")
    assert (none[~keep] == 0).all()
    y_pad = torch.where(keep, y, torch.tensor(7))
    torch.testing.assert_close(bayesdrop.rdrop_loss(l1, l2, y_pad, alpha=2.0, ignore_index=7), want)


def test_alpha_zero_is_two_cross_entropies_and_gradient_flows_through_both():
    l1 = torch.randn(5, 3, requires_grad=True)
    l2 = torch.randn(5, 3, requires_grad=True)
    y = torch.randint(0, 3, (5,))
    loss0 = bayesdrop.rdrop_loss(l1, l2, y, alpha=0.0)
    torch.testing.assert_close(loss0, F.cross_entropy(l1, y) + F.cross_entropy(l2, y))
    bayesdrop.rdrop_loss(l1, l2, y, alpha=1.0).backward()
    assert l1.grad.abs().sum() > 0 and l2.grad.abs().sum() > 0


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-20, 20), min_size=6, max_size=6),
    st.lists(st.floats(-20, 20), min_size=6, max_size=6),
)
def test_symmetric_kl_properties(a, b):
    x = torch.tensor(a, dtype=torch.float64).reshape(2, 3)
    y = torch.tensor(b, dtype=torch.float64).reshape(2, 3)
    kl = symmetric_kl(x, y)
    assert (kl >= -1e-12).all()
    torch.testing.assert_close(kl, symmetric_kl(y, x))
    assert symmetric_kl(x, x).abs().max() <= 1e-12
    torch.testing.assert_close(symmetric_kl(x + 3.0, y), kl)  # softmax shift invariance


def test_mse_variant():
    p1, p2, y = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2)
    want = F.mse_loss(p1, y) + F.mse_loss(p2, y) + 0.5 * F.mse_loss(p1, p2)
    torch.testing.assert_close(rdrop_mse_loss(p1, p2, y, alpha=0.5), want)
    none = rdrop_mse_loss(p1, p2, y, reduction="none")
    torch.testing.assert_close(rdrop_mse_loss(p1, p2, y, reduction="sum"), none.sum())


class FixedMaskDropout(nn.Module):
    """Dropout with preset masks: a (2N, H) mask, cut into rows as the batch arrives."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.mask, self.row = mask, 0

    def forward(self, x):
        out = x * self.mask[self.row : self.row + x.shape[0]]
        self.row = (self.row + x.shape[0]) % self.mask.shape[0]
        return out


def test_concatenated_batch_equals_two_separate_passes():
    torch.manual_seed(3)
    n, h = 6, 8
    mask = torch.bernoulli(torch.full((2 * n, h), 0.6)) / 0.6
    net = nn.Sequential(nn.Linear(4, h), nn.ReLU(), FixedMaskDropout(mask), nn.Linear(h, 3))
    net.append(nn.Dropout(0.0))  # so RDrop sees a dropout module
    x, y = torch.randn(n, 4), torch.randint(0, 3, (n,))

    out = bayesdrop.RDrop(net, alpha=1.5)(x, y)
    out.loss.backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()

    first, second = net(x), net(x)  # the same masks, one pass each
    manual = bayesdrop.rdrop_loss(first, second, y, alpha=1.5)
    manual.backward()
    torch.testing.assert_close(out.loss, manual)
    torch.testing.assert_close(out.output1, first)
    torch.testing.assert_close(out.output, (first + second) / 2)
    for got, want in zip(grads, [p.grad for p in net.parameters()], strict=True):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(out.loss, out.data_loss + 1.5 * out.consistency)


def test_rdrop_with_real_dropout_and_tuple_inputs():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4)
            self.drop = bayesdrop.MCDropout(0.5)

        def forward(self, a, b):
            return self.lin(self.drop(a) + b)

    torch.manual_seed(4)
    model = TwoInputs().train()
    out = bayesdrop.RDrop(model, alpha=1.0)((torch.randn(5, 3), torch.randn(5, 3)),
                                            torch.randint(0, 4, (5,)))  # fmt: skip
    assert out.output.shape == (5, 4) and out.consistency > 0
    out_eval = bayesdrop.RDrop(model.eval())((torch.randn(5, 3), torch.randn(5, 3)),
                                             torch.randint(0, 4, (5,)))  # fmt: skip
    assert out_eval.consistency.abs() < 1e-6  # eval: the two halves agree


def test_rdrop_regression_and_ignore_index():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    out = bayesdrop.RDrop(net, alpha=2.0, task="regression")(torch.randn(6, 3), torch.randn(6, 2))
    torch.testing.assert_close(out.loss, out.data_loss + 2.0 * out.consistency)
    seq = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 4))
    y = torch.tensor([[0, 1, -1], [2, -1, -1]])
    out = bayesdrop.RDrop(seq, ignore_index=-1)(torch.randn(2, 3, 3), y)
    want = bayesdrop.rdrop_loss(out.output1, out.output2, y, ignore_index=-1)
    torch.testing.assert_close(out.loss, want)


def test_loss_errors():
    a, y = torch.randn(4, 3), torch.randint(0, 3, (4,))
    with pytest.raises(ValueError, match=r"Expected `alpha` to be non-negative, but got -1.0"):
        bayesdrop.rdrop_loss(a, a, y, alpha=-1.0)
    with pytest.raises(ValueError, match=r"`logits2` to be of the same shape as `logits1`"):
        bayesdrop.rdrop_loss(a, torch.randn(4, 2), y)
    with pytest.raises(ValueError, match=r"`target` to be of shape \(4,\)"):
        bayesdrop.rdrop_loss(a, a, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(TypeError, match=r"`target` to be integer class indices"):
        bayesdrop.rdrop_loss(a, a, torch.zeros(4))
    with pytest.raises(ValueError, match=r"`reduction` to be one of 'mean', 'sum', 'none'"):
        bayesdrop.rdrop_loss(a, a, y, reduction="batchmean")
    with pytest.raises(ValueError, match=r"`target` to be a target with at least one entry"):
        bayesdrop.rdrop_loss(a, a, torch.full((4,), -100))
    with pytest.raises(ValueError, match=r"`logits1` to be finite"):
        bayesdrop.rdrop_loss(torch.full((4, 3), float("nan")), a, y)
    with pytest.raises(ValueError, match=r"`logits1` to be of shape \(..., C\)"):
        bayesdrop.rdrop_loss(torch.randn(4), torch.randn(4), y)
    with pytest.raises(ValueError, match=r"`alpha` to be non-negative"):
        rdrop_mse_loss(a, a, a, alpha=-0.1)
    with pytest.raises(ValueError, match=r"`prediction2` to be of the same shape"):
        rdrop_mse_loss(a, a[:2], a)


def test_rdrop_module_errors():
    with pytest.raises(ValueError, match=r"`model` to be a model with dropout"):
        bayesdrop.RDrop(nn.Linear(3, 2))
    net = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.1))
    with pytest.raises(ValueError, match=r"`alpha` to be non-negative"):
        bayesdrop.RDrop(net, alpha=-2.0)
    with pytest.raises(ValueError, match=r"`task` to be one of 'classification', 'regression'"):
        bayesdrop.RDrop(net, task="ranking")

    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.1)

        def forward(self, x):
            return self.drop(x).mean(0, keepdim=True)

    with pytest.raises(ValueError, match=r"`model` to be a model returning a tensor with 8 rows"):
        bayesdrop.RDrop(Pooled())(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`x` to be tensors with the same batch size 4"):
        bayesdrop.RDrop(net)((torch.randn(4, 3), torch.randn(5, 3)), torch.zeros(4))
