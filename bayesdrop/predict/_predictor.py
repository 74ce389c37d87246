"""Streaming Monte-Carlo prediction over a data set: :class:`MCPredictor`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Literal, TypeVar, overload

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from bayesdrop._distributed import check_same_options, context, run_on_every_rank
from bayesdrop._validation import check_choice, fail
from bayesdrop.predict._engines import plan_source
from bayesdrop.predict._io import as_inputs
from bayesdrop.predict._options import options_from
from bayesdrop.predict._results import ClassificationPrediction, RegressionPrediction
from bayesdrop.predict._runner import (
    SeedStream,
    check_input,
    check_model,
    eager_model,
    model_device,
    predict_batch,
    verify_noise,
)
from bayesdrop.predict.distributed import (
    drop_padding,
    gather_prediction,
    local_positions,
    rank_seed,
)

__all__ = ["MCPredictor"]


_P = TypeVar("_P", ClassificationPrediction, RegressionPrediction)


class MCPredictor(Generic[_P]):
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
    num_samples, task, tau, seed, engine, chunk_size, max_memory
        As in :func:`bayesdrop.mc_predict` (the same names, defaults and types: the options
        are declared once, in :class:`bayesdrop.predict.PredictOptions`).
    return_samples, autocast, output, class_dim, batch_dim, verify, noise
        As in :func:`bayesdrop.mc_predict`.
    tolerance : float, default 1e-2
        Stopping rule of ``num_samples="auto"``: the largest Monte-Carlo standard error
        accepted (as in :func:`bayesdrop.mc_predict`).
    max_samples : int, default 1000
        The most samples ``num_samples="auto"`` draws per batch.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 2))
    >>> data = torch.utils.data.TensorDataset(torch.randn(10, 4), torch.zeros(10))
    >>> loader = torch.utils.data.DataLoader(data, batch_size=4)
    >>> pred = bayesdrop.MCPredictor(model, num_samples=8, seed=0, progress=False).predict(loader)
    >>> pred.probs.shape, pred.target.shape
    (torch.Size([10, 2]), torch.Size([10]))
    """

    @overload
    def __init__(
        self: MCPredictor[ClassificationPrediction],
        model: nn.Module,
        *,
        num_samples: int | Literal["auto"] = ...,
        task: Literal["classification"] = ...,
        tau: float | None = ...,
        seed: int | None = ...,
        engine: Literal["auto", "loop", "batched", "cached", "hooked"] = ...,
        chunk_size: int | None = ...,
        max_memory: int | None = ...,
        return_samples: bool = ...,
        tolerance: float = ...,
        max_samples: int = ...,
        autocast: bool | torch.dtype = ...,
        output: str | int | Callable[[Any], Any] | None = ...,
        class_dim: int | None = ...,
        batch_dim: Literal[0, 1] = ...,
        target_key: str | None = ...,
        progress: bool = ...,
        verify: bool = ...,
        noise: str | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: MCPredictor[RegressionPrediction],
        model: nn.Module,
        *,
        num_samples: int | Literal["auto"] = ...,
        task: Literal["regression", "heteroscedastic"],
        tau: float | None = ...,
        seed: int | None = ...,
        engine: Literal["auto", "loop", "batched", "cached", "hooked"] = ...,
        chunk_size: int | None = ...,
        max_memory: int | None = ...,
        return_samples: bool = ...,
        tolerance: float = ...,
        max_samples: int = ...,
        autocast: bool | torch.dtype = ...,
        output: str | int | Callable[[Any], Any] | None = ...,
        class_dim: int | None = ...,
        batch_dim: Literal[0, 1] = ...,
        target_key: str | None = ...,
        progress: bool = ...,
        verify: bool = ...,
        noise: str | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: MCPredictor[Any],
        model: nn.Module,
        *,
        num_samples: int | Literal["auto"] = ...,
        task: Literal["classification", "regression", "heteroscedastic"] = ...,
        tau: float | None = ...,
        seed: int | None = ...,
        engine: Literal["auto", "loop", "batched", "cached", "hooked"] = ...,
        chunk_size: int | None = ...,
        max_memory: int | None = ...,
        return_samples: bool = ...,
        tolerance: float = ...,
        max_samples: int = ...,
        autocast: bool | torch.dtype = ...,
        output: str | int | Callable[[Any], Any] | None = ...,
        class_dim: int | None = ...,
        batch_dim: Literal[0, 1] = ...,
        target_key: str | None = ...,
        progress: bool = ...,
        verify: bool = ...,
        noise: str | None = ...,
    ) -> None: ...

    def __init__(
        self,
        model: nn.Module,
        *,
        num_samples: int | Literal["auto"] = 50,
        task: Literal["classification", "regression", "heteroscedastic"] = "classification",
        tau: float | None = None,
        seed: int | None = None,
        engine: Literal["auto", "loop", "batched", "cached", "hooked"] = "auto",
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
        verify: bool = False,
        noise: str | None = None,
    ) -> None:
        self.settings = options_from(locals()).settings()
        if target_key is not None and not isinstance(target_key, str):
            fail("target_key", "a string (a key of the batches) or None", repr(target_key))
        model, self._note = eager_model(model)
        check_model(model)
        self.model, self.seed, self.progress = model, seed, bool(progress)
        self.target_key = target_key
        self._verified = False

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

    @overload
    def predict(
        self,
        data: Iterable[object] | Tensor,
        *,
        gather: Literal["all", "none"] = ...,
        group: Any = ...,
    ) -> _P: ...

    @overload
    def predict(
        self,
        data: Iterable[object] | Tensor,
        *,
        gather: Literal["rank0"],
        group: Any = ...,
    ) -> _P | None: ...

    def predict(
        self,
        data: Iterable[object] | Tensor,
        *,
        gather: Literal["all", "rank0", "none"] = "all",
        group: Any = None,
    ) -> _P | None:
        """Predict every batch of ``data`` and join the results.

        ``data`` yields tensors, ``(input, target, ...)`` tuples or mappings (see the class
        docstring). A single tensor is one batch. Batches are moved to the model's device; on
        CUDA from pinned memory, one batch ahead, so the copy overlaps the sampling.

        Inside a ``torch.distributed`` job (``torchrun``), each rank predicts the batches of its
        ``DistributedSampler`` with its own random stream (see
        :func:`~bayesdrop.predict.distributed.rank_seed`) and the shards are joined in data-set
        order, the rows the sampler repeats to even out the shards dropped: ``gather="all"``
        returns the whole prediction on every rank, ``"rank0"`` on rank 0 (None elsewhere),
        ``"none"`` this rank's rows only (for streaming metrics, which ``sync()`` their sums).
        Options that differ between ranks and a rank whose model raises are reported on every
        rank.

        Parameters
        ----------
        data : iterable or Tensor
            A ``DataLoader`` or any iterable of batches: tensors, ``(input, target, ...)``
            tuples or mappings of keyword inputs (the entry named ``target_key`` is the
            target). A single tensor is one batch.
        gather : {"all", "rank0", "none"}, default "all"
            Inside a ``torch.distributed`` job: the whole prediction on every rank (``"all"``),
            on rank 0 only (``"rank0"``, None on the other ranks), or this rank's rows only
            (``"none"``). Ignored outside one.
        group : ProcessGroup, optional
            The ``torch.distributed`` process group to predict in; None, the default group.

        Returns
        -------
        ClassificationPrediction or RegressionPrediction or None
            The prediction of every row of ``data`` in order (the type follows ``task``), with
            the targets in ``result.target`` where the batches carry them. None on the ranks
            other than 0 with ``gather="rank0"``; this rank's rows with ``gather="none"``.
        """
        ctx = context(group)
        if not ctx.active:
            return self._predict_local(data, SeedStream(self.seed, model_device(self.model)))
        check_choice("gather", gather, ("all", "rank0", "none"))
        check_same_options(
            ctx, {"options": repr(self.settings), "seed": self.seed, "gather": gather}
        )
        positions = local_positions(data, ctx)
        base = self.seed if self.seed is not None else int(torch.randint(0, 2**62, ()))
        stream = SeedStream(rank_seed(base, ctx.rank), model_device(self.model))
        pred = run_on_every_rank(ctx, lambda: self._predict_local(data, stream))
        if positions is None:  # not sharded (warned): every rank predicted everything
            return None if gather == "rank0" and ctx.rank != 0 else pred
        if gather == "none":
            return drop_padding(pred, positions)
        return gather_prediction(pred, ctx, positions, to_all=gather == "all")

    def _predict_local(self, data: Iterable[object] | Tensor, stream: SeedStream) -> _P:
        batches = [data] if isinstance(data, Tensor) else data
        device = model_device(self.model)
        total = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
        regression = self.settings.task != "classification"
        parts = []
        batch_dim = self.settings.batch_dim
        staged = _prefetch((self._split(b) for b in batches), device, batch_dim)
        for x, target in tqdm(staged, total=total, disable=not self.progress, desc="MC"):
            inputs = check_input(x, device, batch_dim, "data")
            if target is not None:
                _check_target_rows(target, inputs.n, batch_dim)
            if self.settings.verify and not self._verified:
                verify_noise(self.model, inputs, self.settings, self.seed or 0)
                self._verified = True
            # the plans are looked up per batch: a model changed between batches (an attribute,
            # a flag, a re-assigned buffer) is traced and checked anew, never served stale
            plans = plan_source(self.model, self.settings.noise)
            plans.checked = True
            with stream.active():
                part = predict_batch(
                    self.model, inputs, self.settings, plans, target if regression else None
                )
            if self._note:
                part = dataclasses.replace(
                    part, engine_reason=f"{part.engine_reason}; {self._note}"
                )
            if not regression and target is not None:
                part = dataclasses.replace(part, target=target)
            parts.append(part)
        if not parts:
            fail("data", "at least one batch", "an empty iterable")
        return type(parts[0]).concatenate(parts)  # type: ignore[arg-type, return-value]


