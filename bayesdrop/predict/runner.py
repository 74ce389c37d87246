"""Shared core of :func:`bayesdrop.mc_predict` and :class:`bayesdrop.MCPredictor`."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bayesdrop._validation import (
    check_choice,
    check_module,
    check_positive,
    check_positive_int,
    check_tensor,
    fail,
)
from bayesdrop.nn.sampling import find_functional_dropout, sampling, stochastic_modules
from bayesdrop.predict.accumulators import (
    NUM_GROUPS,
    ClassificationAccumulator,
    RegressionAccumulator,
)
from bayesdrop.predict.engines import LoopEngine, PlanSource, choose_engine
from bayesdrop.predict.results import ClassificationPrediction, RegressionPrediction

__all__ = [
    "ENGINES",
    "TARGET_ROWS",
    "TASKS",
    "SeedStream",
    "Settings",
    "check_input",
    "check_model",
    "make_settings",
    "model_device",
    "predict_batch",
    "prediction_mode",
]

TASKS = ("classification", "regression", "heteroscedastic")
ENGINES = ("auto", "loop", "batched", "cached")
# Rows of one repeated pass when neither chunk_size nor max_memory is given: below it the
# per-call overhead dominates, above it caches overflow (benchmarks/mc_predict.py, README).
TARGET_ROWS = 2048
Prediction = ClassificationPrediction | RegressionPrediction


@dataclass(frozen=True)
class Settings:
    """Validated options of one prediction (``num_samples=None`` means ``"auto"``)."""

    task: str
    num_samples: int | None
    tau: float | None
    engine: str
    chunk_size: int | None
    max_memory: int | None
    return_samples: bool
    tolerance: float
    max_samples: int
    autocast: torch.dtype | bool | None


def make_settings(
    *,
    num_samples: int | str,
    task: str,
    tau: float | None,
    engine: str,
    chunk_size: int | None,
    max_memory: int | None,
    return_samples: bool,
    tolerance: float,
    max_samples: int,
    autocast: bool | torch.dtype,
) -> Settings:
    """Check every option and name the bad one."""
    check_choice("task", task, TASKS)
    check_choice("engine", engine, ENGINES)
    auto = num_samples == "auto"
    count = None if auto else check_positive_int("num_samples", num_samples)
    if task == "regression":
        if tau is None:
            fail("tau", "the model precision for task='regression'", None, "Pass tau=...")
        tau = check_positive("tau", tau)
    elif tau is not None:
        fail("tau", "None unless task='regression'", tau)
    if autocast is not False and autocast is not True and not isinstance(autocast, torch.dtype):
        fail("autocast", "a bool or a torch.dtype", repr(autocast), type_error=True)
    return Settings(
        task=task,
        num_samples=count,
        tau=tau,
        engine=engine,
        chunk_size=None if chunk_size is None else check_positive_int("chunk_size", chunk_size),
        max_memory=None if max_memory is None else check_positive_int("max_memory", max_memory),
        return_samples=bool(return_samples),
        tolerance=check_positive("tolerance", tolerance),
        max_samples=check_positive_int("max_samples", max_samples),
        autocast=autocast
        if isinstance(autocast, torch.dtype)
        else (None if not autocast else True),
    )  # type: ignore[arg-type]


def model_device(model: nn.Module) -> torch.device | None:
    """Device of the model's first parameter or buffer (None for a model without either)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return None


def check_model(model: nn.Module) -> None:
    """A model with at least one stochastic module; warn about functional dropout."""
    check_module("model", model)
    functional = find_functional_dropout(model)
    if not stochastic_modules(model):
        fix = "Without dropout there is no Monte-Carlo uncertainty: add nn.Dropout or "
        fix += "bayesdrop.MCDropout layers (or use bayesdrop.convert)."
        if functional:
            fix += f" The functional dropout in {functional} cannot be switched on."
        fail("model", "a model with at least one dropout module", "a model with none", fix)
    if functional:
        warnings.warn(
            f"bayesdrop: modules {functional} call functional dropout (F.dropout), which "
            "sampling() cannot switch on; those dropouts stay off during MC prediction. "
            "Use nn.Dropout modules instead.",
            UserWarning,
            stacklevel=3,
        )


def check_input(x: object, device: torch.device | None) -> Tensor:
    """A batch-first tensor on the model's device."""
    x = check_tensor("x", x)
    if x.dim() == 0 or x.shape[0] == 0:
        fail("x", "a batch-first tensor with at least one row", f"shape {tuple(x.shape)}")
    if device is not None and x.device != device:
        fail(
            "x",
            f"on the model's device ({device})",
            f"a tensor on {x.device}",
            "Move it with x.to(device).",
        )
    return x


