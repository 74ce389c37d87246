r"""Variational LSTM and GRU layers (Gal & Ghahramani, 2016).

Masks are drawn once per sequence and reused at every time step on the inputs of every layer,
on the recurrent state :math:`h_{t-1}` of every layer and on the top layer's output. The
parameters are named and laid out as in :class:`torch.nn.LSTM` / :class:`torch.nn.GRU`, so a
trained torch RNN loads into these modules (and back) with ``load_state_dict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from bayesdrop import functional as BF
from bayesdrop._validation import (
    check_choice,
    check_positive,
    check_positive_int,
    check_probability,
    fail,
)
from bayesdrop.nn.base import StochasticModule

__all__ = ["RNNMasks", "VariationalGRU", "VariationalLSTM"]

MaskMode = Literal["untied", "tied"]


@dataclass(frozen=True)
class RNNMasks:
    """The masks of one pass of a variational RNN (batch-first, reused at every step).

    Attributes
    ----------
    inputs : tuple of (Tensor or None)
        Per layer, the mask of the layer's input: ``(G, N, input_features)`` untied,
        ``(1, N, input_features)`` tied, ``None`` when its rate is zero.
    hidden : tuple of (Tensor or None)
        Per layer, the mask of :math:`h_{t-1}`: ``(G, N, H)`` or ``(1, N, H)``.
    output : Tensor or None
        Mask of the top layer's output, ``(N, H)``.
    """

    inputs: tuple[Tensor | None, ...]
    hidden: tuple[Tensor | None, ...]
    output: Tensor | None


class _VariationalRNNBase(StochasticModule):
    num_gates = 0

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bias: bool = True,
        batch_first: bool = False,
        input_p: float = 0.25,
        hidden_p: float = 0.25,
        output_p: float = 0.25,
        masks: MaskMode = "untied",
        length_scale: float = 1e-2,
        backend: Literal["manual", "autograd"] = "manual",
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.input_p, self.hidden_p, self.output_p = input_p, hidden_p, output_p
        self.masks = check_choice("masks", masks, ("untied", "tied"))
        self.length_scale = check_positive("length_scale", length_scale)
        self.backend = check_choice("backend", backend, ("manual", "autograd"))
        G, H = self.num_gates, self.hidden_size
        for k in range(self.num_layers):
            fan_in = self.input_size if k == 0 else H
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(G * H, fan_in)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(G * H, H)))
            if self.bias:
                self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(G * H)))
                self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(G * H)))
        self.reset_parameters()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("input_p", "hidden_p", "output_p"):
            value = check_probability(name, value)
        super().__setattr__(name, value)

    @classmethod
    def from_torch(cls, rnn: nn.Module, **kwargs):
        """A variational copy of a trained torch RNN: same sizes, layout, weights, device, dtype.

        ``kwargs`` are the constructor's rates and options (``input_p``, ``masks``, ...).
        """
        want = nn.LSTM if cls.num_gates == 4 else nn.GRU
        if not isinstance(rnn, want):
            fail("rnn", f"a torch.nn.{want.__name__}", type(rnn).__name__, type_error=True)
        base = cast(nn.RNNBase, rnn)
        if base.bidirectional or base.proj_size:
            fail("rnn", "unidirectional and without proj_size", repr(rnn))
        w = next(base.parameters())
        out = cls(base.input_size, base.hidden_size, base.num_layers, bias=base.bias,
                  batch_first=base.batch_first, **kwargs)  # fmt: skip
        out.to(device=w.device, dtype=w.dtype).load_state_dict(base.state_dict())
        return out

    def reset_parameters(self) -> None:
        """torch's initialisation: every parameter from :math:`U(-1/\\sqrt H, 1/\\sqrt H)`."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _layer_params(self, k: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        w_ih, w_hh = getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}")
        if not self.bias:
            return w_ih, w_hh, None, None
        return w_ih, w_hh, getattr(self, f"bias_ih_l{k}"), getattr(self, f"bias_hh_l{k}")

    # Cell-specific parts, defined by the subclasses.
    def _input_bias(self, b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
        raise NotImplementedError

    def _initial_state(self, hx: Any, batch_size: int, x: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def _recur(self, gates_x: Tensor, k: int, state: list[Tensor], mask: Tensor | None):
        raise NotImplementedError

    def _final_state(self, finals: list) -> Any:
        raise NotImplementedError

    # ----------------------------------------------------------------- masks
    def sample_masks(
        self,
        batch_size: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> RNNMasks:
        """Draw the masks of one pass for ``batch_size`` sequences (``None`` where p = 0)."""
        batch_size = check_positive_int("batch_size", batch_size)
        ref = self._layer_params(0)[0]
        kw = {
            "dtype": dtype or ref.dtype,
            "device": device or ref.device,
            "generator": generator,
            "num_gates": self.num_gates if self.masks == "untied" else 1,
        }
        H = self.hidden_size

        def draw(p: float, features: int, **extra) -> Tensor | None:
            return (
                None if p == 0.0 else BF.sequence_mask(batch_size, features, p, **{**kw, **extra})
            )

        inputs = tuple(
            draw(self.input_p, self.input_size if k == 0 else H) for k in range(self.num_layers)
        )
        hidden = tuple(draw(self.hidden_p, H) for _ in range(self.num_layers))
        return RNNMasks(inputs, hidden, draw(self.output_p, H, num_gates=None))

    def _check_masks(self, masks: RNNMasks, batch_size: int) -> None:
        if not isinstance(masks, RNNMasks):
            fail("masks", "an RNNMasks (from sample_masks)", type(masks).__name__, type_error=True)
        tensors = [*masks.inputs, *masks.hidden, masks.output]
        if len(masks.inputs) != self.num_layers or len(masks.hidden) != self.num_layers:
            fail("masks", f"masks for {self.num_layers} layer(s)", f"{len(masks.inputs)}")
        for m in tensors:
            if m is not None and m.shape[-2] != batch_size:
                fail(
                    "masks",
                    f"masks for a batch of {batch_size}",
                    f"a mask of shape {tuple(m.shape)}",
                    "Draw them with sample_masks(batch_size) for this batch.",
                )

    # ----------------------------------------------------------------- checks
    def _check_input(self, x: Tensor) -> Tensor:
        if isinstance(x, PackedSequence):
            fail(
                "input",
                "a padded tensor",
                "a PackedSequence",
                "Pad it with torch.nn.utils.rnn.pad_packed_sequence; masks are per row.",
                type_error=True,
            )
        if not isinstance(x, Tensor):
            fail("input", "a torch.Tensor", type(x).__name__, type_error=True)
        layout = "(batch, seq, features)" if self.batch_first else "(seq, batch, features)"
        if x.dim() != 3:
            fail(
                "input",
                f"a 3-D tensor {layout}",
                f"shape {tuple(x.shape)}",
                "Add a batch dimension of 1 for a single sequence.",
            )
        if x.shape[-1] != self.input_size:
            fail(
                "input",
                f"of feature size input_size={self.input_size}",
                f"shape {tuple(x.shape)} with {x.shape[-1]} features",
            )
        if x.shape[1 if self.batch_first else 0] == 0:
            fail("input", "a sequence of at least one step", f"shape {tuple(x.shape)}")
        return x if not self.batch_first else x.transpose(0, 1)

    def _check_state(self, name: str, state: Tensor, batch_size: int) -> Tensor:
        want = (self.num_layers, batch_size, self.hidden_size)
        if not isinstance(state, Tensor):
            fail(name, "a torch.Tensor", type(state).__name__, type_error=True)
        if tuple(state.shape) != want:
            hint = "The state is (num_layers, batch, hidden_size)"
            if self.batch_first and state.dim() == 3 and state.shape[0] == batch_size:
                hint += " also with batch_first=True, as in torch.nn.LSTM/GRU"
            fail(name, f"of shape {want}", f"shape {tuple(state.shape)}", hint + ".")
        return state

    # ----------------------------------------------------------------- forward
    def _project(self, x: Tensor, k: int, mask: Tensor | None) -> Tensor:
        """Input part of every step's gates in one product: (T, G, N, H)."""
        w_ih, _, b_ih, b_hh = self._layer_params(k)
        G, H = self.num_gates, self.hidden_size
        T, N, In = x.shape
        bias = self._input_bias(b_ih, b_hh)
        if mask is None or mask.shape[0] == 1:
            xm = (x if mask is None else x * mask).reshape(T * N, In)
            gx = xm @ w_ih.t() if bias is None else torch.addmm(bias, xm, w_ih.t())
            # a (T, G, N, H) view; the recurrence takes any strides
            return gx.view(T, N, G, H).transpose(1, 2)
        xm = (x.unsqueeze(0) * mask.unsqueeze(1)).reshape(G, T * N, In)
        w = w_ih.view(G, H, In).transpose(1, 2)
        gx = torch.bmm(xm, w) if bias is None else torch.baddbmm(bias.view(G, 1, H), xm, w)
        return gx.view(G, T, N, H).transpose(0, 1)

    def forward(self, input: Tensor, hx=None, *, masks: RNNMasks | None = None):
        """Run the network on ``input``; see the class docstring for shapes."""
        x = self._check_input(input)
        N = x.shape[1]
        states = self._initial_state(hx, N, x)
        if masks is None and self.is_sampling:
            masks = self.sample_masks(N, dtype=x.dtype, device=x.device)
        if masks is not None:
            self._check_masks(masks, N)
        finals = []
        for k in range(self.num_layers):
            m_in = None if masks is None else masks.inputs[k]
            m_h = None if masks is None else masks.hidden[k]
            gates_x = self._project(x, k, m_in)
            x, *final = self._recur(gates_x, k, [s[k] for s in states], m_h)
            finals.append(final)
        if masks is not None and masks.output is not None:
            x = x * masks.output
        out = x.transpose(0, 1) if self.batch_first else x
        return out, self._final_state(finals)

    def kl(self) -> Tensor:
        r"""KL of the weights' posterior, summed over every ``weight_ih`` and ``weight_hh``.

        Each matrix gets :func:`bayesdrop.functional.mc_dropout_kl` with its own rate and
        :math:`K` = its fan-in times the number of masks on it (G untied, 1 tied); biases are
        excluded. The output mask's KL belongs to the layer that reads the output.
        """
        ref = self._layer_params(0)[0]
        total = torch.zeros((), dtype=ref.dtype, device=ref.device)
        copies = self.num_gates if self.masks == "untied" else 1
        for k in range(self.num_layers):
            w_ih, w_hh, _, _ = self._layer_params(k)
            for w, p in ((w_ih, self.input_p), (w_hh, self.hidden_p)):
                sq = w.pow(2).sum()
                total = total + BF.mc_dropout_kl(sq, p, w.shape[1] * copies, self.length_scale)
        return total

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"batch_first={self.batch_first}, input_p={self.input_p}, "
            f"hidden_p={self.hidden_p}, output_p={self.output_p}, masks={self.masks!r}"
        )


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


class VariationalLSTM(_VariationalRNNBase):
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


class VariationalGRU(_VariationalRNNBase):
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
