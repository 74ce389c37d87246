"""Replace torch's dropout modules in an existing model by bayesdrop layers."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from bayesdrop._validation import check_choice, check_module, fail
from bayesdrop.exceptions import FunctionalDropoutWarning
from bayesdrop.nn import _flow
from bayesdrop.nn.base import StochasticModule
from bayesdrop.nn.concrete import ConcreteDropout, SpatialConcreteDropout
from bayesdrop.nn.mc_dropout import MCDropout, SpatialMCDropout
from bayesdrop.nn.sampling import find_functional_dropout

__all__ = ["ConversionReport", "convert"]

_SPATIAL = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_ALPHA = (nn.AlphaDropout, nn.FeatureAlphaDropout)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_LAYER_OPS = frozenset({"linear", "conv1d", "conv2d", "conv3d"})
_HOW_TO_FOLLOW = "pass example_inputs= to follow its output through one forward pass"


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`convert` did.

    Attributes
    ----------
    replaced : list of (str, str, str)
        ``(module name, old type, new type)`` for every replaced dropout.
    skipped : list of (str, str)
        ``(module name, reason)`` for every dropout left as it was: torch dropout modules,
        modules that keep a dropout rate as a float (``nn.LSTM(dropout=...)``,
        ``nn.MultiheadAttention``), stochastic depth (torchvision ``StochasticDepth``, timm
        ``DropPath``) and modules that call functional dropout.
    functional : list of str
        Modules whose ``forward`` calls functional dropout, which no swap can reach.
    """

    replaced: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    functional: list[str] = field(default_factory=list)


def _split_inputs(example_inputs: Any) -> tuple[tuple, dict[str, Any]]:
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


def _data_flow(model: nn.Module, example_inputs: Any) -> _flow.Flow:
    if example_inputs is None:
        flow = _flow.fx_flow(model)
        return _flow.static_flow(model, flow.unknown) if flow.unknown else flow
    args, kwargs = _split_inputs(example_inputs)
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


def _never_called(name: str, flow: _flow.Flow) -> str:
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


def _accepts(use: _flow.Use, modules: dict[str, nn.Module], wanted: tuple) -> bool:
    module = modules.get(use.module or "")
    if not isinstance(module, wanted) or not use.as_input:
        return False
    return use.op in _LAYER_OPS or use.op == type(module).__name__


def _why_not(call: _flow.Call, modules: dict[str, nn.Module], spatial: bool) -> str:
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
        if not _accepts(uses[0], modules, (nn.Module,)):
            return f"feeds {listing} ({type(module).__name__}), not as its data input"
        return f"feeds {listing} ({type(module).__name__}), not {want}" + (
            fix if isinstance(module, _CONV) else ""
        )
    return (
        f"acts on the output of {call.producer}, which then goes to {listing}: not the input of "
        "a weighted layer (Concrete Dropout wraps the layer whose input it drops)"
    )


def _concrete_target(
    name: str, module: _DropoutNd, flow: _flow.Flow, modules: dict[str, nn.Module]
) -> tuple[str | None, str]:
    """``(name of the layer to wrap, "")`` or ``(None, reason to skip)``."""
    p = float(module.p)
    if not 0.0 < p < 1.0:
        return None, f"p = {p:g}: Concrete Dropout needs an initial drop rate strictly in (0, 1)"
    if name not in flow.calls:
        return None, f"{flow.unknown}; {_HOW_TO_FOLLOW}"
    calls = flow.calls[name]
    if not calls:
        return None, _never_called(name, flow)
    if len(calls) > 1:
        return None, f"called {len(calls)} times in one forward pass (one mask per call site)"
    spatial = isinstance(module, _SPATIAL)
    uses = calls[0].uses
    if len(uses) != 1 or not _accepts(uses[0], modules, _CONV if spatial else (nn.Linear,)):
        return None, _why_not(calls[0], modules, spatial)
    target = str(uses[0].module)
    if flow.layer_calls[target] > 1:
        return None, (
            f"it feeds `{target}`, which is also called {flow.layer_calls[target] - 1} more "
            "time(s) on other inputs; wrapping it would drop those inputs too"
        )
    return target, ""


def _noise_skips(model: nn.Module) -> list[tuple[str, str]]:
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


def _check_kwargs(cls: type, kwargs: dict[str, Any], taken: tuple[str, ...]) -> None:
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


def _fast_path_off(model: nn.Module, layer_name: str, edits: list) -> None:
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


def _apply(edits: list[tuple[dict, str, Any]]) -> None:
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


