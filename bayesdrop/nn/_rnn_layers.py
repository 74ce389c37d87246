"""The variational LSTM and GRU layers (Gal & Ghahramani, 2016) on the shared recurrence of
:mod:`bayesdrop.nn._rnn`."""

from __future__ import annotations

import torch
from torch import Tensor

from bayesdrop import functional as BF
from bayesdrop._validation import (
    fail,
)
from bayesdrop.nn._rnn import VariationalRNNBase

__all__ = ["VariationalGRU", "VariationalLSTM"]


_DOC_COMMON = r"""
    Parameters
    ----------
    input_size, hidden_size : int
        Features of the input and of the state.
    num_layers : int, default 1
        Stacked layers.
    bias : bool, default True
        Whether the layers have ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Input and output are ``(N, T, F)`` instead of ``(T, N, F)``. The state is
        ``(num_layers, N, H)`` either way, as in torch.
    input_p, hidden_p, output_p : float, default 0.25
        Drop rates on the inputs of every layer (the embedding and the outputs of lower layers),
        on :math:`h_{t-1}` of every layer, and on the top layer's output.
    masks : {"untied", "tied"}, default "untied"
        ``"untied"``: an independent mask per gate (the paper's best); ``"tied"``: one mask
        per connection shared by the gates.
    length_scale : float, default 1e-2
        Prior length-scale :math:`l` of :meth:`kl`.
    backend : {"manual", "autograd"}, default "manual"
        Recurrence with a hand-written backward pass, or the plain autograd loop.

    Notes
    -----
    Masks are sampled in training mode and under :func:`bayesdrop.sampling`, once per call
    and batch row; pass ``masks=module.sample_masks(N)`` to reuse one draw across calls
    (truncated back-propagation, MC evaluation with the state carried through a pass).
    ``kl()`` sums :func:`bayesdrop.functional.mc_dropout_kl` over the weight matrices:

    .. math::

        \mathrm{KL} = \sum_{k} \frac{l^2 (1-p_x)}{2} \lVert W^{(k)}_{ih} \rVert^2
        - G' K_k \mathcal H(p_x) + \frac{l^2 (1-p_h)}{2} \lVert W^{(k)}_{hh} \rVert^2
        - G' H\, \mathcal H(p_h),

    with :math:`G'` the number of masks per connection (gates untied, 1 tied).
"""


class VariationalLSTM(VariationalRNNBase):
    __doc__ = (
        r"""A multi-layer LSTM with variational (per-sequence) dropout masks.

    A drop-in for :class:`torch.nn.LSTM` (same parameters, gate order ``i, f, g, o``, same
    call ``output, (h_n, c_n) = lstm(input, (h_0, c_0))``) whose masks are constant over time:

    .. math::

        \begin{pmatrix} i \\ f \\ o \\ g \end{pmatrix}_t
        = \begin{pmatrix} \sigma \\ \sigma \\ \sigma \\ \tanh \end{pmatrix}
        \left( (x_t \odot z_x^{(\cdot)}) W_{ih}^{(\cdot)\top}
        + (h_{t-1} \odot z_h^{(\cdot)}) W_{hh}^{(\cdot)\top} + b \right)
"""
        + _DOC_COMMON
        + r"""
    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> lstm = bayesdrop.VariationalLSTM(3, 5, num_layers=2, input_p=0.2, hidden_p=0.2)
    >>> ref = nn.LSTM(3, 5, num_layers=2)
    >>> lstm.load_state_dict(ref.state_dict())
    <All keys matched successfully>
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(7, 4, 3)
    >>> out, (h, c) = lstm.eval()(x)
    >>> torch.allclose(out, ref(x)[0], atol=1e-6), tuple(h.shape)
    (True, (2, 4, 5))
    >>> with bayesdrop.sampling(lstm):
    ...     torch.equal(lstm(x)[0], lstm(x)[0])
    False
    """
    )

    num_gates = 4

    def _input_bias(self, b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
        return None if b_ih is None or b_hh is None else b_ih + b_hh

    def _initial_state(self, hx, batch_size: int, x: Tensor) -> tuple[Tensor, Tensor]:
        if hx is None:
            zeros = x.new_zeros(self.num_layers, batch_size, self.hidden_size)
            return zeros, zeros
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            fail("hx", "a tuple (h_0, c_0)", type(hx).__name__, type_error=True)
        return self._check_state("h_0", hx[0], batch_size), self._check_state(
            "c_0", hx[1], batch_size
        )

    def _recur(self, gates_x, k, state, mask):
        _, w_hh, _, _ = self._layer_params(k)
        return BF.lstm_recurrence(gates_x, *state, w_hh, mask, backend=self.backend)

    def _final_state(self, finals: list) -> tuple[Tensor, Tensor]:
        return torch.stack([h for h, _ in finals]), torch.stack([c for _, c in finals])


class VariationalGRU(VariationalRNNBase):
    __doc__ = (
        r"""A multi-layer GRU with variational (per-sequence) dropout masks.

    A drop-in for :class:`torch.nn.GRU` (same parameters, gate order ``r, z, n``, the reset
    gate multiplying :math:`W_{hn} h + b_{hn}`, same call ``output, h_n = gru(input, h_0)``):

    .. math::

        n_t = \tanh\!\left((x_t \odot z_x^{(n)}) W_{in}^\top + b_{in}
        + r_t \odot \left((h_{t-1} \odot z_h^{(n)}) W_{hn}^\top + b_{hn}\right)\right),
        \quad h_t = (1 - u_t) \odot n_t + u_t \odot h_{t-1}
"""
        + _DOC_COMMON
        + r"""
    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> gru = bayesdrop.VariationalGRU(3, 5, batch_first=True, hidden_p=0.3)
    >>> ref = nn.GRU(3, 5, batch_first=True)
    >>> _ = gru.load_state_dict(ref.state_dict())
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(4, 7, 3)
    >>> torch.allclose(gru.eval()(x)[0], ref(x)[0], atol=1e-6)
    True
    """
    )

    num_gates = 3

    def _input_bias(self, b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
        return b_ih

    def _initial_state(self, hx, batch_size: int, x: Tensor) -> tuple[Tensor]:
        if hx is None:
            return (x.new_zeros(self.num_layers, batch_size, self.hidden_size),)
        return (self._check_state("h_0", hx, batch_size),)

    def _recur(self, gates_x, k, state, mask):
        _, w_hh, _, b_hh = self._layer_params(k)
        return BF.gru_recurrence(gates_x, state[0], w_hh, b_hh, mask, backend=self.backend)

    def _final_state(self, finals: list) -> Tensor:
        return torch.stack([h for (h,) in finals])
