"""Per-model regression data for a batch of networks: padding and standardisation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from bayesdrop._validation import fail

__all__ = ["RegressionBatch", "pad_sets"]

ArrayLike = np.ndarray | Tensor


def _as_2d(name: str, value: ArrayLike) -> np.ndarray:
    array = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0:
        fail(name, "non-empty arrays of shape (N, D) or (N,)", array.shape)
    if not np.isfinite(array).all():
        fail(name, "finite (no NaN or inf)", "non-finite values")
    return array


def pad_sets(
    name: str, arrays: Sequence[ArrayLike], *, dtype: torch.dtype, device: torch.device | str | None
) -> tuple[Tensor, Tensor]:
    """Stack ``M`` arrays of shapes ``(N_m, D)`` into ``(M, max N_m, D)`` (zero padding) and
    return it with the counts ``(M,)``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.sweep import pad_sets
    >>> x, n = pad_sets("x", [torch.ones(2, 3), torch.ones(4, 3)], dtype=torch.float32, device=None)
    >>> tuple(x.shape), n.tolist()
    ((2, 4, 3), [2, 4])
    """
    if isinstance(arrays, (np.ndarray, Tensor)) and np.ndim(arrays) == 3:
        arrays = list(arrays)
    if len(arrays) == 0:
        fail(name, "a non-empty sequence of per-model arrays", "an empty one")
    parts = [_as_2d(name, a) for a in arrays]
    width = {p.shape[1] for p in parts}
    if len(width) != 1:
        fail(name, "arrays with the same number of columns", sorted(width))
    counts = [p.shape[0] for p in parts]
    out = np.zeros((len(parts), max(counts), width.pop()))
    for m, part in enumerate(parts):
        out[m, : part.shape[0]] = part
    tensor = torch.as_tensor(out, dtype=dtype, device=device)
    return tensor, torch.as_tensor(counts, device=device)


@dataclass(frozen=True)
class RegressionBatch:
    """Training sets of ``M`` regression models, each standardised with its own statistics.

    Inputs and targets are shifted and scaled by the mean and standard deviation (``ddof=0``)
    of each model's own training set, as in the UCI protocol; input columns with zero spread
    are left unscaled.

    Attributes
    ----------
    x : Tensor, shape (M, N_max, D)
        Standardised inputs, zero-padded beyond each model's ``num_data``.
    y : Tensor, shape (M, N_max)
        Standardised targets.
    num_data : Tensor, shape (M,)
        Training-set size of each model.
    x_mean, x_std : Tensor, shape (M, D)
    y_mean, y_std : Tensor, shape (M,)

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.sweep import RegressionBatch
    >>> data = RegressionBatch.from_arrays([torch.randn(10, 3), torch.randn(7, 3)],
    ...                                    [torch.randn(10), torch.randn(7)])
    >>> tuple(data.x.shape), data.num_data.tolist()
    ((2, 10, 3), [10, 7])
    >>> round(float(data.y[1, :7].std(unbiased=False)), 4)
    1.0
    """

    x: Tensor
    y: Tensor
    num_data: Tensor
    x_mean: Tensor
    x_std: Tensor
    y_mean: Tensor
    y_std: Tensor

    @classmethod
    def from_arrays(
        cls,
        inputs: Sequence[ArrayLike],
        targets: Sequence[ArrayLike],
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> RegressionBatch:
        """Build the batch from one ``(N_m, D)`` input array and ``(N_m,)`` target per model."""
        dtype = dtype or torch.get_default_dtype()
        xs = [_as_2d("inputs", a) for a in inputs]
        ys = [_as_2d("targets", a) for a in targets]
        if len(xs) != len(ys) or any(
            a.shape[0] != b.shape[0] for a, b in zip(xs, ys, strict=False)
        ):
            fail("targets", "one target per input row for every model", "mismatched sizes")
        if any(b.shape[1] != 1 for b in ys):
            fail("targets", "one target column", [b.shape for b in ys])
        x_mean = np.stack([a.mean(0) for a in xs])
        x_std = np.stack([a.std(0) for a in xs])
        x_std[x_std == 0] = 1.0
        y_mean = np.array([b.mean() for b in ys])
        y_std = np.array([b.std() for b in ys])
        y_std[y_std == 0] = 1.0
        x, counts = pad_sets(
            "inputs",
            [(a - mu) / sd for a, mu, sd in zip(xs, x_mean, x_std, strict=False)],
            dtype=dtype,
            device=device,
        )
        y, _ = pad_sets(
            "targets",
            [(b - mu) / sd for b, mu, sd in zip(ys, y_mean, y_std, strict=False)],
            dtype=dtype,
            device=device,
        )
        t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        return cls(x, y[..., 0], counts, t(x_mean), t(x_std), t(y_mean), t(y_std))

    @property
    def num_models(self) -> int:
        """:math:`M`."""
        return self.x.shape[0]

    def standardize_inputs(self, inputs: Sequence[ArrayLike]) -> tuple[Tensor, Tensor]:
        """Pad ``M`` evaluation input sets and standardise each with its model's statistics."""
        x, counts = pad_sets("inputs", inputs, dtype=self.x.dtype, device=self.x.device)
        if x.shape[0] != self.num_models or x.shape[2] != self.x.shape[2]:
            fail(
                "inputs",
                f"{self.num_models} sets of {self.x.shape[2]} columns",
                f"{x.shape[0]} sets of {x.shape[2]}",
            )
        return (x - self.x_mean[:, None]) / self.x_std[:, None], counts