@contextmanager
def prediction_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode with only the dropouts sampling; every flag restored afterwards."""
    switched = [m for m in model.modules() if m.training]
    try:
        for module in switched:
            module.training = False
        with sampling(model):
            yield
    finally:
        for module in switched:
            module.training = True


def _fork(device: torch.device | None):
    if device is None or device.type in ("cpu", "meta"):
        return torch.random.fork_rng(devices=[])
    index = device.index if device.index is not None else 0
    return torch.random.fork_rng(devices=[index], device_type=device.type)


def _rng_state(device: torch.device | None) -> tuple[Tensor, Tensor | None]:
    if device is None or device.type in ("cpu", "meta"):
        return torch.get_rng_state(), None
    return torch.get_rng_state(), torch.get_device_module(device).get_rng_state(device)


def _set_rng_state(device: torch.device | None, state: tuple[Tensor, Tensor | None]) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None and device is not None:
        torch.get_device_module(device).set_rng_state(state[1], device)


class SeedStream:
    """A private random stream: seeded once, resumed by each :meth:`active` block.

    Code outside the blocks (a DataLoader shuffling, the user's own sampling) keeps using the
    global random state, which the blocks leave untouched.
    """

    def __init__(self, seed: int | None, device: torch.device | None) -> None:
        if seed is not None:
            seed = check_positive_int("seed", seed, allow_zero=True)
        self.seed, self.device = seed, device
        self._state: tuple[Tensor, Tensor | None] | None = None

    @contextmanager
    def active(self) -> Iterator[None]:
        if self.seed is None:
            yield
            return
        with _fork(self.device):
            if self._state is None:
                torch.manual_seed(self.seed)
            else:
                _set_rng_state(self.device, self._state)
            yield
            self._state = _rng_state(self.device)


def _accumulator(settings: Settings, target: Tensor | None):
    auto = settings.num_samples is None
    if settings.task == "classification":
        if target is not None:
            fail("target", "None for task='classification'", "a tensor", "It is for regression.")
        return ClassificationAccumulator(keep_samples=settings.return_samples, std_errors=auto)
    return RegressionAccumulator(
        tau=settings.tau,
        target=target,
        keep_samples=settings.return_samples,
        std_errors=auto,
    )


def _nbytes(value: object) -> int:
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


def _probe(model: nn.Module, engine) -> tuple[object, int]:
    """One sample with hooks: an estimate of a pass's activation bytes per sample."""
    largest = [0]

    def hook(_module, _inputs, output):
        largest[0] = max(largest[0], _nbytes(output))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        output = engine.sample(1)
    finally:
        for handle in handles:
            handle.remove()
    # live at once in a pass: a layer's input, its output and, for dropout, a mask of the same
    # size, plus the repeated input: about 4x the largest layer output (measured in
    # benchmarks/mc_predict.py, part c)
    return output, 4 * largest[0] + _nbytes(output)


def _autocast(settings: Settings, device: torch.device):
    if settings.autocast is None or settings.autocast is False:
        return nullcontext()
    dtype = settings.autocast if isinstance(settings.autocast, torch.dtype) else None
    return torch.autocast(device_type=device.type, dtype=dtype)


def predict_batch(
    model: nn.Module,
    x: Tensor,
    settings: Settings,
    plans: PlanSource,
    target: Tensor | None = None,
) -> Prediction:
    """Draw the samples of one batch and reduce them (the caller seeds)."""
    total = settings.num_samples or settings.max_samples
    acc = _accumulator(settings, target)
    with prediction_mode(model), torch.no_grad(), _autocast(settings, x.device):
        engine = choose_engine(model, x, settings.engine, plans)
        chunk = settings.chunk_size or max(1, TARGET_ROWS // x.shape[0])
        if engine.name == "batched" and settings.engine == "auto" and chunk == 1:
            engine = LoopEngine(model, x, f"auto: a batch of {x.shape[0]} fills a pass")
        done = 0
        if settings.max_memory is not None and settings.chunk_size is None:
            output, per_sample = _probe(model, engine)
            acc.update(output)
            done, chunk = 1, max(1, settings.max_memory // max(per_sample, 1))
        auto = settings.num_samples is None
        while done < total:
            # "auto" doubles the sample count between checks: at most 2x past the stopping point
            step = min(chunk, max(2 * NUM_GROUPS, done) if auto else chunk, total - done)
            acc.update(engine.sample(step))
            done += step
            if auto and done >= 2 * NUM_GROUPS and acc.converged(settings.tolerance):
                break
        return acc.result(engine.name, engine.reason)
