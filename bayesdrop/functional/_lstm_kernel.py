r"""Fused element-wise work of one LSTM step on the CPU (private; uses numba if installed).

:class:`~bayesdrop.functional._recurrence._LSTMRecurrence` runs each step as one batched matrix
product (in PyTorch) followed by the step's element-wise work. In PyTorch that work is about
eight operations forward and eight backward, each its own pass over the ``(N, H)`` state and its
own dispatch; at the sizes of a word-level language model (``N = 20, H = 200``) the dispatches
and passes cost as much as the products. The kernels here do one step's work in one pass:

- forward step: from the pre-activations :math:`a` of step ``t`` (gates
  ``i, f, g, o``, torch's order) the gates :math:`i, f, o = \sigma(a)`, :math:`g = \tanh(a)`,
  written over :math:`a`; :math:`c_t = f c_{t-1} + i g`; :math:`\tanh(c_t)`;
  :math:`h_t = o \tanh(c_t)`; and the masked copies :math:`h_t \odot m^{(k)}` that the next
  step's product reads (and the weight gradient reads again).
- backward step: with :math:`\bar h` and :math:`\bar c` the gradients reaching :math:`h_t` and
  :math:`c_t` (:math:`\bar h = \bar o_t + \sum_k m^{(k)} \odot r^{(k)}`, :math:`r` the previous
  backward product, or :math:`\partial L / \partial h_n` at the last step),
  :math:`\bar c \mathrel{+}= \bar h\, o (1 - \tanh^2 c_t)` and the gradients of the
  pre-activations :math:`\bar a_i = \bar c\, g\, i (1 - i)`,
  :math:`\bar a_f = \bar c\, c_{t-1} f (1 - f)`, :math:`\bar a_g = \bar c\, i (1 - g^2)`,
  :math:`\bar a_o = \bar h \tanh(c_t)\, o (1 - o)`; then :math:`\bar c \mathrel{*}= f`.

Both need :math:`\tanh` only (:math:`\sigma(x) = \tfrac12 + \tfrac12 \tanh(x / 2)`). In float32
it is Eigen's rational approximation (odd polynomial of degree 13 over an even one of degree 6,
the argument clamped to :math:`\pm 7.905`; absolute error at most :math:`3.6 \cdot 10^{-7}`
over :math:`[-20, 20]`, about 6 units in the last place near :math:`\pm 1`; NaN stays NaN):
plain arithmetic, so that LLVM vectorises the loops (numba's ``math.tanh`` is a scalar libm call,
and PyTorch's float32 ``tanh`` took about 7 ns per entry here, the approximation 1.4 ns). In
float64 it is ``math.tanh``, exact to rounding but scalar and slower than PyTorch, so float64
takes the PyTorch path unless :data:`FLOAT64` is set (the tests set it, to run ``gradcheck`` on
this code).

Where the kernels apply, a forward step is one ``baddbmm`` and one kernel call, a backward step
one kernel call and one ``bmm`` (about 23 us and 13 us of kernel time per step at
``N = 20, H = 200``, against about 75 us forward for PyTorch's element-wise operations). The
arrays are the flat (1-D) numpy views of contiguous tensors made once per pass, and each call
is given the step index; the gradient of the pre-activations may have any layout whose last
dimension is contiguous (its strides are passed). :func:`kernels` returns ``None`` (and the
PyTorch path runs) without numba, off the CPU and for other dtypes; the caller
(``_lstm_kernels`` in :mod:`~bayesdrop.functional._recurrence`) also checks the shapes, because
the kernels do not check bounds.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["kernels"]

#: Above this :math:`|x|` Eigen's float32 approximation is clamped (its value there rounds to 1).
_TANH_CLAMP = 7.90531110763549805

#: Eigen's ``generic_fast_tanh_float``: odd numerator (x^13 ... x^1), even denominator.
_TANH_P = (
    -2.76076847742355e-16,
    2.00018790482477e-13,
    -8.60467152213735e-11,
    5.12229709037114e-08,
    1.48572235717979e-05,
    6.37261928875436e-04,
    4.89352455891786e-03,
)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def _make_tanh32(numba: Any, f32: Any) -> Any:
    """Eigen's rational float32 tanh, with float32 constants (numba types a float as float64)."""
    clamp = f32(_TANH_CLAMP)
    p0, p1, p2, p3, p4, p5, p6 = (f32(v) for v in _TANH_P)
    q0, q1, q2, q3 = (f32(v) for v in _TANH_Q)

    @numba.njit(inline="always", fastmath={"contract"}, error_model="numpy")
    def tanh32(x):  # pragma: no cover (numba)
        # the comparisons are written so that NaN propagates
        x = clamp if x > clamp else x
        x = -clamp if x < -clamp else x
        x2 = x * x
        p = x2 * p0 + p1
        p = x2 * p + p2
        p = x2 * p + p3
        p = x2 * p + p4
        p = x2 * p + p5
        p = x2 * p + p6
        q = x2 * q0 + q1
        q = x2 * q + q2
        q = x2 * q + q3
        return x * p / q

    return tanh32


