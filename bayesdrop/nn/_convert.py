"""Replace torch's dropout modules in an existing model by bayesdrop layers."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from bayesdrop._validation import check_choice, check_module
from bayesdrop.exceptions import FunctionalDropoutWarning
from bayesdrop.nn import _flow
from bayesdrop.nn._concrete import ConcreteDropout, SpatialConcreteDropout
from bayesdrop.nn._convert_checks import (
    ALPHA,
    SPATIAL,
    apply_edits,
    check_kwargs,
    concrete_target,
    data_flow,
    fast_path_off,
    noise_skips,
    split_inputs,
)
from bayesdrop.nn._mc_dropout import MCDropout, SpatialMCDropout
from bayesdrop.nn._sampling import find_functional_dropout

__all__ = ["ConversionReport", "convert"]


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
        split_inputs(example_inputs)
    concrete = to == "concrete"
    check_kwargs(ConcreteDropout if concrete else MCDropout, kwargs, ("layer", "p"))
    modules = dict(model.named_modules())
    found = [(name, m) for name, m in modules.items() if isinstance(m, _DropoutNd)]
    flow = data_flow(model, example_inputs) if concrete and found else _flow.Flow()
    report = ConversionReport(
        functional=list(dict.fromkeys(find_functional_dropout(model) + list(flow.functional)))
    )
    edits: list[tuple[dict, str, Any]] = []
    for name, module in found:
        old = type(module).__name__
        parent, _, key = name.rpartition(".")
        slot = modules[parent]._modules
        if isinstance(module, ALPHA):
            reason = (
                f"{old} keeps SELU statistics; bayesdrop has no variational counterpart. "
                "It still samples under sampling()"
            )
            report.skipped.append((name, reason))
            continue
        spatial = isinstance(module, SPATIAL)
        if not concrete:
            new: nn.Module = (SpatialMCDropout if spatial else MCDropout)(float(module.p), **kwargs)
            edits.append((slot, key, new.train(module.training)))
            report.replaced.append((name, old, type(new).__name__))
            continue
        target, reason = concrete_target(name, module, flow, modules)
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
        fast_path_off(model, target, edits)
        report.replaced.append((name, old, f"{cls.__name__} around {target}"))
    report.skipped.extend(noise_skips(model))
    for name in report.functional:
        report.skipped.append((name, (
            "calls functional dropout (F.dropout) in forward: no module to replace; it samples "
            "only when that module's own flag says so"
        )))  # fmt: skip
    apply_edits(edits)
    if report.functional:
        warnings.warn(
            "These modules call functional dropout in forward, which convert() cannot replace: "
            f"{', '.join(report.functional)}. Use modules (nn.Dropout or bayesdrop layers) there.",
            FunctionalDropoutWarning,
            stacklevel=2,
        )
    return report
