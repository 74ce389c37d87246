"""Per-iteration dropout schedules of "Dropout Reduces Underfitting" (Liu et al., ICML 2023)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from bayesdrop._validation import check_choice, check_positive_int, check_probability, fail

__all__ = ["drop_schedule"]

Mode = Literal["standard", "early", "late"]
Shape = Literal["constant", "linear"]


def drop_schedule(
    drop_rate: float,
    *,
    epochs: int,
    iters_per_epoch: int,
    cutoff_epoch: int = 0,
    mode: Mode = "standard",
    shape: Shape = "constant",
) -> np.ndarray:
    r"""The drop rate of every optimiser step: standard, early or late dropout.

    With :math:`T = \text{epochs} \cdot \text{iters\_per\_epoch}` steps and
    :math:`T_c = \text{cutoff\_epoch} \cdot \text{iters\_per\_epoch}`, step :math:`t`
    (0-based) gets

    .. math::

        p_t = \begin{cases}
            p & \text{standard} \\
            p \;[t < T_c] & \text{early, constant} \\
            p \left(1 - \frac{t}{T_c - 1}\right) [t < T_c] & \text{early, linear} \\
            p \;[t \ge T_c] & \text{late (constant only)}
        \end{cases}

    The early linear ramp is ``np.linspace(p, 0, T_c)``: it starts at exactly :math:`p`, its
    last early step is exactly 0, and with :math:`T_c = 1` it is the single value :math:`p`.
    These are the values of ``drop_scheduler`` in the authors' code
    (facebookresearch/dropout, ``utils.py``), which the training loop indexes with the global
    iteration before each forward pass; :class:`DropoutScheduler` does the same. Where that
    function silently ignored an argument or failed with an assertion, this one raises a
    clear error: ``shape="linear"`` is only defined for ``mode="early"``, ``mode="standard"``
    takes no cutoff, and the cutoff may not lie beyond the last epoch.

    Parameters
    ----------
    drop_rate : float
        The rate :math:`p` in ``[0, 1)``; the paper used 0.1 (dropout) and 0.5 (early
        stochastic depth) for ViT-T, 0.4 (late stochastic depth) for ViT-B.
    epochs : int
        Number of epochs (positive).
    iters_per_epoch : int
        Optimiser steps per epoch (positive).
    cutoff_epoch : int, default 0
        Epoch where early dropout stops / late dropout starts, in ``[0, epochs]``
        (the paper: 50 of 300).
    mode : {"standard", "early", "late"}, default "standard"
    shape : {"constant", "linear"}, default "constant"
        How early dropout goes from :math:`p` to 0 before the cutoff.

    Returns
    -------
    numpy.ndarray of float64, shape (epochs * iters_per_epoch,)
        A numpy array, as in the reference code; index it with the global step.

    Examples
    --------
    >>> from bayesdrop.schedules import drop_schedule
    >>> drop_schedule(0.1, epochs=3, iters_per_epoch=2, cutoff_epoch=1, mode="late").tolist()
    [0.0, 0.0, 0.1, 0.1, 0.1, 0.1]
    >>> s = drop_schedule(0.3, epochs=3, iters_per_epoch=2, cutoff_epoch=2, mode="early",
    ...                   shape="linear")
    >>> [round(v, 2) for v in s.tolist()]
    [0.3, 0.2, 0.1, 0.0, 0.0, 0.0]

    References
    ----------
    Z. Liu, Z. Xu, J. Jin, Z. Shen and T. Darrell. *Dropout Reduces Underfitting.* ICML 2023.
    """
    rate = check_probability("drop_rate", drop_rate)
    epochs = check_positive_int("epochs", epochs)
    iters = check_positive_int("iters_per_epoch", iters_per_epoch)
    cutoff = check_positive_int("cutoff_epoch", cutoff_epoch, allow_zero=True)
    check_choice("mode", mode, ("standard", "early", "late"))
    check_choice("shape", shape, ("constant", "linear"))
    _check_combination(mode, shape, cutoff, epochs)
    total = epochs * iters
    if mode == "standard":
        return np.full(total, rate, dtype=np.float64)
    early_steps = cutoff * iters
    schedule = np.zeros(total, dtype=np.float64)
    if mode == "late":
        schedule[early_steps:] = rate
    elif shape == "linear":
        schedule[:early_steps] = np.linspace(rate, 0.0, early_steps)
    else:
        schedule[:early_steps] = rate
    return schedule


def _check_combination(mode: str, shape: str, cutoff: int, epochs: int) -> None:
    if cutoff > epochs:
        fail(
            "cutoff_epoch",
            f"at most `epochs` ({epochs})",
            cutoff,
            "The cutoff must lie within the schedule.",
        )
    if shape == "linear" and mode != "early":
        fail(
            "shape",
            f"'constant' for mode={mode!r}",
            "'linear'",
            "Only early dropout has a linear ramp (from drop_rate down to 0 at the cutoff).",
        )
    if mode == "standard" and cutoff != 0:
        fail(
            "cutoff_epoch",
            "0 for mode='standard'",
            cutoff,
            "Standard dropout keeps drop_rate throughout; use mode='early' or 'late'.",
        )
