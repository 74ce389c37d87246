"""Optional dependencies (private): import one, or say which extra installs it.

The core of bayesdrop needs torch, NumPy, scikit-learn and tqdm; a few features need more, and
``pyproject.toml`` installs those through extras. :func:`require` imports such a dependency
where the feature first uses it (never at ``import bayesdrop``), and when it is not installed
raises :class:`~bayesdrop.exceptions.MissingDependencyError`, an :class:`ImportError` whose
message names the extra. :data:`EXTRAS` maps each optional top-level module to its
distribution and extra; ``tests/test_packaging.py`` checks that it agrees with
``pyproject.toml``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from bayesdrop.exceptions import MissingDependencyError

__all__ = ["EXTRAS", "require"]

EXTRAS: dict[str, tuple[str, str]] = {
    # top-level module: (distribution, bayesdrop extra that installs it)
    "matplotlib": ("matplotlib", "plot"),
    "netcal": ("netcal", "recal"),
    "pyro": ("pyro-ppl", "pyro"),
}


def require(module: str, feature: str) -> ModuleType:
    """``importlib.import_module(module)``, or a :class:`MissingDependencyError` naming the
    extra when ``module`` (or a package above it) is not installed.

    ``feature`` is what needs the module, as the message shows it (``"IsotonicCalibration"``).
    An import that fails inside an installed dependency (one of *its* dependencies missing, a
    broken build) is not rewritten: its own error says more.

    Examples
    --------
    >>> from bayesdrop._optional import require
    >>> require("matplotlib.colors", "a figure").__name__
    'matplotlib.colors'
    >>> require("matplotlib.not_a_module", "a figure")
    Traceback (most recent call last):
    ...
    ModuleNotFoundError: No module named 'matplotlib.not_a_module'
    """
    top = module.partition(".")[0]
    if top not in EXTRAS:
        raise KeyError(f"{top!r} is not an optional dependency of bayesdrop (see EXTRAS)")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        # Python names the first missing package: `top` when the dependency is not installed;
        # a missing submodule of an installed one (`matplotlib.not_a_module`) is a bug
        if error.name != top:
            raise
        distribution, extra = EXTRAS[top]
        raise MissingDependencyError(
            f"{feature} needs {distribution}, which is not installed; install it with "
            f'pip install "bayesdrop[{extra}]"',
            name=top,
        ) from error
