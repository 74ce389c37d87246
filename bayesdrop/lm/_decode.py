"""What generation and scoring share: checks of the token tensors, calls of a causal LM with
its cache, chunks of samples as repeated rows, and running sums over the samples (private)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from bayesdrop._validation import check_positive_int, fail
from bayesdrop.functional import entropy
from bayesdrop.nn._sampling import (
    noise_scope,
    stochastic_modules,
)
from bayesdrop.predict._runner import TARGET_ROWS, check_model, eager_model, model_device

__all__ = [
    "CausalLM",
    "check_ids",
    "check_mask",
    "check_token_ids",
    "chunk_sizes",
    "positions",
    "prepare_model",
    "repeat_rows",
    "sample_sums",
]


def _fmt(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def check_ids(name: str, ids: object, device: torch.device | None) -> Tensor:
    """A ``(B, T)`` integer tensor with ``B, T >= 1`` on the model's device."""
    if not isinstance(ids, Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        fail(name, "an integer tensor of token ids, shape (B, T)", _fmt(ids), type_error=True)
    if ids.dim() != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        fail(name, "of shape (B, T) with B, T >= 1", tuple(ids.shape))
    if device is not None and ids.device != device:
        fail(name, f"on the model's device ({device})", f"a tensor on {ids.device}")
    return ids.long()


def check_mask(name: str, mask: object, ids: Tensor, side: str) -> Tensor:
    """A 0/1 mask shaped like ``ids`` (all ones when None), padded on ``side`` only."""
    if mask is None:
        return torch.ones_like(ids)
    if not isinstance(mask, Tensor) or mask.shape != ids.shape:
        got = _fmt(mask)
        fail(name, f"a 0/1 tensor of the shape of the token ids {tuple(ids.shape)}", got)
    if not bool(((mask == 0) | (mask == 1)).all()):
        fail(name, "a mask of 0s and 1s", f"values in {sorted(set(mask.unique().tolist()))[:6]}")
    mask = mask.to(device=ids.device, dtype=torch.long)
    step = mask[:, 1:] - mask[:, :-1]
    if side == "left" and bool((step < 0).any()):
        fix = "Pad prompts on the left (a tokenizer's padding_side='left')."
        fail(name, "left padding (each row's 0s before its tokens)", "a 0 after a 1", fix)
    if side == "right" and bool((step > 0).any()):
        fail(name, "right padding (each row's 0s after its tokens)", "a 1 after a 0")
    if side == "left" and not bool(mask[:, -1].all()):
        fail(name, "a mask with at least one token in every row", "a row of 0s")
    return mask


def positions(mask: Tensor) -> Tensor:
    """Position ids that skip left padding (0 for the first real token of each row)."""
    return (mask.cumsum(-1) - 1).clamp_min(0)


def repeat_rows(t: Tensor, copies: int) -> Tensor:
    """``copies`` stacked copies of a ``(B, ...)`` tensor: row ``s * B + b`` is sample ``s``."""
    return t.repeat(copies, *([1] * (t.dim() - 1)))


def sample_sums(logits: Tensor, copies: int) -> tuple[Tensor, Tensor]:
    """Sums over the ``copies`` samples of the next-token probabilities and of their entropies
    for logits ``(copies * B, ..., V)``: ``(B, ..., V)`` and ``(B, ...)`` in float32 or wider."""
    dtype = torch.promote_types(logits.dtype, torch.float32)
    probs = logits.to(dtype).softmax(-1).unflatten(0, (copies, -1))
    return probs.sum(0), entropy(probs).sum(0)


def chunk_sizes(num_samples: int, chunk_size: int | None, rows: int, one_per_pass: bool):
    """Samples per pass: ``chunk_size`` (default: as many as fit :data:`TARGET_ROWS` rows),
    one when the model's noise is drawn once per call or coupled across the batch."""
    if chunk_size is None:
        chunk_size = max(1, TARGET_ROWS // rows)
    chunk = 1 if one_per_pass else min(num_samples, chunk_size)
    sizes = [chunk] * (num_samples // chunk)
    return sizes + ([num_samples % chunk] if num_samples % chunk else [])


def _cache_keyword(model: nn.Module) -> str:
    """The keyword a Hugging Face causal LM takes its cache by: ``cache`` (transformers >= 5.x)
    or ``past_key_values``; a PEFT wrapper is looked through to its base model."""
    params = inspect.signature(model.forward).parameters
    for keyword in ("cache", "past_key_values"):
        if keyword in params:
            return keyword
    base = getattr(model, "get_base_model", None)
    if callable(base) and isinstance(base(), nn.Module) and base() is not model:
        return _cache_keyword(base())
    return "past_key_values"


def _field(output: object, name: str) -> object:
    if isinstance(output, Mapping):
        return output.get(name)
    return getattr(output, name, None)


class CausalLM:
    """Calls of a causal LM with the Hugging Face convention: keyword ``input_ids``,
    ``attention_mask``, ``position_ids``, ``use_cache`` and the cache; an output with
    ``logits`` and the cache (``cache`` or ``past_key_values``, None without one)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.keyword = _cache_keyword(model)

    def __call__(
        self, ids: Tensor, mask: Tensor, pos: Tensor, cache: object
    ) -> tuple[Tensor, object]:
        kwargs: dict[str, object] = dict(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True
        )
        if cache is not None:
            kwargs[self.keyword] = cache
        output = self.model(**kwargs)
        logits = output if isinstance(output, Tensor) else _field(output, "logits")
        if not isinstance(logits, Tensor) or logits.dim() != 3:
            got = _fmt(logits)
            fail("model", "a causal LM returning logits of shape (B, T, V)", got)
        new = _field(output, "cache")
        return logits, new if new is not None else _field(output, "past_key_values")


def prepare_model(
    model: nn.Module, num_samples: int
) -> tuple[nn.Module, torch.device | None, int, tuple[str, ...], bool]:
    """``(eager model, device, S, names of the noise modules, one sample per pass)``."""
    model, _ = eager_model(model)
    check_model(model)
    num_samples = check_positive_int("num_samples", num_samples)
    noisy = stochastic_modules(model)
    one_per_pass = any(noise_scope(m) not in (None, "row") for _, m in noisy)
    return model, model_device(model), num_samples, tuple(n for n, _ in noisy), one_per_pass


def check_token_ids(name: str, value: int | Sequence[int] | None) -> tuple[int, ...]:
    """None, a token id or a sequence of them, as a tuple."""
    if value is None:
        return ()
    values = [value] if isinstance(value, int) else value
    if not isinstance(values, Sequence):
        fail(name, "None, a token id or a sequence of token ids", _fmt(value), type_error=True)
    return tuple(check_positive_int(name, v, allow_zero=True) for v in values)