def _check_target_rows(target: Tensor, n: int, batch_dim: int) -> None:
    """A batch's target has one row per input row (at dimension 0, or at ``batch_dim``)."""
    dims = {0, batch_dim} if target.dim() > batch_dim else {0}
    if target.dim() == 0 or all(target.shape[d] != n for d in dims):
        fail(
            "data",
            f"batches whose target has one row per input row ({n} rows)",
            f"a target of shape {tuple(target.shape)}",
        )


def _move(x: object, target: Tensor | None, device: torch.device | None, batch_dim: int):
    """Inputs and target on ``device``; from CPU to CUDA through pinned memory, asynchronously."""
    inputs = as_inputs(x, "data", batch_dim)
    if device is None:
        return inputs, target
    pin = device.type == "cuda"

    def move(t: Tensor) -> Tensor:
        if t.device == device:
            return t
        if pin and t.device.type == "cpu" and not t.is_pinned():
            t = t.pin_memory()
        return t.to(device, non_blocking=True)

    return inputs.map(move), None if target is None else move(target)


def _prefetch(pairs, device: torch.device | None, batch_dim: int):
    """Yield batches moved to ``device``, the next one's copy started before this one is used."""
    ahead = None
    for x, target in pairs:
        moved = _move(x, target, device, batch_dim)
        if ahead is not None:
            yield ahead
        ahead = moved
    if ahead is not None:
        yield ahead