def _make(numba: Any, tanh: Any, dtype: Any) -> tuple[Any, Any]:
    """The forward and backward step kernels of one dtype around ``tanh``."""
    one, half = dtype(1.0), dtype(0.5)
    jit = numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")

    # Each loop reads and writes 1-D slices indexed from 0 (so that numba's negative-index
    # check is provably dead) and touches few arrays (so that LLVM's run-time alias checks stay
    # within its limit): both are needed for the loops to be vectorised.
    @jit
    def forward_step(acts, cs, tc, out, hm, mask, t, T, NH, nm):  # pragma: no cover (numba)
        a = t * 4 * NH
        s = t * NH
        ifg = acts[a : a + 2 * NH]  # i, f
        for j in range(2 * NH):
            ifg[j] = half + half * tanh(half * ifg[j])
        g = acts[a + 2 * NH : a + 3 * NH]
        for j in range(NH):
            g[j] = tanh(g[j])
        o = acts[a + 3 * NH : a + 4 * NH]
        for j in range(NH):
            o[j] = half + half * tanh(half * o[j])
        i, f = ifg[:NH], ifg[NH:]
        c_prev, c = cs[s : s + NH], cs[s + NH : s + 2 * NH]
        for j in range(NH):
            c[j] = f[j] * c_prev[j] + i[j] * g[j]
        th, h = tc[s : s + NH], out[s : s + NH]
        for j in range(NH):
            th[j] = tanh(c[j])
        for j in range(NH):
            h[j] = o[j] * th[j]
        if t + 1 < T:
            for k in range(nm):
                d = (k * T + t + 1) * NH
                hk, mk = hm[d : d + NH], mask[k * NH : (k + 1) * NH]
                for j in range(NH):
                    hk[j] = h[j] * mk[j]

    @jit
    def backward_step(
        acts, cs, tc, d_out, rec, mask, nm, dh, dc, dg, t, N, H, st, sg, sn, first
    ):  # pragma: no cover (numba)
        NH = N * H
        s = t * NH
        a = t * 4 * NH
        do = d_out[s : s + NH]
        r0, r1, r2, r3 = rec[:NH], rec[NH : 2 * NH], rec[2 * NH : 3 * NH], rec[3 * NH :]
        if first:
            for j in range(NH):
                dh[j] += do[j]
        elif nm == 4:
            m0, m1 = mask[:NH], mask[NH : 2 * NH]
            m2, m3 = mask[2 * NH : 3 * NH], mask[3 * NH :]
            for j in range(NH):
                dh[j] = do[j] + (r0[j] * m0[j] + r1[j] * m1[j] + r2[j] * m2[j] + r3[j] * m3[j])
        elif nm == 1:
            for j in range(NH):
                dh[j] = do[j] + (r0[j] + r1[j] + r2[j] + r3[j]) * mask[j]
        else:
            for j in range(NH):
                dh[j] = do[j] + (r0[j] + r1[j] + r2[j] + r3[j])
        i, f = acts[a : a + NH], acts[a + NH : a + 2 * NH]
        g, o = acts[a + 2 * NH : a + 3 * NH], acts[a + 3 * NH : a + 4 * NH]
        th, c_prev = tc[s : s + NH], cs[s : s + NH]
        for j in range(NH):
            dc[j] += dh[j] * o[j] * (one - th[j] * th[j])
        for n in range(N):
            b, e = t * st + n * sn, n * H
            dgi, dgf = dg[b : b + H], dg[b + sg : b + sg + H]
            dgg, dgo = dg[b + 2 * sg : b + 2 * sg + H], dg[b + 3 * sg : b + 3 * sg + H]
            dcn, dhn = dc[e : e + H], dh[e : e + H]
            i_n, f_n, g_n, o_n = i[e : e + H], f[e : e + H], g[e : e + H], o[e : e + H]
            th_n, cp_n = th[e : e + H], c_prev[e : e + H]
            for col in range(H):
                dgi[col] = dcn[col] * g_n[col] * i_n[col] * (one - i_n[col])
            for col in range(H):
                dgf[col] = dcn[col] * cp_n[col] * f_n[col] * (one - f_n[col])
            for col in range(H):
                dgg[col] = dcn[col] * i_n[col] * (one - g_n[col] * g_n[col])
            for col in range(H):
                dgo[col] = dhn[col] * th_n[col] * o_n[col] * (one - o_n[col])
        for j in range(NH):
            dc[j] *= f[j]

    return forward_step, backward_step


@functools.cache
def _compiled(dtype_name: str) -> tuple[Any, Any] | None:
    try:
        import numba
        import numpy as np
    except ImportError:
        return None
    if dtype_name == "float32":
        return _make(numba, _make_tanh32(numba, np.float32), np.float32)
    return _make(numba, math.tanh, np.float64)


#: Whether float64 runs the kernel too. Off: with its scalar ``math.tanh`` a forward step took
#: 308 us against 147 us for PyTorch's eight operations (N = 20, H = 200, one thread); the tests
#: switch it on, so that the same kernel code is checked by ``gradcheck``.
FLOAT64 = False


def kernels(gates_x: Tensor, *others: Tensor | None) -> tuple[Any, Any] | None:
    """The (forward, backward) step kernels for these tensors, or ``None`` for the PyTorch path.

    They apply when numba imports, to CPU float32 tensors of one dtype (``others``: the state,
    the weight, the mask; float64 too where :data:`FLOAT64` is set).
    """
    dtype = gates_x.dtype
    if dtype is not torch.float32 and not (dtype is torch.float64 and FLOAT64):
        return None
    for t in (gates_x, *others):
        if t is not None and (t.device.type != "cpu" or t.dtype != dtype):
            return None
    return _compiled(str(dtype).removeprefix("torch."))
