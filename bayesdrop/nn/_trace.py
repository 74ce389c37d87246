"""Tracing a model with torch.fx without leaving traces in it.

A trace runs ``forward`` on proxies. A module that caches a computed value in one of its own
attributes (timm's LeViT keeps its attention biases in ``self.attention_bias_cache`` in eval
mode) stores a proxy there, which the next trace reads as a node of a graph that no longer
exists and a plain forward returns as its result. :func:`attributes_kept` puts every module's
attributes back as they were: attributes set during the trace are removed, replaced ones are
put back, and the contents of its dicts, lists and sets are restored in place (so that other
holders of the same container see the old contents too). Containers nested in containers are
not looked into.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["attributes_kept"]

_CONTAINERS = (dict, list, set)


def _contents(value: object) -> object:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return set(value)  # type: ignore[call-overload]


def _changed(value: object, saved: object) -> bool:
    if isinstance(value, dict):
        assert isinstance(saved, dict)
        if len(value) != len(saved):
            return True
        return any(value.get(k, saved) is not v for k, v in saved.items())
    if isinstance(value, list):
        assert isinstance(saved, list)
        if len(value) != len(saved):
            return True
        return any(a is not b for a, b in zip(value, saved, strict=True))
    return value != saved


def _restore(value: object, saved: object) -> None:
    if isinstance(value, dict):
        value.clear()
        value.update(saved)  # type: ignore[call-overload]
    elif isinstance(value, list):
        assert isinstance(saved, list)
        value[:] = saved
    else:
        value.clear()  # type: ignore[attr-defined]
        value.update(saved)  # type: ignore[attr-defined]


@contextmanager
def attributes_kept(model: nn.Module) -> Iterator[None]:
    """Every module's attributes (and its containers' contents) as before the block."""
    saved = []
    for module in model.modules():
        entries = dict(module.__dict__)
        contents = {k: _contents(v) for k, v in entries.items() if isinstance(v, _CONTAINERS)}
        saved.append((module, entries, contents))
    try:
        yield
    finally:
        for module, entries, contents in saved:
            now = module.__dict__
            for key in [k for k in now if k not in entries]:
                del now[key]
            for key, value in entries.items():
                if now.get(key, entries) is not value:
                    now[key] = value
            for key, old in contents.items():
                if _changed(entries[key], old):
                    _restore(entries[key], old)
