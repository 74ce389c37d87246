"""Replace torch's dropout modules in an existing model by bayesdrop layers."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from bayesdrop._validation import check_choice, check_module
from bayesdrop.nn.concrete import ConcreteDropout, SpatialConcreteDropout
from bayesdrop.nn.mc_dropout import MCDropout, SpatialMCDropout
from bayesdrop.nn.sampling import find_functional_dropout

__all__ = ["ConversionReport", "convert"]

_SPATIAL = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_ALPHA = (nn.AlphaDropout, nn.FeatureAlphaDropout)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`convert` did.

    Attributes
    ----------
    replaced : list of (str, str, str)
        ``(module name, old type, new type)`` for every replaced dropout.
    skipped : list of (str, str)
        ``(module name, reason)`` for every torch dropout left as it was.
    functional : list of str
        Modules whose ``forward`` calls functional dropout, which no swap can reach.
    """

    replaced: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    functional: list[str] = field(default_factory=list)


def _next_weighted(parent: nn.Module, key: str) -> tuple[str, nn.Module] | None:
    if not isinstance(parent, nn.Sequential):
        return None
    keys = list(parent._modules)
    idx = keys.index(key)
    if idx + 1 < len(keys):
        nxt = parent._modules[keys[idx + 1]]
        if nxt is not None and isinstance(getattr(nxt, "weight", None), nn.Parameter):
            return keys[idx + 1], nxt
    return None


def _convert_one(
    parent: nn.Module,
    key: str,
    module: _DropoutNd,
    to: str,
    kwargs: dict,
    prefix: str,
    report: ConversionReport,
) -> None:
    old = type(module).__name__
    if isinstance(module, _ALPHA):
        report.skipped.append(
            (
                prefix + key,
                f"{old} keeps SELU statistics; bayesdrop has no "
                "variational counterpart. It still samples under sampling().",
            )
        )
        return
    spatial = isinstance(module, _SPATIAL)
    if to == "mc":
        new: nn.Module = (SpatialMCDropout if spatial else MCDropout)(float(module.p), **kwargs)
        parent._modules[key] = new.train(module.training)
        report.replaced.append((prefix + key, old, type(new).__name__))
        return
    target = _next_weighted(parent, key)
    wanted = _CONV if spatial else (nn.Linear,)
    if target is None or not isinstance(target[1], wanted):
        report.skipped.append(
            (
                prefix + key,
                "Concrete Dropout wraps the weighted layer it feeds; "
                f"no {'/'.join(w.__name__ for w in wanted)} follows it in an "
                "nn.Sequential. Wrap that layer by hand.",
            )
        )
        return
    cls = SpatialConcreteDropout if spatial else ConcreteDropout
    parent._modules[key] = nn.Identity().train(module.training)
    parent._modules[target[0]] = cls(target[1], **kwargs).train(target[1].training)
    report.replaced.append((prefix + key, old, f"{cls.__name__} around {prefix}{target[0]}"))


def convert(
    model: nn.Module, to: Literal["mc", "concrete"] = "mc", **kwargs: Any
) -> ConversionReport:
    """Replace torch dropout modules in ``model`` (in place) by bayesdrop layers.

    * ``to="mc"``: ``Dropout`` becomes :class:`bayesdrop.MCDropout` and ``Dropout1d/2d/3d``
      :class:`bayesdrop.nn.SpatialMCDropout`, keeping ``p``.
    * ``to="concrete"``: a dropout directly followed, inside an ``nn.Sequential``, by a
      ``Linear`` (or a ``ConvNd`` for ``Dropout1d/2d/3d``) becomes an ``nn.Identity`` and the
      layer is wrapped in :class:`bayesdrop.ConcreteDropout` (:class:`SpatialConcreteDropout`),
      whose regulariser needs that layer's weights. Its parameters move under ``.layer``.
      Others are skipped, with the reason.

    New layers take the train/eval mode of the modules they replace.

    ``AlphaDropout`` and ``FeatureAlphaDropout`` are skipped (they still sample under
    :func:`bayesdrop.sampling`). A warning names the modules that call functional dropout.

    Parameters
    ----------
    model : nn.Module
        Model to modify in place.
    to : {"mc", "concrete"}
        Kind of layer to put in.
    **kwargs
        Passed to the new layers (``length_scale``, ``weight_regularizer``, ...).

    Returns
    -------
    ConversionReport

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))
    >>> report = convert(net, to="concrete")
    >>> report.replaced
    [('2', 'Dropout', 'ConcreteDropout around 3')]
    >>> type(net[3]).__name__
    'ConcreteDropout'
    """
    check_module("model", model)
    check_choice("to", to, ("mc", "concrete"))
    report = ConversionReport(functional=find_functional_dropout(model))
    for prefix, parent in list(model.named_modules()):
        for key, child in list(parent._modules.items()):
            if isinstance(child, _DropoutNd):
                _convert_one(parent, key, child, to, kwargs, f"{prefix}." if prefix else "", report)
    if report.functional:
        warnings.warn(
            "These modules call functional dropout in forward, which convert() cannot replace: "
            f"{', '.join(report.functional)}. Use modules (nn.Dropout or bayesdrop layers) there.",
            UserWarning,
            stacklevel=2,
        )
    return report
