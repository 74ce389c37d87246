"""Shared core of :func:`bayesdrop.mc_predict` and :class:`bayesdrop.MCPredictor`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bayesdrop._validation import check_positive_int, fail
from bayesdrop._vocabulary import TASKS
from bayesdrop.nn._rnn_layers import VariationalGRU, VariationalLSTM
from bayesdrop.nn._sampling import sampling, stochastic_modules
from bayesdrop.nn._selection import noise_selection
from bayesdrop.predict._accumulators import (
    NUM_GROUPS,
    ClassificationAccumulator,
    RegressionAccumulator,
)
from bayesdrop.predict._checks import check_input, check_model, eager_model, model_device
from bayesdrop.predict._engines import LoopEngine, PlanSource, choose_engine
from bayesdrop.predict._io import (
    ModelInputs,
    OutputSpec,
    batch_first,
    classes_last,
    select_output,
)
from bayesdrop.predict._noise import check_noise, fork_rng
from bayesdrop.predict._options import ENGINES
from bayesdrop.predict._results import ClassificationPrediction, RegressionPrediction
from bayesdrop.predict._selfcheck import check_scope, scope_check_skipped

__all__ = [
    "ENGINES",
    "TARGET_ROWS",
    "TASKS",
    "SeedStream",
    "Settings",
    "check_input",
    "check_model",
    "default_memory_budget",
    "eager_model",
    "make_settings",
    "model_device",
    "predict_batch",
    "prediction_mode",
    "verify_noise",
]

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
    output: OutputSpec = None
    class_dim: int | None = None
    batch_dim: int = 0
    verify: bool = False
    noise: str | None = None


def make_settings(**options: object) -> Settings:
    """Check every option and name the bad one (the options of :class:`PredictOptions`)."""
    from bayesdrop.predict._options import PredictOptions

    return PredictOptions(**options).settings()  # type: ignore[arg-type]


@contextmanager
def prediction_mode(model: nn.Module, noise: str | None = None) -> Iterator[tuple[str, ...] | None]:
    """Eval mode with only the dropouts sampling (with ``noise``, only those it selects:
    :func:`bayesdrop.nn._selection.noise_selection`); every flag restored afterwards. Yields
    the names of the stochastic modules that sample (None without ``noise``: all of them)."""
    switched = [m for m in model.modules() if m.training]
    try:
        for module in switched:
            module.training = False
        with sampling(model), noise_selection(model, noise) as chosen:
            yield chosen
    finally:
        for module in switched:
            module.training = True


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
        with fork_rng(self.device):
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


# Share of the free device memory a pass may use when no budget is given (CUDA only).
DEVICE_MEMORY_FRACTION = 0.5


def default_memory_budget(device: torch.device) -> int | None:
    """Half the free memory of a CUDA device (``torch.cuda.mem_get_info``); None elsewhere,
    where the default chunk of :data:`TARGET_ROWS` rows applies."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(DEVICE_MEMORY_FRACTION * free)


def _selector(settings: Settings):
    def select(raw: object) -> object:
        return batch_first(select_output(raw, settings.output, settings.task), settings.batch_dim)

    return select


def _check_noise(model: nn.Module, inputs: ModelInputs, settings: Settings, **options):
    """:func:`check_noise` with the prediction's engine and output options."""
    return check_noise(
        model,
        inputs,
        engine=settings.engine,
        noise=settings.noise,
        output=settings.output,
        task=settings.task,
        class_dim=settings.class_dim,
        batch_dim=settings.batch_dim,
        tau=settings.tau,
        **options,
    )


def _check_noise_reached(
    model: nn.Module, inputs: ModelInputs, settings: Settings, rounding: float
) -> None:
    """No output moved beyond rounding over every sample (the logits or means, so that a
    saturated softmax whose logits vary does not get here): find out whether noise was missed,
    and say so. Uncertainty of a few units in the last place is not uncertainty: it is nothing
    sampled, and returning it would be a silent number. A check whose samples do spread beyond
    ``rounding`` clears the model: its noise reaches the outputs, rarely (a Concrete dropout
    whose rates collapsed, which warns of itself)."""
    check = _check_noise(model, inputs, settings, num_samples=16)
    if check.sampled_spread > rounding:
        return
    what = (
        "sampling() misses noise the model uses in training"
        if check.missed
        else ("no noise reaches the output")
    )
    fail(
        "model",
        "a model whose sampled outputs vary",
        f"the same output in every sample ({what})",
        check.describe(),
    )


def verify_noise(model: nn.Module, inputs: ModelInputs, settings: Settings, seed: int) -> None:
    """``verify=True``: the oracle test of :func:`check_noise` before predicting; raise on a
    failed check, with its description."""
    check = _check_noise(model, inputs, settings, seed=seed)
    if not check.ok:
        fail(
            "model",
            "a model whose sampled noise agrees with its training-mode noise (verify=True)",
            "a failed check",
            check.describe(),
        )


