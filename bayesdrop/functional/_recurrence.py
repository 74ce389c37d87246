r"""The recurrences of LSTM and GRU layers with a per-sequence mask on the recurrent state.

The input projection of every time step is computed outside (one matrix product); these
functions run the step loop. The gate pre-activations ``gates_x`` come gate-major,
``(T, G, N, H)``, and the recurrent mask ``hidden_mask`` is ``(G, N, H)`` (untied: one mask per
gate), ``(1, N, H)`` (tied) or ``None``. With :math:`\tilde h^{(g)} = h_{t-1} \odot m^{(g)}`:

.. math::

    \text{LSTM:}\quad a^{(g)}_t = x\text{-part}^{(g)}_t + \tilde h^{(g)} W^{(g)\top}_{h},\quad
    c_t = \sigma(a^{(f)}) c_{t-1} + \sigma(a^{(i)}) \tanh(a^{(g)}),\quad
    h_t = \sigma(a^{(o)}) \tanh(c_t)

    \text{GRU:}\quad r, z = \sigma(x\text{-part}^{(r,z)} + \tilde h^{(r,z)} W^{(r,z)\top}_h
    + b^{(r,z)}_h),\quad
    n = \tanh(x\text{-part}^{(n)} + r \odot (\tilde h^{(n)} W^{(n)\top}_h + b^{(n)}_h)),\quad
    h_t = (1 - z) n + z h_{t-1}

Gate orders are torch's: ``i, f, g, o`` and ``r, z, n``. ``backend="manual"`` runs the loop
without autograd and differentiates it with a hand-written backward pass (faster on CPU);
``backend="autograd"`` is the plain loop, kept as the reference. The manual backward is
differentiable once; use ``"autograd"`` for higher-order gradients (e.g. gradient penalties).

The manual LSTM keeps every step's masked :math:`\tilde h^{(g)}` (the product reads it forward,
the weight gradient backward). Each step is one batched product and then the step's
element-wise work: on CPU float32 tensors, when numba is installed, one fused kernel call
forward and one backward (:mod:`bayesdrop.functional._lstm_kernel`, whose float32
:math:`\tanh` is a rational approximation accurate to :math:`4 \cdot 10^{-7}`); elsewhere (no
numba, other devices, other dtypes, a mask that only broadcasts) about eight PyTorch
operations each way, the local derivatives of all steps computed in one pass after the forward
loop.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from bayesdrop._validation import check_choice
from bayesdrop.functional import _lstm_kernel

__all__ = ["gru_recurrence", "lstm_recurrence"]

Backend = Literal["manual", "autograd"]


def _masked(h: Tensor, mask: Tensor | None, num_gates: int) -> Tensor:
    """``h`` (…, N, H) times the gate masks: (…, G, N, H) (a broadcast view without a mask)."""
    h = h.unsqueeze(-3)
    if mask is not None:
        h = h * mask
    return h.expand(*h.shape[:-3], num_gates, *h.shape[-2:])


def _weight_grad(d_gates: Tensor, h_prev: Tensor, mask: Tensor | None) -> Tensor:
    r""":math:`\sum_{t,n} \partial a^{(g)}_{tn}\, \tilde h^{(g)\top}_{tn}` as (G*H, H).

    The reshapes are free when ``d_gates`` is laid out (T, N, G, H) for a shared mask and
    (G, T, N, H) for untied masks, the layouts the variational layers produce.
    """
    if mask is None or mask.shape[0] == 1:
        return _masked_weight_grad(d_gates, (h_prev if mask is None else h_prev * mask)[None])
    return _masked_weight_grad(d_gates, h_prev.unsqueeze(0) * mask.unsqueeze(1))


def _masked_weight_grad(d_gates: Tensor, h_in: Tensor) -> Tensor:
    r"""As :func:`_weight_grad`, from every step's masked input ``h_in``, (1 or G, T, N, H)."""
    T, G, N, H = d_gates.shape
    if h_in.shape[0] == 1:
        d_flat = d_gates.permute(0, 2, 1, 3).reshape(T * N, G * H)
        return d_flat.t() @ h_in.reshape(T * N, H)
    d_flat = d_gates.transpose(0, 1).reshape(G, T * N, H)
    return torch.bmm(d_flat.transpose(1, 2), h_in.reshape(G, T * N, H)).reshape(G * H, H)


