"""Pyro interop: bayesdrop networks as Pyro models, and a mean-field Pyro BNN baseline.

Inside this sub-package ``import pyro`` is the Pyro library (imports are absolute in
Python 3), so ``bayesdrop.pyro`` does not shadow it.
"""

from bayesdrop.pyro.mfvi import MeanFieldMLP
from bayesdrop.pyro.model import DropoutModel

__all__ = ["DropoutModel", "MeanFieldMLP"]