def _rows_of_work(model: nn.Module, inputs: ModelInputs) -> tuple[int, str]:
    """The rows one pass of the batched engine works on: the batch rows, or its tokens.

    A model that reads token ids (an integer tensor of ``(N, T, ...)``) and has no recurrent
    layer runs every op over all ``N * T`` tokens at once (a transformer), so a pass is full at
    :data:`TARGET_ROWS` tokens: repeating 20 samples of 16 sequences of 64 tokens in one pass
    was 1.4-1.5x slower than a loop on a BERT-style model (issue 27). A recurrent model steps
    through time with ``N`` rows per op, so its rows stay ``N``.
    """
    recurrent = (nn.RNNBase, nn.RNNCellBase, VariationalLSTM, VariationalGRU)
    if any(isinstance(m, recurrent) for m in model.modules()):
        return inputs.n, ""
    per_row = [
        t.select(inputs.batch_dim, 0).numel()
        for t in inputs.tensors()
        if t.dim() > inputs.batch_dim + 1
        and not (t.is_floating_point() or t.is_complex())
        and t.dtype != torch.bool
    ]
    tokens = max(per_row, default=1)
    if tokens <= 1:
        return inputs.n, ""
    return inputs.n * tokens, f" sequences of {tokens} tokens"


def predict_batch(
    model: nn.Module,
    inputs: ModelInputs,
    settings: Settings,
    plans: PlanSource,
    target: Tensor | None = None,
    diagnose: bool = True,
) -> Prediction:
    """Draw the samples of one batch and reduce them (the caller seeds)."""
    total = settings.num_samples or settings.max_samples
    acc = _accumulator(settings, target)
    classify = settings.task == "classification"
    device = inputs.tensors()[0].device

    def add(output: object) -> None:
        if classify and isinstance(output, Tensor):
            output = classes_last(output, settings.class_dim, settings.batch_dim)
        acc.update(output)

    with (
        prediction_mode(model, settings.noise) as chosen,
        torch.no_grad(),
        _autocast(settings, device),
    ):
        select = _selector(settings)
        engine = choose_engine(model, inputs, settings.engine, plans, select, settings.batch_dim)
        # the batched and hooked engines run a transformer's blocks on every token at once
        tokens = engine.name in ("batched", "hooked")
        rows, unit = _rows_of_work(model, inputs) if tokens else (inputs.n, "")
        chunk = settings.chunk_size or max(1, TARGET_ROWS // rows)
        if unit and settings.chunk_size is None and chunk == 2:
            chunk = 1  # 1024+ tokens a pass: two samples per pass measured no faster than one
        if engine.name == "batched" and settings.engine == "auto" and chunk == 1:
            what = f"a batch of {inputs.n}{unit}"
            engine = LoopEngine(model, inputs, select, f"auto: {what} fills a pass")
        done = 0
        budget = settings.max_memory
        if budget is None and settings.chunk_size is None:
            budget = default_memory_budget(device)
        if budget is not None and settings.chunk_size is None:
            output, per_sample = _probe(model, engine)
            add(output)
            done, chunk = 1, max(1, budget // max(per_sample, 1))
        auto = settings.num_samples is None
        while done < total:
            # "auto" doubles the sample count between checks: at most 2x past the stopping point
            step = min(chunk, max(2 * NUM_GROUPS, done) if auto else chunk, total - done)
            if (
                step > 1
                and engine.replicates
                and not plans.scope_checked
                and not scope_check_skipped()
            ):
                # the first pass of several samples for this model: are they independent?
                state = _rng_state(device)
                check = check_scope(model, engine, step, inputs.n, lambda: fork_rng(device))
                plans.scope_checked = True
                if check.reason is not None:
                    plans.one_per_pass = check.reason
                    _set_rng_state(device, state)  # the same stream as a call after this one
                    engine = choose_engine(
                        model, inputs, settings.engine, plans, select, settings.batch_dim
                    )
                    continue
                output = check.output
            else:
                output = engine.sample(step)
            add(output)
            done += step
            if auto and done >= 2 * NUM_GROUPS and acc.converged(settings.tolerance):
                break
        reason = engine.reason
        if chosen is not None:  # a noise= selection
            every = len(stochastic_modules(model))
            shown = ", ".join(chosen[:4]) + (", ..." if len(chosen) > 4 else "")
            reason += (
                f"; noise={settings.noise!r}: {len(chosen)} of {every} noise modules sampled "
                f"({shown}), the others off"
            )
        result = acc.result(engine.name, reason)
    if diagnose and done > 1 and acc.has_zero_spread():
        _check_noise_reached(model, inputs, settings, acc.rounding_spread())
    return result
