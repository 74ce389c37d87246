"""What :func:`bayesdrop.nn.convert` checks before it swaps a dropout: where the dropout's
output goes (one traced forward pass), which layer it feeds, the keyword arguments of the new
layer, and the edits, applied together."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from bayesdrop._validation import fail
from bayesdrop.nn import _flow
from bayesdrop.nn._base import StochasticModule

__all__ = [
    "ALPHA",
    "CONV",
    "HOW_TO_FOLLOW",
    "LAYER_OPS",
    "SPATIAL",
    "accepts",
    "apply_edits",
    "check_kwargs",
    "concrete_target",
    "data_flow",
    "fast_path_off",
    "never_called",
    "noise_skips",
    "split_inputs",
    "why_not",
]

SPATIAL = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
ALPHA = (nn.AlphaDropout, nn.FeatureAlphaDropout)
CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
LAYER_OPS = frozenset({"linear", "conv1d", "conv2d", "conv3d"})
HOW_TO_FOLLOW = "pass example_inputs= to follow its output through one forward pass"


def split_inputs(example_inputs: Any) -> tuple[tuple, dict[str, Any]]:
    if isinstance(example_inputs, Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    if isinstance(example_inputs, Mapping) and all(isinstance(k, str) for k in example_inputs):
        return (), dict(example_inputs)
    fail(
        "example_inputs",
        "a tensor, a tuple of positional inputs or a mapping of keyword inputs",
        type(example_inputs).__name__,
        "Pass what the model takes, e.g. example_inputs=x or example_inputs=dict(input_ids=ids).",
        type_error=True,
    )


def data_flow(model: nn.Module, example_inputs: Any) -> _flow.Flow:
    if example_inputs is None:
        flow = _flow.fx_flow(model)
        return _flow.static_flow(model, flow.unknown) if flow.unknown else flow
    args, kwargs = split_inputs(example_inputs)
    try:
        return _flow.probe_flow(model, args, kwargs)
    except Exception as exc:
        got = f"inputs on which the forward pass raised {type(exc).__name__}: {exc}"
        fail(
            "example_inputs",
            "inputs the model's forward accepts",
            got[:300],
            "Pass them as model(...) takes them: a tensor, a tuple of positional inputs, or a "
            "dict of keyword inputs (e.g. input_ids and attention_mask).",
        )


def never_called(name: str, flow: _flow.Flow) -> str:
    parent = name.rpartition(".")[0]
    if parent in flow.attention_parents:
        return (
            f"never called: `{parent or 'the model'}` runs fused attention "
            "(scaled_dot_product_attention) and passes it this module's rate as dropout on the "
            "attention probabilities, not on a weighted layer's input"
        )
    if parent in flow.functional:
        return (
            f"never called: `{parent or 'the model'}` passes this module's rate to functional "
            f"dropout (F.{flow.functional[parent]}), e.g. on attention probabilities"
        )
    return "never called in forward (the model reads its rate elsewhere, or does not use it)"


def accepts(use: _flow.Use, modules: dict[str, nn.Module], wanted: tuple) -> bool:
    module = modules.get(use.module or "")
    if not isinstance(module, wanted) or not use.as_input:
        return False
    return use.op in LAYER_OPS or use.op == type(module).__name__


def why_not(call: _flow.Call, modules: dict[str, nn.Module], spatial: bool) -> str:
    uses = call.uses
    listing = ", ".join(dict.fromkeys(_flow._describe(u) for u in uses))
    weighted = list(dict.fromkeys(u.module for u in uses if u.module in modules))
    if all(u.op == _flow.MODEL_OUTPUT for u in uses):
        return "its output is returned by the model, not read by a weighted layer"
    if "softmax" in call.producer:
        return (
            f"drops attention probabilities ({call.producer} -> {listing}), not the input of a "
            "weighted layer"
        )
    if len(weighted) > 1:
        return (
            f"feeds {len(weighted)} weighted layers ({listing}): they share one mask, which one "
            "ConcreteDropout per layer (each with its own mask) would change"
        )
    if len(uses) > 1:
        return (
            f"its output goes to {listing}: besides any weighted layer it also feeds other "
            "operations (e.g. a residual connection), so its mask cannot move onto one layer"
        )
    if weighted:
        module = modules[weighted[0]]
        want = "a Conv1d/2d/3d (a channel mask)" if spatial else "an nn.Linear"
        fix = "" if spatial else "; an elementwise mask on a convolution needs Dropout1d/2d/3d"
        if not accepts(uses[0], modules, (nn.Module,)):
            return f"feeds {listing} ({type(module).__name__}), not as its data input"
        return f"feeds {listing} ({type(module).__name__}), not {want}" + (
            fix if isinstance(module, CONV) else ""
        )
    return (
        f"acts on the output of {call.producer}, which then goes to {listing}: not the input of "
        "a weighted layer (Concrete Dropout wraps the layer whose input it drops)"
    )


def concrete_target(
    name: str, module: _DropoutNd, flow: _flow.Flow, modules: dict[str, nn.Module]
) -> tuple[str | None, str]:
    """``(name of the layer to wrap, "")`` or ``(None, reason to skip)``."""
    p = float(module.p)
    if not 0.0 < p < 1.0:
        return None, f"p = {p:g}: Concrete Dropout needs an initial drop rate strictly in (0, 1)"
    if name not in flow.calls:
        return None, f"{flow.unknown}; {HOW_TO_FOLLOW}"
    calls = flow.calls[name]
    if not calls:
        return None, never_called(name, flow)
    if len(calls) > 1:
        return None, f"called {len(calls)} times in one forward pass (one mask per call site)"
    spatial = isinstance(module, SPATIAL)
    uses = calls[0].uses
    if len(uses) != 1 or not accepts(uses[0], modules, CONV if spatial else (nn.Linear,)):
        return None, why_not(calls[0], modules, spatial)
    target = str(uses[0].module)
    if flow.layer_calls[target] > 1:
        return None, (
            f"it feeds `{target}`, which is also called {flow.layer_calls[target] - 1} more "
            "time(s) on other inputs; wrapping it would drop those inputs too"
        )
    return target, ""


def noise_skips(model: nn.Module) -> list[tuple[str, str]]:
    """Reasons for the dropout a model keeps outside ``_DropoutNd`` modules."""
    skips = []
    for name, m in model.named_modules():
        kind = type(m).__name__
        if isinstance(m, nn.RNNBase) and m.dropout > 0:
            skips.append((name, (
                f"{kind}(dropout={m.dropout:g}) keeps its rate as a float and drops between "
                "stacked layers with a fresh mask per time step: no module to replace and no "
                "Linear to wrap. For variational RNN dropout use bayesdrop.nn.VariationalLSTM "
                "or VariationalGRU"
            )))  # fmt: skip
        elif isinstance(m, nn.MultiheadAttention) and m.dropout > 0:
            skips.append((name, (
                f"MultiheadAttention(dropout={m.dropout:g}) keeps its rate as a float and drops "
                "the attention probabilities inside F.multi_head_attention_forward, not a "
                "weighted layer's input; sampling() samples it as it is"
            )))  # fmt: skip
        elif kind in ("StochasticDepth", "DropPath") and not isinstance(m, StochasticModule):
            rate = getattr(m, "p", getattr(m, "drop_prob", 0.0))
            if isinstance(rate, (int, float)) and rate > 0:
                skips.append((name, (
                    f"{kind}(p={rate:g}) drops whole residual branches per sample (stochastic "
                    "depth), not the input features of a weighted layer; neither MC nor "
                    "Concrete Dropout replaces it"
                )))  # fmt: skip
    return skips


def check_kwargs(cls: type, kwargs: dict[str, Any], taken: tuple[str, ...]) -> None:
    params = inspect.signature(cls).parameters
    allowed = [k for k, v in params.items() if v.kind is v.KEYWORD_ONLY and k not in taken]
    bad = sorted(set(kwargs) - set(allowed))
    if bad:
        fail(
            "kwargs",
            f"keyword arguments of {cls.__name__} ({', '.join(allowed)})",
            ", ".join(bad),
            "Remove them or check their spelling.",
            type_error=True,
        )


def fast_path_off(model: nn.Module, layer_name: str, edits: list) -> None:
    """torch's TransformerEncoderLayer inference fast path reads ``linear2.weight`` directly and
    would skip the wrapper: switch it off for the converted layer (and nested tensors upstream)."""
    parent_name = layer_name.rpartition(".")[0]
    parent = model.get_submodule(parent_name)
    if isinstance(parent, nn.TransformerEncoderLayer):
        edits.append((parent.__dict__, "activation_relu_or_gelu", 0))
        for name, m in model.named_modules():
            inside = not name or parent_name.startswith(f"{name}.")
            if isinstance(m, nn.TransformerEncoder) and inside:
                edits.append((m.__dict__, "use_nested_tensor", False))


def apply_edits(edits: list[tuple[dict, str, Any]]) -> None:
    """Set every ``table[key] = value``; undo all of them if one fails (never half-converted)."""
    missing = object()
    done: list[tuple[dict, str, Any]] = []
    try:
        for table, key, value in edits:
            done.append((table, key, table.get(key, missing)))
            table[key] = value
    except BaseException:
        for table, key, old in reversed(done):
            if old is missing:
                table.pop(key, None)
            else:
                table[key] = old
        raise
