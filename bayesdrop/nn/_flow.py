"""Where does each dropout's output go?  Data-flow facts for :func:`bayesdrop.convert` (private).

Three sources, from the most to the least general:

* :func:`probe_flow` runs one forward pass on example inputs and records, with a
  ``TorchFunctionMode`` and module hooks, every operation that reads each dropout call's output
  (following shape-only operations such as ``view`` or ``transpose``); it works for any model.
* :func:`fx_flow` reads the same from a ``torch.fx`` graph, without inputs, where the model
  traces (torchvision and timm models do; torch's transformer layers and Hugging Face models
  do not).
* :func:`static_flow` knows two data flows by construction: ``nn.Sequential`` (each child feeds
  the next) and the feed-forward block of torch's ``TransformerEncoderLayer`` /
  ``TransformerDecoderLayer`` (``linear2(dropout(activation(linear1(x))))``).
"""

from __future__ import annotations

import inspect
import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from bayesdrop.nn._sampling import sampling
from bayesdrop.nn._trace import attributes_kept

# Operations that only move or re-type the values of a tensor: a dropout mask applied before
# them is the same elementwise mask applied after them.
_PASS_THROUGH = frozenset(
    "view view_as reshape reshape_as flatten unflatten permute transpose t contiguous squeeze "
    "unsqueeze to type type_as float double half bfloat16 clone".split()
)
_FUNCTIONAL_DROPOUT = frozenset(
    {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout}
)
MODEL_OUTPUT = "the model's output"
# Operations that read only a tensor's shape, dtype or device.
_METADATA = frozenset(
    "new_empty new_zeros new_ones new_full empty_like zeros_like ones_like full_like".split()
)
_ATTENTION_OPS = frozenset({"scaled_dot_product_attention", "multi_head_attention_forward"})


@dataclass
class Use:
    """One operation that reads a dropout call's output."""

    op: str  # operation name ("linear", "add", "matmul", ...) or a module type for fx
    module: str | None = None  # the weighted (or called) module it belongs to, if any
    as_input: bool = False  # the dropped tensor is the operation's first (data) argument


@dataclass
class Call:
    """One call of a dropout module."""

    producer: str  # what made its input, e.g. "softmax" or "linear `encoder.0.dense`"
    uses: list[Use] = field(default_factory=list)


@dataclass
class Flow:
    """Data-flow facts about a model's dropout modules.

    ``calls[name]`` is absent when nothing is known about that dropout (see ``unknown``),
    and an empty list when it is never called in forward.
    """

    calls: dict[str, list[Call]] = field(default_factory=dict)
    layer_calls: Counter = field(default_factory=Counter)  # module name -> times called
    functional: dict[str, str] = field(default_factory=dict)  # module name -> dropout op
    attention_parents: set[str] = field(default_factory=set)  # modules calling fused attention
    unknown: str = ""  # why the dropouts not in `calls` could not be followed


def op_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or str(func)
    return name.strip("_") if name.startswith("__") else name


def _describe(use: Use) -> str:
    return f"{use.op} `{use.module}`" if use.module is not None else use.op


def describe_producer(op: str, module: str | None) -> str:
    return _describe(Use(op, module))


# --------------------------------------------------------------------------------------------
# 1. One forward pass with example inputs


