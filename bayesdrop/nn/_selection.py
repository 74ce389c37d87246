"""Sampling part of a model's noise: the ``noise=`` option of the predictors and of the
language-model functions.

A *selection* is a regular expression on qualified module names. Inside
:func:`noise_selection`, the noise modules it does not find are switched off: their flag
(``training``, and ``mc`` for bayesdrop's layers) is False, and the dropout-family functions
they call are not forced to sample by :func:`bayesdrop.sampling`'s mode (the mode reads the
innermost noise module on the Python stack at each such call). :func:`samples` is
:func:`~bayesdrop.nn.is_stochastic` less the modules switched off, which is what the engines
split a model by: noise that is off is deterministic, so the cached and hooked engines compute
it once, in the part of the model that no sampled noise feeds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from bayesdrop._validation import fail
from bayesdrop.nn._base import StochasticModule
from bayesdrop.nn._noise_calls import _ACTIVE
from bayesdrop.nn._sampling import is_stochastic, noise_modules, stochastic_modules
from bayesdrop.nn._source import find_functional_dropout

__all__ = ["check_pattern", "deselected", "noise_selection", "samples", "selected_names"]

# torch layers whose inference path (taken with ``training`` False) skips their dropout
# modules: a module selected inside one that is off would never run
_FAST_PATHS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)

# ids of the modules a selection open now has switched off (empty: none open)
_OFF: list[frozenset[int]] = [frozenset()]


def deselected() -> frozenset[int]:
    """The ids of the noise modules switched off by the selection open now."""
    return _OFF[0]


def samples(module: nn.Module) -> bool:
    """Whether ``module`` draws noise when sampling now: :func:`~bayesdrop.nn.is_stochastic`
    and not switched off by a :func:`noise_selection`."""
    return is_stochastic(module) and id(module) not in _OFF[0]


def check_pattern(noise: object) -> re.Pattern[str] | None:
    """The ``noise=`` option: None, or a string that compiles as a regular expression."""
    if noise is None:
        return None
    if not isinstance(noise, str):
        what = "None or a regular expression on module names"
        fail("noise", what, f"a {type(noise).__name__}", type_error=True)
    try:
        return re.compile(noise)
    except re.error as exc:
        fail("noise", "a valid regular expression", f"{noise!r} ({exc})")


def selected_names(model: nn.Module, noise: str | None) -> list[str]:
    """Names of the stochastic modules (rate above 0) that sample: all, or those whose
    qualified name ``noise`` finds (``re.search``)."""
    names = [name for name, _ in stochastic_modules(model)]
    pattern = check_pattern(noise)
    if pattern is None:
        return names
    owners = find_functional_dropout(model)
    if owners:
        where = ", ".join(f"{name or 'the model'} ({type(model.get_submodule(name)).__name__})"
                          for name in owners[:3])  # fmt: skip
        fix = (
            f"Functional dropout (F.dropout called in the code of {where}) cannot be switched "
            "on or off by module name. Sample all the noise (noise=None), or replace that call "
            "by an nn.Dropout module (for timm models: drop_rate=0 and a dropout head)."
        )
        fail("noise", "None for a model with functional dropout", repr(noise), fix)
    chosen = [name for name in names if pattern.search(name)]
    if not chosen:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        fail("noise", "a pattern that finds a noise module", f"{noise!r} (modules: {shown})")
    return chosen


@contextmanager
def noise_selection(model: nn.Module, noise: str | None) -> Iterator[tuple[str, ...] | None]:
    """Switch off every noise module of ``model`` that ``noise`` does not find; yield the names
    of the stochastic modules that sample. ``None`` selects all: nothing changes and ``None`` is
    yielded (this runs on every prediction; the model's modules are not walked for it).

    Inside :func:`bayesdrop.sampling` this gives Monte-Carlo samples of the selected noise
    alone; in training mode, training-mode samples of it (the oracle of
    :func:`bayesdrop.check_noise`). A selected module inside one that is switched off (PEFT's
    ``lora_dropout`` inside a Hugging Face attention module) samples when the outer module's
    forward calls it with its own flag off, as Hugging Face and PEFT modules do; it is refused
    inside torch's ``TransformerEncoderLayer`` / ``TransformerDecoderLayer``, whose inference
    path (taken with the flag off) skips their dropout modules, so that the selected noise
    would be silently missing. Every flag is restored on exit."""
    if noise is None:
        yield None
        return
    chosen = selected_names(model, noise)
    named = [(n, m) for n, m in noise_modules(model) if n]  # the root is never switched off
    off = [(n, m) for n, m in named if n not in chosen]
    for name in chosen:
        outer = next(
            (o for o, m in off if name.startswith(o + ".") and isinstance(m, _FAST_PATHS)), None
        )
        if outer is not None:
            fail(
                "noise",
                "a pattern that selects whole noise modules",
                f"{noise!r} selects `{name}` but not `{outer}`, which holds it",
                f"Select `{outer}` as well, or a module outside it.",
            )
    saved = [(m, "mc" if isinstance(m, StochasticModule) else "training") for _, m in off]
    values = [getattr(m, attr) for m, attr in saved]
    modes = [(mode, mode.off, mode.on) for mode in _ACTIVE]
    ids = frozenset(id(m) for _, m in off)
    on = frozenset(id(m) for n, m in named if n in chosen)
    previous = _OFF[0]
    try:
        for m, attr in saved:
            setattr(m, attr, False)
        for mode, _, _ in modes:
            mode.off, mode.on = ids, on
        _OFF[0] = ids
        yield tuple(chosen)
    finally:
        _OFF[0] = previous
        for mode, was_off, was_on in modes:
            mode.off, mode.on = was_off, was_on
        for (m, attr), value in zip(saved, values, strict=True):
            setattr(m, attr, value)
