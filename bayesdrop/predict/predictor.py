"""Streaming Monte-Carlo prediction over a data set: :class:`MCPredictor`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from bayesdrop._validation import fail
from bayesdrop.predict.engines import plan_source
from bayesdrop.predict.results import ClassificationPrediction, RegressionPrediction
from bayesdrop.predict.runner import (
    SeedStream,
    check_input,
    check_model,
    make_settings,
    model_device,
    predict_batch,
)

__all__ = ["MCPredictor"]


class MCPredictor:
    r"""A model wrapped for Monte-Carlo dropout prediction over many batches.

    Takes the options of :func:`bayesdrop.mc_predict` once; :meth:`predict` streams a
    ``DataLoader`` (or any iterable of batches), moves each batch to the model's device, reduces
    its samples to running sums at once (memory does not grow with :math:`S`, only with the
    data) and joins the per-batch results along the data dimension. The model is traced once
    for the ``"cached"`` engine.

    Seeds: with ``seed=s``, :meth:`predict` opens a private random stream seeded with ``s``
    and the batches draw their masks from it in order, so the result equals
    ``mc_predict(x_b)`` called batch after batch inside ``torch.random.fork_rng()`` after
    ``torch.manual_seed(s)``. Loading the data (shuffling) uses the global random state as
    usual, and the global state is not moved by the sampling. The result equals ``mc_predict``
    on the concatenated data in distribution (within Monte-Carlo error), not bit for bit: the
    masks are drawn per batch.

    Parameters
    ----------
    model : nn.Module
        A model with dropout (see :func:`bayesdrop.mc_predict`).
    progress : bool, default True
        Show a tqdm progress bar over batches.
    **options
        ``num_samples``, ``task``, ``tau``, ``seed``, ``engine``, ``chunk_size``,
        ``max_memory``, ``return_samples``, ``tolerance``, ``max_samples``, ``autocast``, as
        in :func:`bayesdrop.mc_predict`.

    Examples
    --------
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 2))
    >>> data = torch.utils.data.TensorDataset(torch.randn(10, 4), torch.zeros(10))
    >>> loader = torch.utils.data.DataLoader(data, batch_size=4)
    >>> pred = bayesdrop.MCPredictor(model, num_samples=8, seed=0, progress=False).predict(loader)
    >>> pred.probs.shape
    torch.Size([10, 2])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        num_samples: int | Literal["auto"] = 50,
        task: Literal["classification", "regression", "heteroscedastic"] = "classification",
        tau: float | None = None,
        seed: int | None = None,
        engine: Literal["auto", "loop", "batched", "cached"] = "auto",
        chunk_size: int | None = None,
        max_memory: int | None = None,
        return_samples: bool = False,
        tolerance: float = 1e-2,
        max_samples: int = 1000,
        autocast: bool | torch.dtype = False,
        progress: bool = True,
    ) -> None:
        self.settings = make_settings(
            num_samples=num_samples,
            task=task,
            tau=tau,
            engine=engine,
            chunk_size=chunk_size,
            max_memory=max_memory,
            return_samples=return_samples,
            tolerance=tolerance,
            max_samples=max_samples,
            autocast=autocast,
        )
        check_model(model)
        self.model, self.seed, self.progress = model, seed, bool(progress)
        self._plans = plan_source(model)

    def _split(self, batch: object) -> tuple[Tensor, Tensor | None]:
        if isinstance(batch, Tensor):
            return batch, None
        if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
            second = batch[1] if len(batch) > 1 else None
            regression = self.settings.task != "classification"
            return batch[0], second if regression and isinstance(second, Tensor) else None
        fail(
            "data",
            "an iterable of tensors or of (input, target, ...) tuples",
            f"a batch of type {type(batch).__name__}",
            "Wrap dictionary batches in a generator that yields the input tensor.",
            type_error=True,
        )
        raise AssertionError  # unreachable

    def predict(
        self, data: Iterable[object] | Tensor
    ) -> ClassificationPrediction | RegressionPrediction:
        """Predict every batch of ``data`` and join the results.

        ``data`` yields tensors or ``(input, target, ...)`` tuples; for regression tasks the
        second element is used as ``target`` (so ``result.log_likelihood(y)`` works without
        samples). A single tensor is one batch.
        """
        batches = [data] if isinstance(data, Tensor) else data
        device = model_device(self.model)
        total = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
        parts, stream = [], SeedStream(self.seed, device)
        for batch in tqdm(batches, total=total, disable=not self.progress, desc="MC"):
            x, target = self._split(batch)
            if device is not None:
                x = x.to(device, non_blocking=True)
                target = None if target is None else target.to(device, non_blocking=True)
            x = check_input(x, device)
            with stream.active():
                parts.append(predict_batch(self.model, x, self.settings, self._plans, target))
        if not parts:
            fail("data", "at least one batch", "an empty iterable")
        return type(parts[0]).concatenate(parts)  # type: ignore[arg-type]