class _Recorder(TorchFunctionMode):
    def __init__(self, params: dict[int, str]) -> None:
        super().__init__()
        self.params = params
        self.tags: dict[int, tuple[weakref.ref, str, int]] = {}  # tensor -> (ref, dropout, call)
        self.made_by: dict[int, tuple[weakref.ref, str]] = {}  # tensor -> (ref, producer)
        self.stack: list[str] = []
        self.flow = Flow()
        self.paused = False

    def lookup(self, table: dict, t: Any) -> Any:
        if not isinstance(t, Tensor):
            return None
        entry = table.get(id(t))
        return entry[1:] if entry is not None and entry[0]() is t else None

    def tag(self, t: Tensor, value: tuple) -> None:
        self.tags[id(t)] = (weakref.ref(t), *value)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.paused:
            return out
        name = op_name(func)
        flat, _ = tree_flatten((args, kwargs))
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, Tensor)]
        here = self.stack[-1] if self.stack else ""
        if func in _FUNCTIONAL_DROPOUT and here not in self.flow.calls:
            self.flow.functional.setdefault(here, name)
        if name in _ATTENTION_OPS:
            self.flow.attention_parents.add(here)
        owner = next((self.params[id(a)] for a in flat if id(a) in self.params), None)
        first = args[0] if args else None
        if outs and name in _PASS_THROUGH and self.lookup(self.tags, first) is not None:
            for t in outs:
                self.tag(t, self.lookup(self.tags, first))
        elif outs and name not in _METADATA:  # ops returning no tensor (size, dim) read metadata
            for a in flat:
                tagged = self.lookup(self.tags, a)
                if tagged is not None:
                    drop, index = tagged
                    use = Use(name, owner, a is first)
                    self.flow.calls[drop][index].uses.append(use)
        producer = self.lookup(self.made_by, first) if name in _PASS_THROUGH else None
        desc = producer[0] if producer else describe_producer(name, owner)
        for t in outs:
            self.made_by[id(t)] = (weakref.ref(t), desc)
        return out


def probe_flow(model: nn.Module, args: tuple, kwargs: Mapping[str, Any]) -> Flow:
    """Run ``model(*args, **kwargs)`` once (no grad, dropouts sampling, BatchNorm in eval mode,
    global RNG state restored) and record where every dropout call's output goes."""
    params = {id(p): name for name, m in model.named_modules() for p in m.parameters(recurse=False)}
    rec = _Recorder(params)
    handles = []

    def enter(name: str, module: nn.Module, inputs: tuple) -> None:
        rec.stack.append(name)
        rec.flow.layer_calls[name] += 1
        if isinstance(module, _DropoutNd):
            made = rec.lookup(rec.made_by, inputs[0] if inputs else None)
            rec.flow.calls[name].append(Call(made[0] if made else "an input of the model"))

    def leave(name: str, module: nn.Module, inputs: tuple, out: Any) -> Any:
        rec.stack.pop()
        if isinstance(module, _DropoutNd) and isinstance(out, Tensor):
            rec.paused = True
            try:
                out = out.view_as(out)  # a fresh tensor, even when dropout returned its input
            finally:
                rec.paused = False
            rec.tag(out, (name, len(rec.flow.calls[name]) - 1))
            return out
        return None

    for name, module in model.named_modules():
        if isinstance(module, _DropoutNd):
            rec.flow.calls[name] = []
        handles.append(module.register_forward_pre_hook(lambda m, i, n=name: enter(n, m, i)))
        handles.append(module.register_forward_hook(lambda m, i, o, n=name: leave(n, m, i, o)))
    modes = [(m, m.training) for m in model.modules()]
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    try:
        model.eval()
        with torch.random.fork_rng(devices=devices), torch.no_grad(), sampling(model), rec:
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return rec.flow


# --------------------------------------------------------------------------------------------
# 2. torch.fx


