r"""R-Drop (Liang et al., NeurIPS 2021): make two dropout sub-models agree.

Two forward passes of the same input with independent dropout masks give class distributions
:math:`P_1, P_2`. The loss per token (a row of logits) is

.. math::

    \ell = \mathrm{CE}(P_1, y) + \mathrm{CE}(P_2, y)
           + \alpha \cdot \tfrac12 \left[\mathrm{KL}(P_1 \| P_2) + \mathrm{KL}(P_2 \| P_1)\right],

with each KL summed over classes. The batch loss averages :math:`\ell` over the tokens whose
target is not ``ignore_index``. The symmetric KL has the closed form
:math:`\tfrac12 \sum_c (p_{1c} - p_{2c})(\log p_{1c} - \log p_{2c})`, which is what is computed.

The reference implementations put different constants in front of the KL, so their
:math:`\alpha` values are not portable; :func:`rdrop_loss`'s docstring maps them to this one.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from bayesdrop._validation import check_choice, check_finite, check_positive, check_tensor, fail

__all__ = ["rdrop_loss", "rdrop_mse_loss", "symmetric_kl"]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


def symmetric_kl(logits1: Tensor, logits2: Tensor) -> Tensor:
    r"""Symmetrised KL of the softmax distributions, per row, summed over the last (class) dim.

    .. math::

        \tfrac12\left[\mathrm{KL}(P_1\|P_2) + \mathrm{KL}(P_2\|P_1)\right]
        = \tfrac12 \sum_c (p_{1c} - p_{2c})(\log p_{1c} - \log p_{2c})

    Parameters
    ----------
    logits1, logits2 : Tensor of shape (..., C)
        Logits of the two passes.

    Returns
    -------
    Tensor of shape (...)
        Non-negative; zero where the two distributions agree.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import symmetric_kl
    >>> a = torch.tensor([[0.0, 0.0]])
    >>> b = torch.tensor([[0.0, torch.log(torch.tensor(3.0))]])  # P2 = (1/4, 3/4)
    >>> round(symmetric_kl(a, b).item(), 6)  # (1/8) log 3
    0.137327
    """
    log_p1 = F.log_softmax(logits1, dim=-1)
    log_p2 = F.log_softmax(logits2, dim=-1)
    return 0.5 * ((log_p1.exp() - log_p2.exp()) * (log_p1 - log_p2)).sum(-1)


def _check_pair(name1: str, x1: object, name2: str, x2: object) -> tuple[Tensor, Tensor]:
    x1, x2 = check_tensor(name1, x1), check_tensor(name2, x2)
    if x1.shape != x2.shape:
        fail(
            name2,
            f"of the same shape as `{name1}` {tuple(x1.shape)}",
            f"shape {tuple(x2.shape)}",
            "Both must come from the same input (two passes, or one pass on [x; x] split).",
        )
    return check_finite(name1, x1), check_finite(name2, x2)


def _reduce(per_token: Tensor, valid: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return per_token
    if reduction == "sum":
        return per_token.sum()
    count = int(valid.sum())
    if count == 0:
        fail(
            "target",
            "a target with at least one entry not equal to `ignore_index`",
            "only ignored entries",
            "A mean over zero tokens is undefined; use reduction='sum' or skip the batch.",
        )
    return per_token.sum() / count


def rdrop_loss(
    logits1: Tensor,
    logits2: Tensor,
    target: Tensor,
    *,
    alpha: float = 1.0,
    reduction: Reduction = "mean",
    ignore_index: int = -100,
) -> Tensor:
    r"""R-Drop loss of two dropout passes: both cross-entropies plus the symmetric KL.

    .. math::

        \mathcal L = \frac{1}{|V|} \sum_{i \in V} \Big( -\log p_{1,i}(y_i) - \log p_{2,i}(y_i)
        + \frac{\alpha}{2} \big[\mathrm{KL}(P_{1,i}\|P_{2,i}) + \mathrm{KL}(P_{2,i}\|P_{1,i})\big]
        \Big)

    :math:`V` is the set of tokens (rows) whose target is not ``ignore_index``; each KL is
    summed over the classes (not averaged, unlike ``F.kl_div``'s default). This is equation (3)
    of the paper averaged over tokens, so ``alpha`` here is the paper's :math:`\alpha`.

    The reference implementations scale the KL differently. With :math:`N` the number of
    rows in the (per-pass) batch, their :math:`\alpha` maps to this one as:

    .. list-table::
       :header-rows: 1

       * - reference code (dropreg/R-Drop)
         - its loss
         - this ``alpha``
       * - fairseq ``reg_label_smoothed_cross_entropy`` and ``reg_cross_entropy``
           (``--reg-alpha``: translation 5, summarisation 0.7, language modelling 1.0);
           upstream fairseq's ``label_smoothed_cross_entropy_with_rdrop`` (``--rdrop-alpha``)
         - token sums of CE1 + CE2 + :math:`\alpha_f \cdot \frac12` (KL sums); the trainer
           divides the gradient by the token count
         - :math:`\alpha_f`
       * - HuggingFace BERT ``bert_kl`` (GLUE)
         - mean CE1 + mean CE2 + :math:`0.5 \cdot \frac12` (KL sums over the batch)
         - :math:`N / 2`
       * - ViT ``modeling.py`` (``alpha``, default 0.3)
         - mean CE1 + mean CE2 + :math:`a` (KL sums over the batch, no :math:`\frac12`)
         - :math:`2 N a`

    So fairseq's ``--reg-alpha 5`` is ``alpha=5`` here; the ViT example's ``alpha=0.3`` with
    64 rows per pass is ``alpha=38.4``. fairseq's translation runs also use label
    smoothing 0.1 on the CE terms, which this function does not add.

    Parameters
    ----------
    logits1, logits2 : Tensor of shape (..., C)
        Logits of the two passes over the same inputs (classes in the last dimension, as in
        the reference code; e.g. ``(N, C)`` or ``(N, T, C)``).
    target : Tensor of shape (...)
        Integer class indices.
    alpha : float, default 1.0
        Weight of the symmetric KL, non-negative.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` over non-ignored tokens, ``"sum"``, or the per-token loss (zero where
        ignored).
    ignore_index : int, default -100
        Target value whose tokens contribute nothing (padding).

    Returns
    -------
    Tensor
        A scalar, or the per-token loss of ``target``'s shape for ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import rdrop_loss
    >>> a = torch.tensor([[0.0, 0.0]])
    >>> b = torch.tensor([[0.0, torch.log(torch.tensor(3.0))]])
    >>> y = torch.tensor([1])
    >>> # -log(1/2) - log(3/4) + 2 * (1/8) log 3
    >>> round(rdrop_loss(a, b, y, alpha=2.0).item(), 6)
    1.255482

    References
    ----------
    X. Liang et al. *R-Drop: Regularized Dropout for Neural Networks.* NeurIPS 2021.
    """
    logits1, logits2 = _check_pair("logits1", logits1, "logits2", logits2)
    valid = _check_target(logits1, target, ignore_index)
    alpha = check_positive("alpha", alpha, allow_zero=True)
    check_choice("reduction", reduction, _REDUCTIONS)
    num_classes = logits1.shape[-1]
    flat_target = target.reshape(-1)
    ce = [
        F.cross_entropy(
            lg.reshape(-1, num_classes), flat_target, ignore_index=ignore_index, reduction="none"
        ).reshape(target.shape)
        for lg in (logits1, logits2)
    ]
    kl = torch.where(valid, symmetric_kl(logits1, logits2), torch.zeros((), dtype=ce[0].dtype))
    return _reduce(ce[0] + ce[1] + alpha * kl, valid, reduction)


def _check_target(logits: Tensor, target: object, ignore_index: int) -> Tensor:
    target = check_tensor("target", target)
    if logits.dim() < 2:
        fail("logits1", "of shape (..., C) with a batch dimension", f"shape {tuple(logits.shape)}")
    if target.is_floating_point() or target.dtype == torch.bool:
        fail("target", "integer class indices", f"dtype {target.dtype}", type_error=True)
    if tuple(target.shape) != tuple(logits.shape[:-1]):
        fail(
            "target",
            f"of shape {tuple(logits.shape[:-1])} (the logits without the class dimension)",
            f"shape {tuple(target.shape)}",
        )
    return target != ignore_index


def rdrop_mse_loss(
    prediction1: Tensor,
    prediction2: Tensor,
    target: Tensor,
    *,
    alpha: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""R-Drop for regression: both squared errors plus the squared gap between the passes.

    .. math::

        \mathcal L = \operatorname{mean}\big[(\hat y_1 - y)^2 + (\hat y_2 - y)^2
                     + \alpha\,(\hat y_1 - \hat y_2)^2\big]

    averaged over all elements, as ``F.mse_loss``. With ``alpha=1`` this is the regression
    branch of the reference HuggingFace code (``MSE1 + MSE2 + 1.0 * MSE(out1, out2)``).

    Parameters
    ----------
    prediction1, prediction2 : Tensor
        Outputs of the two passes (same shape).
    target : Tensor
        Regression target of the same shape.
    alpha : float, default 1.0
        Weight of the consistency term, non-negative.
    reduction : {"mean", "sum", "none"}, default "mean"

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.functional import rdrop_mse_loss
    >>> y1, y2, y = torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([2.0])
    >>> rdrop_mse_loss(y1, y2, y, alpha=0.5).item()  # 1 + 1 + 0.5 * 4
    4.0
    """
    prediction1, prediction2 = _check_pair("prediction1", prediction1, "prediction2", prediction2)
    target = check_tensor("target", target)
    if target.shape != prediction1.shape:
        fail("target", f"of shape {tuple(prediction1.shape)}", f"shape {tuple(target.shape)}")
    alpha = check_positive("alpha", alpha, allow_zero=True)
    check_choice("reduction", reduction, _REDUCTIONS)
    per_element = (
        (prediction1 - target).pow(2)
        + (prediction2 - target).pow(2)
        + alpha * (prediction1 - prediction2).pow(2)
    )
    if prediction1.numel() == 0:
        fail("prediction1", "non-empty", "an empty tensor")
    if reduction == "none":
        return per_element
    return per_element.sum() if reduction == "sum" else per_element.mean()
