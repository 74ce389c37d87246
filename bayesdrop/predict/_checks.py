"""Checks of the model and its inputs before Monte-Carlo prediction (shared by the front doors)."""

from __future__ import annotations

import itertools
import warnings

import torch
from torch import nn

from bayesdrop._validation import check_module, fail
from bayesdrop.exceptions import ConcreteCollapseWarning
from bayesdrop.nn._concrete import ConcreteDropout
from bayesdrop.nn._diagnostics import COLLAPSE_THRESHOLD, concrete_rates
from bayesdrop.nn._sampling import (
    find_functional_dropout,
    noise_modules,
    refuse_scripted,
    stochastic_modules,
)
from bayesdrop.predict._io import ModelInputs, as_inputs
from bayesdrop.predict._noise import training_flag_readers

__all__ = ["check_input", "check_model", "eager_model", "model_device"]


def model_device(model: nn.Module) -> torch.device | None:
    """Device of the model's first parameter or buffer (None for a model without either)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return None


def eager_model(model: nn.Module) -> tuple[nn.Module, str]:
    """The module to sample: a ``torch.compile`` model's original module (its compiled code
    would be re-compiled for every switch of a flag, and the functional-noise mode cannot reach
    inside it), with a note for ``engine_reason``; TorchScript is refused."""
    check_module("model", model)
    original = getattr(model, "_orig_mod", None)
    if type(model).__name__ == "OptimizedModule" and isinstance(original, nn.Module):
        return original, "torch.compile model: sampled through its original (eager) module"
    refuse_scripted(model)
    return model, ""


def check_model(model: nn.Module) -> None:
    """A model with noise: a noise module whose rate is not 0, functional dropout in its
    modules' code, or modules whose forward reads ``self.training`` (whether their noise reaches
    the output is then seen in the samples)."""
    check_module("model", model)
    refuse_scripted(model)
    if stochastic_modules(model) or find_functional_dropout(model):
        _warn_collapsed(model)
        return
    readers = training_flag_readers(model)
    if readers:
        return
    zero = [name or "(model)" for name, _ in noise_modules(model)]
    got = "a model with none"
    if zero:
        got = f"only noise modules with rate 0 ({', '.join(zero[:8])}"
        got += ", ...)" if len(zero) > 8 else ")"
    fix = (
        "Without noise there is no Monte-Carlo uncertainty. bayesdrop looked for torch's "
        "dropout modules, attention and recurrent modules with a dropout rate, nn.RReLU, "
        "bayesdrop's layers, torchvision's StochasticDepth, timm's DropPath/DropBlock2d, "
        "attention modules whose forward reads self.training to pick a dropout rate (Hugging "
        "Face, timm) and functional dropout (F.dropout) in the modules' code. Add dropout "
        "(nn.Dropout, bayesdrop.MCDropout, bayesdrop.convert) or register your own noise "
        "module type with bayesdrop.nn.register_stochastic_module(MyType, rate='p')."
    )
    fail("model", "a model with at least one dropout with a non-zero rate", got, fix)


def _warn_collapsed(model: nn.Module) -> None:
    """Every noise module a Concrete Dropout layer whose learned rate collapsed: say so."""
    modules = [m for _, m in stochastic_modules(model)]
    if not modules or not all(isinstance(m, ConcreteDropout) for m in modules):
        return
    rates = concrete_rates(model)
    if max(rates.values()) < COLLAPSE_THRESHOLD:
        warnings.warn(
            f"bayesdrop: every learned Concrete Dropout rate is below {COLLAPSE_THRESHOLD:g} "
            f"(largest {max(rates.values()):.2g}): the model is close to a point estimate and "
            "the epistemic uncertainty it reports is near zero. See the user guide, 'When "
            "Concrete Dropout degenerates'.",
            ConcreteCollapseWarning,
            stacklevel=4,
        )


def check_input(
    x: object, device: torch.device | None, batch_dim: int = 0, name: str = "x"
) -> ModelInputs:
    """Batched model inputs on the model's device."""
    inputs = as_inputs(x, name, batch_dim)
    if device is not None:
        for t in inputs.tensors():
            if t.device != device:
                fail(
                    name,
                    f"on the model's device ({device})",
                    f"a tensor on {t.device}",
                    "Move it with x.to(device).",
                )
    return inputs