def _layout(x: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shape and memory order (outermost first) of ``x``, to give its gradient the same strides."""
    strides = x.stride()
    order = sorted(range(x.dim()), key=lambda d: -strides[d])
    return tuple(x.shape), tuple(order)


def _empty(layout: tuple[tuple[int, ...], tuple[int, ...]], ref: Tensor) -> Tensor:
    shape, order = layout
    inverse = sorted(range(len(order)), key=lambda d: order[d])
    return ref.new_empty([shape[d] for d in order]).permute(inverse)


def _recurrent_grad(d_gates_t: Tensor, w: Tensor, mask: Tensor | None) -> Tensor:
    """Gradient reaching :math:`h_{t-1}` through the masked recurrent products."""
    dh = torch.bmm(d_gates_t, w)  # (G, N, H)
    if mask is not None:
        dh = dh * mask
    return dh.sum(0)


def _lstm_kernels(gates_x, h0, c0, weight_hh, mask):
    """The fused CPU step kernels where they apply to these arguments, else ``None``."""
    _, G, N, H = gates_x.shape
    if G != 4 or tuple(h0.shape) != (N, H) or tuple(c0.shape) != (N, H):
        return None
    if mask is not None and tuple(mask.shape) not in ((G, N, H), (1, N, H)):
        return None  # a mask that only broadcasts: the PyTorch path
    if weight_hh.shape != (G * H, H):
        return None
    return _lstm_kernel.kernels(gates_x, h0, c0, weight_hh, mask)


class _LSTMRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gates_x, h0, c0, weight_hh, mask):
        T, G, N, H = gates_x.shape
        w_t = weight_hh.view(G, H, H).transpose(1, 2).contiguous()
        # every step's pre-activations are written into one contiguous buffer by the step's
        # product itself (no copy of gates_x beforehand); gate order i, f, g, o as torch's
        acts = gates_x.new_empty(T, G, N, H)
        out = gates_x.new_empty(T, N, H)
        cs = gates_x.new_empty(T + 1, N, H)
        tc = gates_x.new_empty(T, N, H)  # tanh(c_t), kept for the backward pass
        # every step's masked h_{t-1}: read by the step's product, kept for the weight gradient
        nm = 0 if mask is None else mask.shape[0]
        hm = gates_x.new_empty(nm, T, N, H)
        cs[0] = c0
        if mask is not None:
            mask = mask.contiguous()
            torch.mul(h0, mask, out=hm[:, 0])
        # the views of every step made at once (unbind), not by indexing in the loop
        gx_t, acts_t, out_t, tc_t, cs_t = (v.unbind(0) for v in (gates_x, acts, out, tc, cs))
        hm_t = hm.unbind(1)

        def h_in(t: int) -> Tensor:
            if nm == 0:
                return (h0 if t == 0 else out_t[t - 1]).unsqueeze(0).expand(G, N, H)
            return hm_t[t].expand(G, N, H)

        kernels = _lstm_kernels(gates_x, h0, c0, weight_hh, mask)
        ctx.fused = kernels is not None
        if kernels is not None:
            step = kernels[0]
            flat = [v.view(-1).numpy() for v in (acts, cs, tc, out, hm)]
            m_flat = (gates_x.new_empty(0) if mask is None else mask).detach().view(-1).numpy()
            for t in range(T):
                torch.baddbmm(gx_t[t], h_in(t), w_t, out=acts_t[t])
                step(*flat, m_flat, t, T, N * H, nm)  # acts[t] := i, f, g, o; c, tanh c, h, hm
            ctx.save_for_backward(acts, cs, tc, out, hm, h0, weight_hh, mask)
            ctx.layout = _layout(gates_x)
            ctx.kernels = kernels
            return out, out[T - 1].clone(), cs[T].clone()
        sig_t = acts[:, :2].unbind(0)
        i_t, f_t, g_t, o_t = (v.unbind(0) for v in acts.unbind(1))
        for t in range(T):
            torch.baddbmm(gx_t[t], h_in(t), w_t, out=acts_t[t])
            sig_t[t].sigmoid_()
            g_t[t].tanh_()
            o_t[t].sigmoid_()
            c = torch.mul(f_t[t], cs_t[t], out=cs_t[t + 1]).addcmul_(i_t[t], g_t[t])
            h = torch.mul(o_t[t], torch.tanh(c, out=tc_t[t]), out=out_t[t])
            if mask is not None and t + 1 < T:
                torch.mul(h, mask, out=hm_t[t + 1])
        # Local derivatives of all steps at once, so the backward loop stays short; written
        # into one buffer, few passes, no temporaries of the full size.
        i, f, g, o = acts.unbind(1)
        deriv = gates_x.new_empty(T, 5, N, H)  # da_dc (i, f, g), dc_dh, da_dh
        torch.addcmul(i, i, i, value=-1.0, out=deriv[:, 0]).mul_(g)  # g * i (1 - i)
        torch.addcmul(f, f, f, value=-1.0, out=deriv[:, 1]).mul_(cs[:-1])  # c_prev * f (1 - f)
        torch.mul(g, g, out=deriv[:, 2]).sub_(1.0).mul_(i).neg_()  # i (1 - g^2)
        torch.mul(tc, tc, out=deriv[:, 3]).sub_(1.0).mul_(o).neg_()  # c_t -> h_t: o (1 - tc^2)
        torch.addcmul(o, o, o, value=-1.0, out=deriv[:, 4]).mul_(tc)  # output gate
        f = f.clone()  # a copy, so that the whole (T, 4, N, H) acts buffer can be freed
        ctx.save_for_backward(deriv, f, out, hm, h0, weight_hh, mask)
        ctx.layout = _layout(gates_x)
        return out, out[T - 1].clone(), cs[T].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_hn, d_cn):
        if ctx.fused:
            return _LSTMRecurrence._backward_fused(ctx, d_out, d_hn, d_cn)
        deriv, f, out, hm, h0, weight_hh, mask = ctx.saved_tensors
        da_dc, dc_dh, da_dh = deriv[:, :3], deriv[:, 3], deriv[:, 4]
        T, _, H = out.shape
        G = 4
        w = weight_hh.view(G, H, H)
        d_gates = _empty(ctx.layout, out)
        dh, dc = d_hn.clone(), d_cn.clone()
        steps = (d_out, da_dc, dc_dh, da_dh, f, d_gates, d_gates[:, :3], d_gates[:, 3])
        d_out_t, da_dc_t, dc_dh_t, da_dh_t, f_t, dg_t, dg3_t, dgo_t = (v.unbind(0) for v in steps)
        for t in range(T - 1, -1, -1):
            dh += d_out_t[t]
            dc.addcmul_(dh, dc_dh_t[t])
            torch.mul(dc.unsqueeze(0), da_dc_t[t], out=dg3_t[t])
            torch.mul(dh, da_dh_t[t], out=dgo_t[t])
            dc.mul_(f_t[t])
            dh = _recurrent_grad(dg_t[t], w, mask)
        return d_gates, dh, dc, _lstm_weight_grad(ctx, d_gates, hm, h0, out), None

    @staticmethod
    def _backward_fused(ctx, d_out, d_hn, d_cn):
        acts, cs, tc, out, hm, h0, weight_hh, mask = ctx.saved_tensors
        T, N, H = out.shape
        G = 4
        w = weight_hh.view(G, H, H)
        d_gates = _empty(ctx.layout, out)
        if d_gates.stride(3) != 1:  # the kernel writes rows of H: a (T, G, N, H) layout
            d_gates = out.new_empty(T, G, N, H)
        st, sg, sn, _ = d_gates.stride()
        dg_flat = d_gates.as_strided((d_gates.numel(),), (1,)).numpy()  # its whole storage
        dh = out.new_empty(N, H).copy_(d_hn)
        dc = out.new_empty(N, H).copy_(d_cn)
        rec = out.new_empty(G, N, H)  # the recurrent product of the step after
        nm = 0 if mask is None else mask.shape[0]
        m_flat = (out.new_empty(0) if mask is None else mask).detach().view(-1).numpy()
        flat = [v.view(-1).numpy() for v in (acts, cs, tc, d_out.contiguous(), rec)]
        dh_flat, dc_flat = dh.view(-1).numpy(), dc.view(-1).numpy()
        dg_t = d_gates.unbind(0)
        step = ctx.kernels[1]
        for t in range(T - 1, -1, -1):
            # dh := d_out[t] + the masked product of the step after; d_gates[t]; dc := dc * f
            step(*flat, m_flat, nm, dh_flat, dc_flat, dg_flat, t, N, H, st, sg, sn, t == T - 1)
            if t > 0:
                torch.bmm(dg_t[t], w, out=rec)
        dh = _recurrent_grad(dg_t[0], w, mask)
        return d_gates, dh, dc, _lstm_weight_grad(ctx, d_gates, hm, h0, out), None


def _lstm_weight_grad(ctx, d_gates: Tensor, hm: Tensor, h0: Tensor, out: Tensor) -> Tensor | None:
    if not ctx.needs_input_grad[3]:
        return None
    if hm.shape[0] == 0:  # no mask: the inputs of the steps are h_{t-1} themselves
        hm = torch.cat([h0.unsqueeze(0), out[:-1]]).unsqueeze(0)
    return _masked_weight_grad(d_gates, hm)


class _GRURecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gates_x, h0, weight_hh, bias_hh, mask):
        T, G, N, H = gates_x.shape
        w_t = weight_hh.view(G, H, H).transpose(1, 2).contiguous()
        b = bias_hh.view(G, 1, H)
        acts = gates_x.new_empty(T, 4, N, H)  # r, z, n, (W_hn h + b_hn)
        out = gates_x.new_empty(T, N, H)
        h = h0
        for t in range(T):
            gh = torch.baddbmm(b, _masked(h, mask, G), w_t)
            r, z, n, ghn = acts[t]
            torch.add(gates_x[t, :2], gh[:2], out=acts[t, :2]).sigmoid_()
            ghn.copy_(gh[2])
            torch.addcmul(gates_x[t, 2], r, ghn, out=n).tanh_()
            h = torch.addcmul(n, z, h - n, out=out[t])
        # d(gates_x) = dh_t * da_dh; d(W_h h + b_h) = dh_t * dhid_dh, for all steps at once.
        r, z, n, ghn = acts.unbind(1)
        h_prev = torch.cat([h0.unsqueeze(0), out[:-1]])
        dn = (1.0 - z) * (1.0 - n * n)
        da_dh = torch.stack([dn * ghn * r * (1.0 - r), (h_prev - n) * z * (1.0 - z), dn], 1)
        dhid_dh = torch.cat([da_dh[:, :2], (dn * r).unsqueeze(1)], 1)
        ctx.save_for_backward(da_dh, dhid_dh, z, h_prev, weight_hh, mask)
        ctx.layout = _layout(gates_x)
        return out, out[T - 1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_hn):
        da_dh, dhid_dh, z, h_prev, weight_hh, mask = ctx.saved_tensors
        T, N, H = h_prev.shape
        w = weight_hh.view(3, H, H)
        d_hidden = _empty(ctx.layout, h_prev)  # w.r.t. W_h h + b_h
        dh_all = h_prev.new_empty(T, N, H)
        dh = d_hn
        for t in range(T - 1, -1, -1):
            dh = torch.add(dh, d_out[t], out=dh_all[t])
            torch.mul(dh, dhid_dh[t], out=d_hidden[t])
            dh = torch.addcmul(_recurrent_grad(d_hidden[t], w, mask), dh, z[t])
        d_gates = torch.mul(dh_all.unsqueeze(1), da_dh, out=_empty(ctx.layout, h_prev))
        d_weight = d_bias = None
        if ctx.needs_input_grad[2]:
            d_weight = _weight_grad(d_hidden, h_prev, mask)
        if ctx.needs_input_grad[3]:
            d_bias = d_hidden.sum(dim=(0, 2)).reshape(-1)
        return d_gates, dh, d_weight, d_bias, None


def _lstm_autograd(gates_x, h0, c0, weight_hh, mask):
    T, G, _N, H = gates_x.shape
    w_t = weight_hh.view(G, H, H).transpose(1, 2)
    h, c, outs = h0, c0, []
    for t in range(T):
        a = torch.baddbmm(gates_x[t], _masked(h, mask, G), w_t)
        i, f, o = a[0].sigmoid(), a[1].sigmoid(), a[3].sigmoid()
        c = f * c + i * a[2].tanh()
        h = o * c.tanh()
        outs.append(h)
    return torch.stack(outs), h, c


def _gru_autograd(gates_x, h0, weight_hh, bias_hh, mask):
    T, G, _N, H = gates_x.shape
    w_t = weight_hh.view(G, H, H).transpose(1, 2)
    h, outs = h0, []
    for t in range(T):
        gh = torch.baddbmm(bias_hh.view(G, 1, H), _masked(h, mask, G), w_t)
        r = (gates_x[t, 0] + gh[0]).sigmoid()
        z = (gates_x[t, 1] + gh[1]).sigmoid()
        n = (gates_x[t, 2] + r * gh[2]).tanh()
        h = (1.0 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs), h


def lstm_recurrence(
    gates_x: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    hidden_mask: Tensor | None = None,
    *,
    backend: Backend = "manual",
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Run an LSTM layer's recurrence with a per-sequence mask on :math:`h_{t-1}`.

    Parameters
    ----------
    gates_x : Tensor of shape (T, 4, N, H)
        Input part of the gate pre-activations, both biases included, gates ``i, f, g, o``.
    h0, c0 : Tensor of shape (N, H)
        Initial state.
    weight_hh : Tensor of shape (4H, H)
        torch's ``weight_hh_l{k}``.
    hidden_mask : Tensor of shape (4, N, H) or (1, N, H), optional
        Untied (per gate) or tied recurrent mask; ``None`` for no dropout.
    backend : {"manual", "autograd"}
        Hand-written backward pass, or the plain autograd loop (the reference).

    Returns
    -------
    output : Tensor of shape (T, N, H)
    h_n, c_n : Tensor of shape (N, H)

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import lstm_recurrence
    >>> _ = torch.manual_seed(0)  # allclose at float32 tolerance: fixed inputs
    >>> gx, h0 = torch.randn(5, 4, 2, 3), torch.zeros(2, 3)
    >>> w = torch.randn(12, 3)
    >>> out, h, c = lstm_recurrence(gx, h0, h0, w)
    >>> ref, _, _ = lstm_recurrence(gx, h0, h0, w, backend="autograd")
    >>> out.shape, torch.allclose(out, ref), torch.equal(out[-1], h)
    (torch.Size([5, 2, 3]), True, True)
    """
    check_choice("backend", backend, ("manual", "autograd"))
    if backend == "autograd":
        return _lstm_autograd(gates_x, h0, c0, weight_hh, hidden_mask)
    return _LSTMRecurrence.apply(gates_x, h0, c0, weight_hh, hidden_mask)


def gru_recurrence(
    gates_x: Tensor,
    h0: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None = None,
    hidden_mask: Tensor | None = None,
    *,
    backend: Backend = "manual",
) -> tuple[Tensor, Tensor]:
    r"""Run a GRU layer's recurrence with a per-sequence mask on :math:`h_{t-1}`.

    Parameters
    ----------
    gates_x : Tensor of shape (T, 3, N, H)
        Input part of the gate pre-activations with ``bias_ih``, gates ``r, z, n``.
    h0 : Tensor of shape (N, H)
        Initial state.
    weight_hh : Tensor of shape (3H, H)
        torch's ``weight_hh_l{k}``.
    bias_hh : Tensor of shape (3H,), optional
        torch's ``bias_hh_l{k}`` (inside the reset gate's product for ``n``).
    hidden_mask : Tensor of shape (3, N, H) or (1, N, H), optional
        Untied (per gate) or tied recurrent mask.
    backend : {"manual", "autograd"}
        Hand-written backward pass, or the plain autograd loop (the reference).

    Returns
    -------
    output : Tensor of shape (T, N, H)
    h_n : Tensor of shape (N, H)

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import gru_recurrence
    >>> _ = torch.manual_seed(0)  # allclose at float32 tolerance: fixed inputs
    >>> gx, h0, w = torch.randn(5, 3, 2, 4), torch.zeros(2, 4), torch.randn(12, 4)
    >>> out, h = gru_recurrence(gx, h0, w)
    >>> torch.allclose(out, gru_recurrence(gx, h0, w, backend="autograd")[0])
    True
    """
    check_choice("backend", backend, ("manual", "autograd"))
    if bias_hh is None:
        bias_hh = weight_hh.new_zeros(weight_hh.shape[0])
    if backend == "autograd":
        return _gru_autograd(gates_x, h0, weight_hh, bias_hh, hidden_mask)
    return _GRURecurrence.apply(gates_x, h0, weight_hh, bias_hh, hidden_mask)
