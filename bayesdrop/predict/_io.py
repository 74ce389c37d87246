"""What models take and return: batched inputs, the prediction inside an output, class dims.

Inputs are a tensor, a tuple of positional arguments or a mapping of keyword arguments
(:class:`ModelInputs`). Every tensor with at least one dimension is batched: its first dimension
is the batch and all of them share it; other entries (``None``, flags, 0-d tensors) are passed
through unchanged. Outputs may be tensors, tuples/lists, mappings or ``ModelOutput``-like
objects; :func:`select_output` finds the prediction by a documented rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from bayesdrop._validation import fail

__all__ = [
    "ModelInputs",
    "OutputSpec",
    "as_inputs",
    "batch_first",
    "check_output_spec",
    "classes_last",
    "select_output",
]

OutputSpec = str | int | Callable[[Any], Any] | None


def _is_batched(value: object, batch_dim: int = 0) -> bool:
    return isinstance(value, Tensor) and value.dim() > batch_dim


@dataclass(frozen=True)
class ModelInputs:
    """The arguments of one model call, ``model(*args, **kwargs)``: ``n`` rows along
    ``batch_dim`` of every tensor with more than ``batch_dim`` dimensions."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    n: int = 0
    batch_dim: int = 0

    def call(self, model: Callable[..., Any]) -> Any:
        return model(*self.args, **self.kwargs)

    def map(self, fn: Callable[[Tensor], Tensor]) -> ModelInputs:
        """Apply ``fn`` to every batched tensor (the others pass through)."""

        def one(v: object) -> object:
            return fn(v) if _is_batched(v, self.batch_dim) else v  # type: ignore[arg-type]

        args = tuple(one(a) for a in self.args)
        return ModelInputs(
            args, {k: one(v) for k, v in self.kwargs.items()}, self.n, self.batch_dim
        )

    def rows(self, count: int) -> ModelInputs:
        """The first ``count`` rows of every batched tensor."""
        count = min(count, self.n)
        out = self.map(lambda t: t.narrow(self.batch_dim, 0, count))
        return ModelInputs(out.args, out.kwargs, count, self.batch_dim)

    def tensors(self) -> list[Tensor]:
        values = (*self.args, *self.kwargs.values())
        return [v for v in values if _is_batched(v, self.batch_dim)]

    def to(self, device: torch.device, non_blocking: bool = False) -> ModelInputs:
        return self.map(lambda t: t.to(device, non_blocking=non_blocking))


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def as_inputs(x: object, name: str = "x", batch_dim: int = 0) -> ModelInputs:
    """Wrap a tensor, a tuple/list of positional arguments or a mapping of keyword arguments.

    Raises when there is no batched tensor, a batch of zero rows, or batched tensors whose first
    dimensions differ.
    """
    if isinstance(x, ModelInputs):
        return x
    args: tuple
    kwargs: dict
    if isinstance(x, Tensor):
        args, kwargs = (x,), {}
    elif isinstance(x, Mapping):
        if not all(isinstance(k, str) for k in x):
            fail(name, "a mapping with string keys (keyword arguments)", _describe(x))
        args, kwargs = (), dict(x)
    elif isinstance(x, (tuple, list)):
        args, kwargs = tuple(x), {}
    else:
        fail(
            name,
            "a tensor, a tuple of positional tensors or a mapping of keyword tensors",
            _describe(x),
            type_error=True,
        )
    entries = [(f"{name}[{i}]", v) for i, v in enumerate(args)]
    entries += [(f"{name}[{k!r}]", v) for k, v in kwargs.items()]
    batched = [(label, v) for label, v in entries if _is_batched(v, batch_dim)]
    if not any(isinstance(v, Tensor) for _, v in entries):
        fail(
            name,
            "a tensor, a tuple of positional tensors or a mapping of keyword tensors",
            f"{_describe(x)} without a tensor",
            type_error=True,
        )
    if not batched:
        fail(name, f"at least one tensor with a batch dimension {batch_dim}", _describe(x))
    sizes = {label: int(v.shape[batch_dim]) for label, v in batched}
    n = next(iter(sizes.values()))
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{label}: {size}" for label, size in sizes.items())
        fail(
            name,
            f"tensors that share the batch dimension (dimension {batch_dim})",
            f"batch sizes {listing}",
            "Pass per-example tensors only; constants can be 0-d tensors or Python values.",
        )
    if n == 0:
        fail(name, "a batch with at least one row", "0 rows")
    return ModelInputs(args, kwargs, n, batch_dim)


def check_output_spec(output: object) -> OutputSpec:
    if output is None or callable(output) or isinstance(output, (str, int)):
        if isinstance(output, bool):
            fail("output", "a key, an attribute name, an index or a callable", output)
        return output  # type: ignore[return-value]
    fail(
        "output",
        "None, a key or attribute name (str), an index (int) or a callable",
        repr(output),
        type_error=True,
    )


