"""R-Drop as a training objective: two dropout passes in one forward on ``[x; x]``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from bayesdrop._validation import check_choice, check_module, check_positive, fail
from bayesdrop.functional._rdrop import rdrop_loss, rdrop_mse_loss, symmetric_kl
from bayesdrop.nn._sampling import noise_modules

__all__ = ["RDrop", "RDropOutput"]

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class RDropOutput:
    """The result of one :class:`RDrop` forward.

    Attributes
    ----------
    loss : Tensor
        ``data_loss + alpha * consistency``, the scalar to minimise.
    data_loss : Tensor
        Both passes' losses: mean CE1 + mean CE2 (classification) or MSE1 + MSE2
        (regression).
    consistency : Tensor
        Mean symmetric KL ``(KL(P1||P2) + KL(P2||P1)) / 2`` (classification) or
        ``MSE(out1, out2)`` (regression), before the ``alpha`` weight.
    output : Tensor
        The two passes' outputs (logits, or predictions) averaged: ``(out1 + out2) / 2``.
    output1, output2 : Tensor
        The outputs of the first and second pass (for probabilities averaged over passes,
        use ``(output1.softmax(-1) + output2.softmax(-1)) / 2``).
    """

    loss: Tensor
    data_loss: Tensor
    consistency: Tensor
    output: Tensor
    output1: Tensor
    output2: Tensor


def _duplicate(inputs: Tensor | Sequence[Tensor]) -> tuple[tuple[Tensor, ...], int]:
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    if not isinstance(inputs, (tuple, list)) or not inputs:
        got = type(inputs).__name__
        fail("x", "a tensor or a non-empty tuple of tensors", got, type_error=True)
    batch = -1
    for t in inputs:
        if not isinstance(t, Tensor) or t.dim() == 0:
            fail("x", "tensors with a batch dimension", type(t).__name__, type_error=True)
        if batch >= 0 and t.shape[0] != batch:
            fail("x", f"tensors with the same batch size {batch}", f"batch size {t.shape[0]}")
        batch = int(t.shape[0])
    return tuple(torch.cat([t, t], dim=0) for t in inputs), batch


class RDrop(nn.Module):
    r"""R-Drop training objective: both dropout passes as one forward on ``[x; x]``.

    The batch is concatenated with itself, the model runs once on the doubled batch (every
    row draws its own dropout masks, so the two halves are two independent sub-models, as in
    the reference fairseq criterion), the output is split into the two passes and

    .. math::

        \mathcal L = \mathrm{CE}_1 + \mathrm{CE}_2
        + \alpha \cdot \tfrac12 \left[\mathrm{KL}(P_1\|P_2) + \mathrm{KL}(P_2\|P_1)\right]

    (means over non-ignored tokens, KL summed over classes: :func:`bayesdrop.rdrop_loss`).
    For ``task="regression"`` the loss is :func:`bayesdrop.functional.rdrop_mse_loss`.

    The model must be sampling (training mode, or under :func:`bayesdrop.sampling`); in eval
    mode both halves agree and the KL is zero. One forward on ``2N`` rows equals two forwards
    on ``N`` rows only for layers that treat rows independently: BatchNorm in training mode
    sees the doubled batch (its statistics are those of ``x`` itself, counted twice).

    Parameters
    ----------
    model : nn.Module
        The network; it must contain dropout (else both passes agree and R-Drop is plain
        training).
    alpha : float, default 1.0
        Weight of the consistency term (see :func:`bayesdrop.rdrop_loss` for how reference
        codes' alphas map to this one).
    task : {"classification", "regression"}, default "classification"
    ignore_index : int, default -100
        Target value ignored in classification (padding tokens).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    >>> out = bayesdrop.RDrop(net, alpha=2.0)(torch.randn(8, 5), torch.randint(0, 3, (8,)))
    >>> out.output.shape, bool(out.consistency > 0)
    (torch.Size([8, 3]), True)
    >>> torch.allclose(out.loss, out.data_loss + 2.0 * out.consistency)
    True
    """

    def __init__(
        self,
        model: nn.Module,
        alpha: float = 1.0,
        *,
        task: Task = "classification",
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.model = check_module("model", model)
        if not noise_modules(model):
            fail(
                "model",
                "a model with dropout",
                f"{type(model).__name__} without any dropout module",
                "R-Drop compares two dropout sub-models; add nn.Dropout or MCDropout layers.",
            )
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        self.task = check_choice("task", task, ("classification", "regression"))
        self.ignore_index = int(ignore_index)

    def forward(self, x: Tensor | Sequence[Tensor], target: Tensor) -> RDropOutput:
        """Run both passes on ``x`` (a tensor, or a tuple of model arguments batched on dim 0).

        ``target`` is the target of one copy of the batch.
        """
        doubled, batch = _duplicate(x)
        out = self.model(*doubled)
        if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != 2 * batch:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            rows = 2 * batch
            fail("model", f"a model returning a tensor with {rows} rows for {rows} inputs", got)
        out1, out2 = out[:batch], out[batch:]
        if self.task == "regression":
            data = rdrop_mse_loss(out1, out2, target, alpha=0.0)
            consistency = (out1 - out2).pow(2).mean()
        else:
            data = rdrop_loss(out1, out2, target, alpha=0.0, ignore_index=self.ignore_index)
            valid = target != self.ignore_index
            consistency = symmetric_kl(out1, out2)[valid].mean()
        return RDropOutput(
            loss=data + self.alpha * consistency,
            data_loss=data,
            consistency=consistency,
            output=(out1 + out2) / 2,
            output1=out1,
            output2=out2,
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, task={self.task!r}"
