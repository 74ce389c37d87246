"""Pyro interop: bayesdrop networks as Pyro models, and a mean-field Pyro BNN baseline.

Inside this sub-package ``import pyro`` is the Pyro library (imports are absolute in
Python 3), so ``bayesdrop.pyro`` does not shadow it. It needs Pyro (``pip install
"bayesdrop[pyro]"``); without it, importing it raises
:class:`~bayesdrop.exceptions.MissingDependencyError`.
"""

from bayesdrop._optional import require

require("pyro", "bayesdrop.pyro")  # the clear error, before the submodules' `import pyro`

from bayesdrop.pyro._mfvi import MeanFieldMLP  # noqa: E402
from bayesdrop.pyro._model import DropoutModel  # noqa: E402

__all__ = ["DropoutModel", "MeanFieldMLP"]
