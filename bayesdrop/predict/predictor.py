"""Streaming Monte-Carlo prediction over a data set: :class:`MCPredictor`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from bayesdrop._validation import fail
from bayesdrop.predict.engines import plan_source
from bayesdrop.predict.io import as_inputs
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

    Batches are what a ``DataLoader`` yields: a tensor (the input); a tuple or list
    ``(input, target, ...)`` whose first element is the input (itself a tensor, a tuple of
    positional tensors or a mapping of keyword tensors) and whose second is the target; or a
    mapping (a tokenised batch) whose entries are the model's keyword arguments, except the
    entry named by ``target_key``, which is the target. Targets are kept in
    ``result.target``; for regression they also give the per-point log-likelihood.

    Parameters
    ----------
    model : nn.Module
        A model with dropout (see :func:`bayesdrop.mc_predict`).
    target_key : str, optional
        For mapping batches: the key of the target (Hugging Face's ``"labels"``), removed from
        the model's inputs. None: every entry goes to the model and there is no target.
    progress : bool, default True
        Show a tqdm progress bar over batches.
    **options
        ``num_samples``, ``task``, ``tau``, ``seed``, ``engine``, ``chunk_size``,
        ``max_memory``, ``return_samples``, ``tolerance``, ``max_samples``, ``autocast``,
        ``output``, ``class_dim``, ``batch_dim``, as in :func:`bayesdrop.mc_predict`.

    Examples
    --------
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 2))
    >>> data = torch.utils.data.TensorDataset(torch.randn(10, 4), torch.zeros(10))
    >>> loader = torch.utils.data.DataLoader(data, batch_size=4)
    >>> pred = bayesdrop.MCPredictor(model, num_samples=8, seed=0, progress=False).predict(loader)
    >>> pred.probs.shape, pred.target.shape
    (torch.Size([10, 2]), torch.Size([10]))
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
        output: str | int | Callable[[Any], Any] | None = None,
        class_dim: int | None = None,
        batch_dim: Literal[0, 1] = 0,
        target_key: str | None = None,
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
            output=output,
            class_dim=class_dim,
            batch_dim=batch_dim,
        )
        if target_key is not None and not isinstance(target_key, str):
            fail("target_key", "a string (a key of the batches) or None", repr(target_key))
        check_model(model)
        self.model, self.seed, self.progress = model, seed, bool(progress)
        self.target_key = target_key
        self._plans = plan_source(model)

    def _split(self, batch: object) -> tuple[object, Tensor | None]:
        if isinstance(batch, Tensor):
            return batch, None
        if isinstance(batch, Mapping):
            inputs = dict(batch)
            if self.target_key is None:
                return inputs, None
            if self.target_key not in inputs:
                fail(
                    "target_key",
                    f"a key of the batches ({', '.join(repr(k) for k in inputs)})",
                    repr(self.target_key),
                )
            target = inputs.pop(self.target_key)
            return inputs, target if isinstance(target, Tensor) else None
        if isinstance(batch, (tuple, list)) and batch:
            second = batch[1] if len(batch) > 1 else None
            return batch[0], second if isinstance(second, Tensor) else None
        fail(
            "data",
            "an iterable of tensors, (input, target, ...) tuples or mappings of tensors",
            f"a batch of type {type(batch).__name__}",
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
        regression = self.settings.task != "classification"
        for batch in tqdm(batches, total=total, disable=not self.progress, desc="MC"):
            x, target = self._split(batch)
            inputs = as_inputs(x, "data", self.settings.batch_dim)
            if device is not None:
                inputs = inputs.to(device, non_blocking=True)
                target = None if target is None else target.to(device, non_blocking=True)
            inputs = check_input(inputs, device, self.settings.batch_dim, "data")
            with stream.active():
                part = predict_batch(
                    self.model, inputs, self.settings, self._plans, target if regression else None
                )
            if not regression and target is not None:
                part = dataclasses.replace(part, target=target)
            parts.append(part)
        if not parts:
            fail("data", "at least one batch", "an empty iterable")
        return type(parts[0]).concatenate(parts)  # type: ignore[arg-type]