def convert(
    model: nn.Module,
    to: Literal["mc", "concrete"] = "mc",
    *,
    example_inputs: Any = None,
    **kwargs: Any,
) -> ConversionReport:
    """Replace torch dropout modules in ``model`` (in place) by bayesdrop layers.

    * ``to="mc"``: ``Dropout`` becomes :class:`bayesdrop.MCDropout` and ``Dropout1d/2d/3d``
      :class:`bayesdrop.nn.SpatialMCDropout`, keeping ``p``, in the same place (module names
      and ``state_dict`` keys unchanged). These layers wrap no weighted layer, so their
      ``kl()`` is zero: the KL of a dropout posterior is that of the weights it masks. With a
      fixed ``p`` that KL is weight decay on the next layer's kernel; for it in the ELBO, wrap
      the layer (``MCDropout(layer, p)``) or use ``to="concrete"``.
    * ``to="concrete"``: a dropout whose output feeds exactly one ``nn.Linear`` (a
      ``Conv1d/2d/3d`` for ``Dropout1d/2d/3d``) as its data input, directly or through
      shape-only operations (``view``, ``reshape``, ``transpose``, ``flatten``, ``nn.Identity``,
      ...), and nothing else, becomes an ``nn.Identity``, and that layer is wrapped in
      :class:`bayesdrop.ConcreteDropout` (:class:`SpatialConcreteDropout`), whose regulariser
      needs the layer's weights (its parameters move under ``.layer``). The learned rate starts
      from the replaced module's ``p`` (``p_logit = logit(p)``) unless ``init_min`` /
      ``init_max`` are given. Every other dropout is skipped, with the reason.

    Where the dropout's output goes is found, in this order: by one forward pass on
    ``example_inputs`` (works for every model); else by a ``torch.fx`` trace (torchvision and
    timm models trace); else only where the data flow is known by construction
    (``nn.Sequential``, the feed-forward block of torch's ``TransformerEncoderLayer`` /
    ``TransformerDecoderLayer``). The forward pass runs once without gradients, with dropouts
    sampling, BatchNorm in eval mode and the global RNG state restored; modes are restored.

    A dropout is skipped when it:

    * drops the output of a layer before a residual add (``dropout(dense(x)) + x``);
    * feeds several projections at once (q, k and v share its mask);
    * drops attention probabilities, or is never called because fused attention
      (``scaled_dot_product_attention``) reads its rate;
    * is called more than once, feeds a layer that is also called on other inputs, has
      ``p = 0``, or feeds a layer of another type (e.g. Hugging Face's ``Conv1D``).

    Also listed in ``skipped`` (in both modes): ``AlphaDropout`` / ``FeatureAlphaDropout`` (no
    variational counterpart; they still sample under :func:`bayesdrop.sampling`), the dropout of
    ``nn.LSTM/GRU/RNN(dropout=...)`` and ``nn.MultiheadAttention(dropout=...)`` (a float, not a
    module), torchvision ``StochasticDepth`` and timm ``DropPath``, and modules that call
    functional dropout (a warning names them). New layers take the train/eval mode of the
    modules they replace. A converted torch ``TransformerEncoderLayer`` loses its inference
    fast path, which reads ``linear2.weight`` directly and would bypass the wrapper.

    What converts on common architectures (measured by the repository's model-zoo tests, random
    weights; ``i`` runs over blocks):

    ======================== ============================== ==================================
    Model                    Converted: dropout -> layer    Skipped, and why
    ======================== ============================== ==================================
    torch                    ``layers.i.dropout`` ->        ``dropout1/2``: block outputs
    ``TransformerEncoder``   ``layers.i.linear2``           before the residual add;
                                                            ``self_attn``: float rate on
                                                            attention probabilities
    timm ViT                 ``blocks.i.mlp.drop1`` ->      ``attn_drop``: its rate goes to
                             ``blocks.i.mlp.fc2``,          fused attention (unfused: drops
                             ``head_drop`` -> ``head``      softmax output); ``proj_drop``,
                                                            ``mlp.drop2``: layer outputs;
                                                            ``pos_drop``: p = 0; ``DropPath``
    HF BERT, DistilBERT      ``dropout`` -> ``classifier``  embeddings dropout: feeds q, k, v
                                                            and the residual add; attention
                                                            dropout: fused attention (eager:
                                                            ``F.dropout``); block dropouts:
                                                            layer outputs before residual adds
    HF GPT-2                 nothing                        ``drop``: feeds ``ln_1`` and the
                                                            residual; ``resid_dropout``,
                                                            ``mlp.dropout``: layer outputs;
                                                            ``attn_dropout``: fused attention
    torchvision vgg11        ``classifier.2`` -> ``.3``,
                             ``classifier.5`` -> ``.6``
    mobilenet_v3_small       ``classifier.2`` -> ``.3``
    efficientnet_b0          ``classifier.0`` -> ``.1``     ``StochasticDepth`` (15 blocks)
    ``nn.LSTM/GRU(dropout)`` nothing                        float rate between stacked layers
    ======================== ============================== ==================================

    Hugging Face models do not trace with ``torch.fx``: pass ``example_inputs`` (e.g.
    ``dict(input_ids=ids, attention_mask=mask)``), else their dropouts are skipped with that
    reason. So do torch's transformer layers, but their feed-forward dropout is known.

    Parameters
    ----------
    model : nn.Module
        Model to modify in place.
    to : {"mc", "concrete"}
        Kind of layer to put in.
    example_inputs : Tensor, tuple or mapping, optional
        Inputs for one forward pass (``to="concrete"`` only): a tensor, a tuple of positional
        inputs, or a mapping of keyword inputs (as ``model(**inputs)``). Small is enough.
    **kwargs
        Keyword arguments of the new layers (``length_scale``, ``weight_regularizer``, ...).

    Returns
    -------
    ConversionReport

    Raises
    ------
    BayesdropTypeError
        For an unknown keyword argument or ``example_inputs`` of another type; nothing is
        changed.
    BayesdropValueError
        When the model raises on ``example_inputs``, or a keyword argument has a bad value;
        nothing is changed.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 1))
    >>> bayesdrop.convert(net, to="mc").replaced
    [('2', 'Dropout', 'MCDropout')]
    >>> bayesdrop.kl_divergence(net).item()  # a bare MCDropout carries no KL
    0.0
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 1))
    >>> report = bayesdrop.convert(net, to="concrete")
    >>> report.replaced
    [('2', 'Dropout', 'ConcreteDropout around 3')]
    >>> round(net[3].p.item(), 4)
    0.3
    >>> layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.2, batch_first=True)
    >>> report = bayesdrop.convert(layer, to="concrete")
    >>> report.replaced
    [('dropout', 'Dropout', 'ConcreteDropout around linear2')]
    >>> [name for name, _ in report.skipped]
    ['dropout1', 'dropout2', 'self_attn']
    """
    check_module("model", model)
    check_choice("to", to, ("mc", "concrete"))
    if example_inputs is not None:
        _split_inputs(example_inputs)
    concrete = to == "concrete"
    _check_kwargs(ConcreteDropout if concrete else MCDropout, kwargs, ("layer", "p"))
    modules = dict(model.named_modules())
    found = [(name, m) for name, m in modules.items() if isinstance(m, _DropoutNd)]
    flow = _data_flow(model, example_inputs) if concrete and found else _flow.Flow()
    report = ConversionReport(
        functional=list(dict.fromkeys(find_functional_dropout(model) + list(flow.functional)))
    )
    edits: list[tuple[dict, str, Any]] = []
    for name, module in found:
        old = type(module).__name__
        parent, _, key = name.rpartition(".")
        slot = modules[parent]._modules
        if isinstance(module, _ALPHA):
            reason = (
                f"{old} keeps SELU statistics; bayesdrop has no variational counterpart. "
                "It still samples under sampling()"
            )
            report.skipped.append((name, reason))
            continue
        spatial = isinstance(module, _SPATIAL)
        if not concrete:
            new: nn.Module = (SpatialMCDropout if spatial else MCDropout)(float(module.p), **kwargs)
            edits.append((slot, key, new.train(module.training)))
            report.replaced.append((name, old, type(new).__name__))
            continue
        target, reason = _concrete_target(name, module, flow, modules)
        if target is None:
            report.skipped.append((name, reason))
            continue
        layer = modules[target]
        cls = SpatialConcreteDropout if spatial else ConcreteDropout
        init = {"init_min": float(module.p), "init_max": float(module.p)}
        wrapped = cls(layer, **{**init, **kwargs}).train(layer.training)
        t_parent, _, t_key = target.rpartition(".")
        edits.append((slot, key, nn.Identity().train(module.training)))
        edits.append((modules[t_parent]._modules, t_key, wrapped))
        _fast_path_off(model, target, edits)
        report.replaced.append((name, old, f"{cls.__name__} around {target}"))
    report.skipped.extend(_noise_skips(model))
    for name in report.functional:
        report.skipped.append((name, (
            "calls functional dropout (F.dropout) in forward: no module to replace; it samples "
            "only when that module's own flag says so"
        )))  # fmt: skip
    _apply(edits)
    if report.functional:
        warnings.warn(
            "These modules call functional dropout in forward, which convert() cannot replace: "
            f"{', '.join(report.functional)}. Use modules (nn.Dropout or bayesdrop layers) there.",
            FunctionalDropoutWarning,
            stacklevel=2,
        )
    return report
