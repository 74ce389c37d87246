"""Consistent dropout masks: sample ``s`` uses the same mask for every point of the pool.

BatchBALD needs :math:`p_s(y \\mid x_i)` for all pool points under ONE weight draw
:math:`\\omega_s`. Ordinary MC dropout draws a fresh mask per row, so the samples of two points
are independent and their joint factorises. Inside :func:`consistent_masks` every supported
dropout module draws, per module, a bank of ``num_samples`` masks once (seeded) and applies
mask ``s`` to every row of sample ``s``, whichever engine repeats the batch (rows are
sample-major: ``k`` samples of ``n`` points arrive as ``k * n`` rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from bayesdrop._random import generator
from bayesdrop._validation import fail
from bayesdrop.nn._mc_dropout import MCDropout, SpatialMCDropout
from bayesdrop.nn._sampling import drop_rate, stochastic_modules
from bayesdrop.predict._selfcheck import skip_scope_check

__all__ = ["MaskBank", "consistent_masks"]

_SPATIAL = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, SpatialMCDropout)
_SUPPORTED = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, MCDropout)


class MaskBank:
    """Per-module banks of masks and the sample counter of the current batch."""

    def __init__(self, num_samples: int, seed: int) -> None:
        self.num_samples, self.seed = num_samples, seed
        self.rows = 0
        self.banks: dict[int, Tensor] = {}
        self.offsets: dict[int, int] = {}

    def start_batch(self, rows: int) -> None:
        """The next passes are for a batch of ``rows`` points."""
        self.rows = rows
        self.offsets = {}

    def mask(self, key: int, x: Tensor, p: float, spatial: bool) -> Tensor:
        """The masks of the next samples, shaped like ``x`` (``k * rows`` rows)."""
        shape = (x.shape[1], *([1] * (x.dim() - 2))) if spatial else tuple(x.shape[1:])
        bank = self.banks.get(key)
        if bank is None or tuple(bank.shape[1:]) != shape:
            stream = generator(self.seed, key)  # one stream per module (see :ref:`seeding`)
            keep = torch.rand((self.num_samples, *shape), generator=stream) >= p
            bank = keep.to(torch.float32) / (1.0 - p)
            self.banks[key] = bank
        if self.rows <= 0 or x.shape[0] % self.rows:
            fail(
                "pool",
                f"batches whose passes hold whole samples ({self.rows} rows each)",
                f"a pass of {x.shape[0]} rows",
            )
        k = x.shape[0] // self.rows
        offset = self.offsets.get(key, 0)
        self.offsets[key] = offset + k
        index = torch.arange(offset, offset + k) % self.num_samples
        chosen = bank[index].to(device=x.device, dtype=x.dtype)  # (k, *shape)
        full = chosen.unsqueeze(1).expand(k, self.rows, *chosen.shape[1:])
        return full.reshape(x.shape[0], *chosen.shape[1:])


def _patched(module: nn.Module, key: int, bank: MaskBank) -> Callable[[Tensor], Any]:
    original = module.forward
    spatial = isinstance(module, _SPATIAL)
    layer = getattr(module, "layer", None) if isinstance(module, MCDropout) else None
    rate = float(drop_rate(module) or 0.0)

    def forward(x: Tensor) -> Any:
        active = module.is_sampling if isinstance(module, MCDropout) else module.training
        if not active:
            return original(x)
        y = x * bank.mask(key, x, rate, spatial)
        return y if layer is None else layer(y)

    return forward


def _check_supported(model: nn.Module) -> list[tuple[str, nn.Module]]:
    found = stochastic_modules(model)
    other = [f"{name} ({type(m).__name__})" for name, m in found if not isinstance(m, _SUPPORTED)]
    if other:
        fail(
            "model",
            "a model whose noise modules all support consistent masks (nn.Dropout, "
            "nn.Dropout1d/2d/3d, bayesdrop.MCDropout)",
            f"other noise modules: {', '.join(other[:6])}",
            "Pass consistent=False to draw independent masks (BatchBALD then cannot see that "
            "two points are redundant), or use a per-point score.",
        )
    return found


@contextmanager
def consistent_masks(model: nn.Module, *, num_samples: int, seed: int = 0) -> Iterator[MaskBank]:
    """Within the block, the model's dropout draws mask ``s`` of a fixed bank for sample ``s``.

    Call ``bank.start_batch(n)`` before predicting each batch of ``n`` points. Each module must
    be called once per forward pass. The forward methods are restored on exit.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> from bayesdrop.active import consistent_masks
    >>> model = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.5), nn.Linear(16, 2))
    >>> x = torch.randn(1, 3).repeat(4, 1)  # four copies of one point
    >>> with consistent_masks(model, num_samples=5) as bank:
    ...     bank.start_batch(4)
    ...     pred = bayesdrop.mc_predict(model, x, num_samples=5, return_samples=True)
    >>> bool((pred.samples == pred.samples[:, :1]).all())  # the same in every sample
    True
    """
    found = _check_supported(model)
    bank = MaskBank(num_samples, seed)
    patched = []
    try:
        for key, (_name, module) in enumerate(found):
            module.forward = _patched(module, key, bank)  # type: ignore[method-assign]
            patched.append(module)
        # every sample's masks are drawn per row by construction; the first-call check's extra
        # pass would advance the bank's sample counter
        with skip_scope_check():
            yield bank
    finally:
        for module in patched:
            del module.forward