def _optional_defaults(model: nn.Module) -> dict[str, Any]:
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return {}
    return {
        k: p.default
        for k, p in sig.parameters.items()
        if isinstance(p.default, (type(None), bool, int, float, str))
        and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def _is_metadata(node: torch.fx.Node) -> bool:
    if node.op == "call_function" and node.target is getattr:
        return True
    return node.op in ("call_method", "call_function") and (
        op_name(node.target) in _METADATA or node.target in ("size", "dim", "numel")
    )


def _pass_through(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(str(node.target)), (nn.Identity, nn.Flatten))
    if node.op in ("call_method", "call_function"):
        return op_name(node.target) in _PASS_THROUGH
    return False


def _fx_uses(node: torch.fx.Node, modules: dict[str, nn.Module], first: bool) -> list[Use]:
    uses: list[Use] = []
    for user in node.users:
        if _is_metadata(user):
            continue
        is_first = bool(user.args) and user.args[0] is node
        if is_first and _pass_through(user, modules):
            uses += _fx_uses(user, modules, first)
        elif user.op == "call_module":
            uses.append(Use(type(modules[str(user.target)]).__name__, str(user.target), is_first))
        elif user.op == "output":
            uses.append(Use(MODEL_OUTPUT))
        else:
            uses.append(Use(op_name(user.target), None, is_first))
    return uses


def _fx_producer(node: Any, modules: dict[str, nn.Module]) -> str:
    while isinstance(node, torch.fx.Node) and node.args and _pass_through(node, modules):
        node = node.args[0]
    if not isinstance(node, torch.fx.Node) or node.op == "placeholder":
        return "an input of the model"
    if node.op == "call_module":
        module = modules[str(node.target)]
        kind = "linear" if isinstance(module, nn.Linear) else type(module).__name__
        return describe_producer(kind, str(node.target))
    return op_name(node.target)


def fx_flow(model: nn.Module) -> Flow:
    """The same facts from a ``torch.fx`` trace; ``Flow.unknown`` says why when it fails."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with sampling(model), attributes_kept(model):
            graph = torch.fx.symbolic_trace(model, concrete_args=_optional_defaults(model)).graph
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:120]
        return Flow(
            unknown=f"torch.fx cannot trace this model ({type(exc).__name__}: {first_line})"
        )
    finally:
        for m, mode in modes:
            m.training = mode
    modules = dict(model.named_modules())
    flow = Flow()
    for name, module in modules.items():
        if isinstance(module, _DropoutNd):
            flow.calls[name] = []
    for node in graph.nodes:
        stack = list(node.meta.get("nn_module_stack", {}))
        here = stack[-1] if stack else ""
        if node.op == "call_module":
            target = str(node.target)
            flow.layer_calls[target] += 1
            if target in flow.calls:
                producer = _fx_producer(node.args[0] if node.args else None, modules)
                flow.calls[target].append(Call(producer, _fx_uses(node, modules, True)))
        elif node.op == "call_function" and node.target in _FUNCTIONAL_DROPOUT:
            flow.functional.setdefault(here, op_name(node.target))
        elif node.op == "call_function" and op_name(node.target) in _ATTENTION_OPS:
            flow.attention_parents.add(here)
    return flow


# --------------------------------------------------------------------------------------------
# 3. Data flows known by construction


def _ff_pattern(layer: nn.Module) -> bool:
    for cls in (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer):
        if isinstance(layer, cls):
            return type(layer)._ff_block is cls._ff_block
    return False


def static_flow(model: nn.Module, why: str) -> Flow:
    """Facts that hold by construction; every other dropout is unknown, because of ``why``."""
    flow = Flow(unknown=why)
    for prefix, parent in model.named_modules():
        dot = f"{prefix}." if prefix else ""
        children = parent._modules
        if type(parent).forward is nn.Sequential.forward:
            keys = list(children)
            for i, key in enumerate(keys):
                if not isinstance(children[key], _DropoutNd):
                    continue
                prev = keys[i - 1] if i > 0 else None
                made = f"the input of `{prefix or 'the model'}`"
                if prev is not None:
                    made = describe_producer(type(children[prev]).__name__, dot + prev)
                uses = []
                if i + 1 < len(keys):
                    nxt = keys[i + 1]
                    uses = [Use(type(children[nxt]).__name__, dot + nxt, True)]
                    flow.layer_calls[dot + nxt] += 1
                flow.calls[dot + key] = [Call(made, uses or [Use(MODEL_OUTPUT)])]
        elif _ff_pattern(parent) and isinstance(children.get("dropout"), _DropoutNd):
            ff = [Use("linear", dot + "linear2", True)]
            flow.calls[dot + "dropout"] = [Call("the feed-forward activation", ff)]
            flow.layer_calls[dot + "linear2"] += 1
            blocks = ["self-attention", "feed-forward"]
            if isinstance(parent, nn.TransformerDecoderLayer):
                blocks = ["self-attention", "cross-attention", "feed-forward"]
            for i, block in enumerate(blocks, 1):
                if isinstance(children.get(f"dropout{i}"), _DropoutNd):
                    residual = [Use("add")]
                    flow.calls[f"{dot}dropout{i}"] = [Call(f"the {block} block", residual)]
    return flow
