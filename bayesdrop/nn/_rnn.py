r"""The recurrence shared by the variational LSTM and GRU (Gal & Ghahramani, 2016); the two
layers are in :mod:`bayesdrop.nn._rnn_layers`.

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
from bayesdrop.nn._base import StochasticModule

__all__ = ["MaskMode", "RNNMasks", "VariationalRNNBase"]

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


class VariationalRNNBase(StochasticModule):
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
