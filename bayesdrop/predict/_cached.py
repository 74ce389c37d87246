"""Split a traced model into a deterministic trunk and a stochastic head (torch.fx).

A node of the traced graph is *stochastic* when it calls a stochastic module (see
:func:`bayesdrop.nn.is_stochastic`) or a random function, or when any of its inputs is
stochastic. Everything else that depends on the input is the *trunk*: it is computed once at
batch size ``N``. The trunk's values that stochastic nodes (or the output) read are the
*boundary*; tensors among them whose first dimension is ``N`` are repeated ``k`` times,
sample-major, so the head runs on ``k * N`` rows. Nodes that do not depend on the input at all
(parameters, constants) are copied into the head. A skip connection that bypasses dropout is a
boundary value like any other, so it is repeated, never recomputed and never dropped.
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from bayesdrop.nn._noise_calls import NOISE_FUNCTIONS, RANDOM_METHODS, functional_noise_paused
from bayesdrop.nn._sampling import _REGISTRY, is_noise_module, scope_is_built_in
from bayesdrop.nn._selection import samples
from bayesdrop.nn._trace import attributes_kept
from bayesdrop.predict._io import ModelInputs

__all__ = ["CacheUnavailable", "CachedPlan", "build_plan", "contains_size", "draws_known"]

_INPLACE_OPERATORS = {
    operator.iadd,
    operator.isub,
    operator.imul,
    operator.itruediv,
    operator.ifloordiv,
    operator.ipow,
    operator.iand,
    operator.ior,
    operator.ixor,
}


class CacheUnavailable(Exception):
    """The model cannot be split; the message says why (shown as the engine's reason)."""


class _Tracer(fx.Tracer):
    """Keeps stochastic modules as single leaf calls (their insides are not traced)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return samples(m) or super().is_leaf_module(m, module_qualified_name)


@dataclass(frozen=True)
class CachedPlan:
    """The two halves of a traced model and the names of the boundary values."""

    trunk: fx.GraphModule
    head: fx.GraphModule
    boundary: tuple[str, ...]
    trunk_ops: int
    #: :func:`draws_known` of each half (read once, when the plan is built)
    trunk_draws_known: bool = False
    head_draws_known: bool = False


def _concrete_args(model: nn.Module, inputs: ModelInputs | None) -> dict[str, object]:
    """The arguments fixed in the trace: every non-tensor argument given (with its value) and
    the defaults of the arguments not given. Every tensor given is a placeholder, so the trunk
    reads it (a mask passed positionally is never replaced by its default)."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError) as exc:
        raise CacheUnavailable(f"the signature of forward cannot be read ({exc})") from exc
    params = signature.parameters
    if inputs is None:
        first = next(iter(params), None)
        return {
            n: p.default
            for n, p in params.items()
            if n != first and p.default is not inspect.Parameter.empty
        }
    variadic = [n for n, p in params.items() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    try:
        bound = signature.bind(*inputs.args, **inputs.kwargs).arguments
    except TypeError as exc:
        raise CacheUnavailable(f"the inputs do not bind to forward's signature ({exc})") from exc
    if any(n in bound for n in variadic):
        raise CacheUnavailable(f"forward takes its inputs through *{variadic[0]}")
    concrete = {n: v for n, v in bound.items() if not isinstance(v, torch.Tensor)}
    for n, p in params.items():
        if n not in bound and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            concrete[n] = p.default
    return concrete


def _trace(model: nn.Module, inputs: ModelInputs | None) -> tuple[fx.GraphModule, fx.Graph]:
    concrete = _concrete_args(model, inputs)
    try:
        with functional_noise_paused(), attributes_kept(model):
            graph = _Tracer().trace(model, concrete_args=concrete or None)
            # the tracer keeps tensor constants as attributes of the model (`_tensor_constant0`):
            # the graph module takes them before the model's attributes are put back
            traced = fx.GraphModule(model, graph)
    except Exception as exc:  # torch.fx raises many types (TraceError, TypeError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CacheUnavailable(
            f"torch.fx could not trace the model ({type(exc).__name__}: {first[:160]})"
            + _hugging_face_note(model)
        ) from exc
    return traced, graph


def _hugging_face_note(model: nn.Module) -> str:
    """Why a Hugging Face model does not trace, without importing transformers needlessly."""
    if not type(model).__module__.startswith("transformers."):
        return ""
    import importlib.util
    import sys

    version = getattr(sys.modules.get("transformers"), "__version__", "?")
    if importlib.util.find_spec("transformers.utils.fx") is None:
        return (
            f"; Hugging Face models need their own fx tracer, which transformers {version} no "
            "longer has (transformers.utils.fx was removed in 5.0)"
        )
    return (
        f"; transformers {version}'s fx tracer (transformers.utils.fx) takes the input names "
        "and is not used here"
    )


def _is_source(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":  # a leaf (torch module) holding a dropout counts as one
        return any(samples(m) for m in modules[str(node.target)].modules())
    if node.op == "call_function":
        return node.target in NOISE_FUNCTIONS
    return node.op == "call_method" and node.target in RANDOM_METHODS


def _is_inplace(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_method":
        name = str(node.target)
        return name.endswith("_") and not name.startswith("__")
    if node.op == "call_function":
        return node.target in _INPLACE_OPERATORS or node.kwargs.get("inplace") is True
    if node.op == "call_module":
        return getattr(modules[str(node.target)], "inplace", False) is True
    return False


def _storage_roots(graph: fx.Graph, modules: dict) -> tuple[dict, dict]:
    """For every node, the node whose tensor it shares through in-place ops (``relu_(x)`` is
    ``x``); for every such root, its in-place mutators in graph order."""
    root: dict[fx.Node, fx.Node] = {}
    mutators: dict[fx.Node, list[fx.Node]] = {}
    for node in graph.nodes:
        target = node.args[0] if node.args else None
        if _is_inplace(node, modules) and isinstance(target, fx.Node):
            root[node] = root.get(target, target)
            mutators.setdefault(root[node], []).append(node)
        else:
            root[node] = node
    return root, mutators


def _classify(graph: fx.Graph, modules: dict[str, nn.Module]) -> tuple[set, set]:
    """Nodes that are stochastic, and nodes that depend on the input.

    In-place operations are data dependencies too: a node reading a tensor after an in-place
    op changed it depends on that op, so a dropout that overwrites a value computed before it
    (``nn.Dropout(inplace=True)``) makes the later readers of that value stochastic. A
    deterministic in-place op that changes a value after the stochastic part read it moves into
    the stochastic part, so that the value computed once is the one before the change.
    """
    order = {n: i for i, n in enumerate(graph.nodes)}
    root, mutators = _storage_roots(graph, modules)
    readers: dict[fx.Node, list[fx.Node]] = {}
    for node in graph.nodes:
        for i in node.all_input_nodes:
            readers.setdefault(root[i], []).append(node)

    def inputs_of(node: fx.Node) -> list[fx.Node]:
        found = list(node.all_input_nodes)
        for i in node.all_input_nodes:
            found += [m for m in mutators.get(root[i], ()) if order[m] < order[node]]
        return found

    forced: set[fx.Node] = set()
    while True:
        stochastic: set[fx.Node] = set()
        batched: set[fx.Node] = set()
        for node in graph.nodes:
            inputs = inputs_of(node)
            if node.op == "placeholder" or any(i in batched for i in inputs):
                batched.add(node)
            if node.op != "output" and (
                node in forced or _is_source(node, modules) or any(i in stochastic for i in inputs)
            ):
                stochastic.add(node)
        late = {
            m
            for r, ms in mutators.items()
            for m in ms
            if m not in stochastic
            and any(u in stochastic and order[u] < order[m] for u in readers.get(r, ()))
        }
        if not late:
            return stochastic, batched
        forced |= late


def build_plan(model: nn.Module, inputs: ModelInputs | None = None) -> CachedPlan:
    """Trace ``model`` for ``inputs`` (which arguments are tensors, the values of the others)
    and split it; raises :class:`CacheUnavailable` with the reason."""
    root, graph = _trace(model, inputs)
    modules = dict(root.named_modules())
    stochastic, batched = _classify(graph, modules)
    if not stochastic:
        raise CacheUnavailable("no stochastic module is called in the traced forward pass")
    boundary = [
        n
        for n in graph.nodes
        if n in batched
        and n not in stochastic
        and any(u in stochastic or u.op == "output" for u in n.users)
    ]
    trunk_graph, env = fx.Graph(), dict[fx.Node, fx.Node]()
    for node in graph.nodes:
        if node.op != "output" and node not in stochastic:
            env[node] = trunk_graph.node_copy(node, lambda n: env[n])
    trunk_graph.output(tuple(env[n] for n in boundary))
    head_graph, head_env = fx.Graph(), dict[fx.Node, fx.Node]()
    for node in boundary:
        head_env[node] = head_graph.placeholder(node.name)
    for node in graph.nodes:
        if node.op == "output":
            head_graph.output(fx.map_arg(node.args[0], lambda n: head_env[n]))
        elif node not in head_env and (node in stochastic or node not in batched):
            head_env[node] = head_graph.node_copy(node, lambda n: head_env[n])
    trunk, head = _module(root, trunk_graph, modules), _module(root, head_graph, modules)
    ops = ("call_module", "call_function", "call_method")
    return CachedPlan(
        trunk=trunk,
        head=head,
        boundary=tuple(n.name for n in boundary),
        trunk_ops=sum(n.op in ops for n in trunk.graph.nodes),
        trunk_draws_known=draws_known(trunk),
        head_draws_known=draws_known(head),
    )


def _module(root: fx.GraphModule, graph: fx.Graph, modules: dict) -> fx.GraphModule:
    module = fx.GraphModule(root, graph)
    # in-place ops have effects even when their result is unused: keep them
    module.graph.eliminate_dead_code(lambda n: n.is_impure() or _is_inplace(n, modules))
    module.recompile()
    return module


_KNOWN_CLASSES: dict[type, bool] = {}


def _known_class(cls: type) -> bool:
    """A class of torch's own (``torch.nn``, with its own ``forward``) or a noise type whose
    scope is known by construction; never a registered type (its declared scope is what the
    check confirms)."""
    if cls in _REGISTRY:
        return False
    found = _KNOWN_CLASSES.get(cls)
    if found is None:
        forward = getattr(cls, "forward", None)
        own = cls.__module__.startswith("torch.nn.") and (
            getattr(forward, "__module__", None) or ""
        ).startswith("torch.nn.")
        found = own or scope_is_built_in(cls)
        _KNOWN_CLASSES[cls] = found
    return found


def _known_module(module: nn.Module) -> bool:
    """A module of a :func:`known class <_known_class>` running its class's ``forward``, with no
    hooks: the only random draws a torch module makes are its dropout-family calls (per element
    of the rows it is given) and ``nn.RReLU``'s slopes (per element too)."""
    state = module.__dict__
    return (
        _known_class(type(module))
        and "forward" not in state
        and not state["_forward_hooks"]
        and not state["_forward_pre_hooks"]
    )


def draws_known(half: fx.GraphModule) -> bool:
    """Whether every random draw one traced half makes is known from its graph to be made by
    noise modules of known scope, per element of a value computed from the batch.

    Known: each module the graph calls (and everything inside it) is a hook-free module of
    torch's own or a noise type whose scope is known by construction
    (:func:`bayesdrop.nn._sampling.scope_is_built_in`, such as timm's ``DropPath``); a module
    that holds noise is given a value computed from the batch (not a weight: dropout on a
    parameter is shared by the rows); and no function or method the graph calls draws random
    numbers itself (a dropout-family call in the graph may be applied to a weight). Read once,
    when the plan is built, for the first-call check of the engines
    (:mod:`bayesdrop.predict._selfcheck`)."""
    from_batch: set = set()  # the nodes computed from a placeholder (the batch)
    for node in half.graph.nodes:
        inputs = node.all_input_nodes
        if node.op == "placeholder" or any(a in from_batch for a in inputs):
            from_batch.add(node)
        if node.op == "call_module":
            module = half.get_submodule(node.target)
            subs = list(module.modules())
            if not all(map(_known_module, subs)):
                return False
            drawing = any(map(is_noise_module, subs))
            if drawing and not (inputs and inputs[0] in from_batch):
                return False  # noise on a weight, a buffer or a constant
        elif _is_source(node, {}):  # a random function or method (the cached split's test)
            return False
        elif node.op == "call_function":
            target = node.target
            if target is F.scaled_dot_product_attention:
                return False  # its dropout_p may be applied to anything
            where = getattr(target, "__module__", None) or ""
            if not (where.startswith("torch") or where in ("_operator", "operator", "builtins")):
                return False  # a function fx did not trace into (torch.fx.wrap): unknown
    return True


def contains_size(value: object, size: int) -> bool:
    """Whether a non-tensor ``value`` (int, ``torch.Size``, tuple) holds the integer ``size``."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value == size
    if isinstance(value, (tuple, list)):
        return any(contains_size(v, size) for v in value)
    return False