def _keys(raw: object) -> list[str]:
    if isinstance(raw, Mapping):
        return [str(k) for k in raw]
    return [k for k in vars(raw) if not k.startswith("_")] if hasattr(raw, "__dict__") else []


def _first_tensor(values: list[object]) -> Tensor | None:
    return next((v for v in values if isinstance(v, Tensor)), None)


def select_output(raw: object, output: OutputSpec, task: str) -> Any:
    """The prediction inside a model output.

    ``output`` given: a callable is applied to the output; a string is a key of a mapping (a
    ``ModelOutput`` is one) or an attribute; an integer indexes a tuple or list. Otherwise the
    rule is: a tensor as it is; for ``task="heteroscedastic"`` a pair ``(mean, log_variance)``
    as it is; an object with a tensor ``logits`` (key or attribute) gives ``logits``; a mapping
    or ``ModelOutput`` gives its first tensor value; a tuple or list its first tensor.
    """
    if output is not None:
        return _select_given(raw, output)
    if isinstance(raw, Tensor):
        return raw
    if task == "heteroscedastic" and isinstance(raw, (tuple, list)) and len(raw) == 2:
        return tuple(raw)
    logits = raw.get("logits") if isinstance(raw, Mapping) else getattr(raw, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    found = None
    if isinstance(raw, Mapping):
        found = _first_tensor(list(raw.values()))
    elif isinstance(raw, (tuple, list)):
        found = _first_tensor(list(raw))
    if found is None:
        fail(
            "model",
            "returning a tensor, or a tuple, mapping or ModelOutput holding one",
            _describe(raw),
            "Pass output=... (a key, an attribute name, an index or a function of the output).",
        )
    return found


def _select_given(raw: object, output: OutputSpec) -> Any:
    if callable(output):
        return output(raw)
    if isinstance(output, int):
        if not isinstance(raw, (tuple, list)) or not -len(raw) <= output < len(raw):
            size = len(raw) if isinstance(raw, (tuple, list)) else "no"
            fail("output", f"an index into the model's output ({size} entries)", output)
        return raw[output]  # type: ignore[index]
    if isinstance(raw, Mapping):
        if output in raw:
            return raw[output]
    elif output is not None and hasattr(raw, str(output)):
        return getattr(raw, str(output))
    available = ", ".join(repr(k) for k in _keys(raw)) or "none"
    fail(
        "output",
        f"a key or attribute of the model's output ({type(raw).__name__}: {available})",
        repr(output),
    )


def batch_first(value: Any, batch_dim: int) -> Any:
    """Move dimension ``batch_dim`` of a selected output (or of each of a pair) to the front."""
    if batch_dim == 0:
        return value
    if isinstance(value, (tuple, list)):
        return tuple(batch_first(v, batch_dim) for v in value)
    if not isinstance(value, Tensor) or value.dim() <= batch_dim:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        fail("model", f"returning outputs with a batch dimension {batch_dim}", got)
    return value.movedim(batch_dim, 0)


def classes_last(logits: Tensor, class_dim: int | None, batch_dim: int = 0) -> Tensor:
    """Move the class dimension of sampled outputs ``(k, N, ...)`` to the end.

    ``class_dim`` counts in one model output as the model returns it: 1 (or -1) for ``(N, C)``,
    1 for PyTorch's ``(N, C, H, W)``, -1 for Hugging Face's ``(N, T, C)``, -1 for a
    sequence-first ``(T, N, C)`` (``batch_dim=1``; ``logits`` already has its batch moved
    first). Without it only ``(N, C)`` outputs are accepted: anything larger is ambiguous.
    """
    per_pass = logits.dim() - 1
    if class_dim is None:
        if per_pass > 2:
            fail(
                "class_dim",
                f"given for a model output of {per_pass} dimensions {tuple(logits.shape[1:])}",
                None,
                "Pass class_dim=1 for PyTorch's (N, C, H, W) layout or class_dim=-1 for "
                "Hugging Face's (N, T, C).",
            )
        return logits
    valid = (
        isinstance(class_dim, int)
        and not isinstance(class_dim, bool)
        and -per_pass <= class_dim < per_pass
        and class_dim % per_pass != batch_dim
    )
    if not valid:
        fail(
            "class_dim",
            f"a dimension of the model output other than its batch dimension {batch_dim} "
            f"(an integer in [{-per_pass}, {per_pass - 1}]; output shape per pass, batch "
            f"first: {tuple(logits.shape[1:])})",
            repr(class_dim),
        )
    original = class_dim % per_pass  # in the model's layout; the batch was moved to the front
    dim = original + 1 if original < batch_dim else original
    dim += 1  # the sample dimension
    return logits if dim == logits.dim() - 1 else logits.movedim(dim, -1)
