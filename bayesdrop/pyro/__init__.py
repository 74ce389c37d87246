"""Pyro interop (placeholder)."""

from bayesdrop.pyro.mfvi import MeanFieldMLP

__all__ = ["MeanFieldMLP"]
