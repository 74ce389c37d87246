"""Shared drawing helpers of the displays and reports (private); matplotlib is imported on
first use, which keeps ``import bayesdrop`` light."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bayesdrop._optional import require

__all__ = ["_axes", "_diagonal", "_new_figure", "_np"]

_FIGURE = "Drawing a figure (a display's plot(), a report's figures or its HTML)"


def _new_figure(figsize: tuple[float, float]) -> Any:
    # imported on first plot: keeps `import bayesdrop` light (matplotlib is the `plot` extra)
    Figure = require("matplotlib.figure", _FIGURE).Figure

    return Figure(figsize=figsize, layout="constrained")


def _axes(ax: Any, figsize: tuple[float, float]):
    if ax is not None:
        return ax.figure, ax
    figure = _new_figure(figsize)
    return figure, figure.add_subplot()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _diagonal(ax: Any) -> None:
    ax.plot([0, 1], [0, 1], ls="--", color="0.4", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
