"""Sphinx configuration for bayesdrop."""

from __future__ import annotations

import os
import sys
import typing

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))
sys.path.insert(0, os.path.abspath("_tools"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("BAYESDROP_DATA", os.path.abspath(os.path.join("..", "..", "shared", "data")))

# The Makefile pins PyPI's torchvision wheel, a CUDA build whose operator registrations do not
# load beside the CPU torch; transformers imports torchvision when it is installed. As in
# tests/conftest.py, the two registration modules are stubbed (the tutorials use no torchvision
# operator), here and in each gallery worker (docs/_ext/gallery_setup.py, reset_modules below).
# Build set-up only: the library never imports torchvision.
import gallery_setup

gallery_setup.stub_torchvision(None, None)

import fetch_mathjax  # noqa: E402

import bayesdrop  # noqa: E402

# The repository: linked from the navigation bar, the landing page and the citation page.
REPOSITORY_URL = "https://github.com/bayesdrop/bayesdrop"

project = "bayesdrop"
author = "bayesdrop developers"
copyright = "2026, bayesdrop developers"
release = bayesdrop.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "myst_parser",  # renders CHANGELOG.md into changelog.rst
    "sphinx_copybutton",
    "gallery_cards",  # data sets and run time on each gallery card (docs/_ext/gallery_cards.py)
    "generated_numbers",  # the :number: role (docs/_ext/generated_numbers.py)
]
# the copy button copies code without its prompts (">>> ", "... ", "$ ") and doctest output
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

autosummary_generate = True
# Every cross-reference to bayesdrop must resolve (-n with -W). Not checked: other projects'
# objects (torch, numpy, ...: their inventories would need the internet) and the words of
# numpydoc type lines ("Tensor, shape ``(N, C)``, optional", "float, default 0.1"), which the
# Python domain turns into class references.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|nn|F|numpy|np|pyro|matplotlib|sklearn|scipy|netcal)(\..*)?"),
    (r"py:.*", r"(json|os|pathlib|typing|collections|argparse|dataclasses)(\..*)?"),
    (r"py:class", r"(?!bayesdrop\.).*"),
]
nitpick_ignore: list[tuple[str, str]] = []
# A class page documents the class's own members and those of bayesdrop base classes, never the
# ~70 methods every torch.nn.Module has, nor those of exceptions and object (see also
# _templates/autosummary/class.rst: no member tables; and _public_bases below).
autodoc_default_options = {
    "members": True,
    "inherited-members": "Module,BaseException,ImportError,object",
    "show-inheritance": True,
}
autodoc_typehints = "none"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# a class's "Attributes" section as one compact list (not one block per attribute ahead of the
# methods, where CalibrationReport's 19 fields hid its entry point from_predictions)
napoleon_use_ivar = True
napoleon_preprocess_types = False
# Links into other projects' docs need their inventories (objects.inv), which are fetched over
# the internet: ``BAYESDROP_INTERSPHINX=1 make docs`` on a machine with access links torch, numpy,
# scikit-learn and matplotlib names; the default build (CI here has no internet) leaves them as
# plain text, as nitpick_ignore_regex below allows.
intersphinx_mapping = (
    {
        "python": ("https://docs.python.org/3", None),
        "torch": ("https://pytorch.org/docs/stable", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
    }
    if os.environ.get("BAYESDROP_INTERSPHINX") == "1"
    else {}
)
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "_ext",
    "_tools",
    "_static",
    "auto_tutorials/**.ipynb",
    "auto_tutorials/**.py",
    "**.zip",
]
# references.rst lists every paper; not each is cited from a page yet.
suppress_warnings = ["config.cache", "ref.citation"]

# Math renders from a local MathJax copy (no internet needed to read the docs): fetched once
# from the npm registry into _static/mathjax, not committed (see _tools/fetch_mathjax.py).
if not fetch_mathjax.is_current():
    fetch_mathjax.main([])
mathjax_path = f"mathjax/{fetch_mathjax.ENTRY}"


def _private(cls) -> bool:
    """A class whose name starts with an underscore, or that is defined in a private module
    (``bayesdrop.nn._base``) and not exported by the public package above it
    (``bayesdrop.nn.StochasticModule`` is public)."""
    if cls.__name__.startswith("_"):
        return True
    parts = cls.__module__.split(".")
    public = []
    for part in parts:
        if part.startswith("_") and not part.startswith("__"):
            break
        public.append(part)
    if len(public) == len(parts):
        return False
    package = sys.modules.get(".".join(public))
    return getattr(package, cls.__name__, None) is not cls


def _public_bases(app, name, obj, options, bases) -> None:
    """The "Bases:" line names public classes: a private base is replaced by its own bases."""
    public: list = []
    for base in bases:
        if base is typing.Generic or getattr(base, "__origin__", None) is typing.Generic:
            continue  # MCPredictor(Generic[_P]): the type variable is private
        if _private(base):
            public.extend(b for b in base.__bases__ if b not in public and b not in bases)
        elif base not in public:
            public.append(base)
    if any(_private(b) for b in public):
        _public_bases(app, name, obj, options, public)
    bases[:] = public


_DOCUMENTED: dict[int, str] | None = None


def _lookup(path: str):
    """The object at a dotted ``bayesdrop...`` path, or None."""
    import importlib

    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _resolve_reexport(app, env, node, contnode):
    """A reference to a name bayesdrop re-exports (``bayesdrop.TemperatureScaling``) resolves to
    the entry that documents the object (``bayesdrop.calibration.TemperatureScaling``)."""
    global _DOCUMENTED
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("bayesdrop."):
        return None
    domain = env.get_domain("py")
    if _DOCUMENTED is None:
        _DOCUMENTED = {}
        for name in domain.objects:
            obj = _lookup(name) if name.startswith("bayesdrop.") else None
            if callable(obj):
                _DOCUMENTED.setdefault(id(obj), name)
    obj = _lookup(target)
    name = _DOCUMENTED.get(id(obj)) if callable(obj) else None
    if name is None or name == target:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], name, node, contnode
    )


def setup(app) -> None:
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("missing-reference", _resolve_reexport)


html_theme = "pydata_sphinx_theme"
html_static_path = ["_static"]
html_title = f"bayesdrop {release}"
html_theme_options = {
    # the version beside the name in the header
    "logo": {"text": f"bayesdrop {release}"},
    "icon_links": [
        {"name": "Source code", "url": REPOSITORY_URL, "icon": "fa-brands fa-github"},
    ],
    "navigation_with_keys": False,
    # the grouped navigation lives in the left sidebar (_templates/global-toc.html)
    "navbar_center": [],
    # (none on the tutorials' pages: docs/_ext/gallery_cards.py)
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"**": ["global-toc.html"]}

# The gallery runs every tutorial in full mode: the pages show the full-scale numbers and
# figures their text describes, and each tutorial asserts its claims, so a claim that stops
# holding fails the build (abort_on_example_error, and -W). ``BAYESDROP_SMOKE=1 make docs`` is
# the quick check that the code runs (its pages show short-run numbers the text does not
# describe). sphinx-gallery reuses an executed example while its source is unchanged (the .md5
# beside its output); when the mode differs from the last build's, those records are removed
# so that every example reruns in the new mode.
from bayesdrop.datasets import smoke_mode  # noqa: E402

_GALLERY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "auto_tutorials")
_GALLERY_MODE = "smoke" if smoke_mode() else "full"


def _forget_other_mode_runs() -> None:
    stamp_path = os.path.join(_GALLERY_DIR, ".mode")
    try:
        with open(stamp_path) as stamp:
            previous = stamp.read().strip()
    except OSError:
        previous = None
    if previous != _GALLERY_MODE and os.path.isdir(_GALLERY_DIR):
        for folder, _, names in os.walk(_GALLERY_DIR):
            for name in names:
                if name.endswith(".md5"):
                    os.remove(os.path.join(folder, name))
    os.makedirs(_GALLERY_DIR, exist_ok=True)
    with open(stamp_path, "w") as stamp:
        stamp.write(_GALLERY_MODE)


_forget_other_mode_runs()

# The gallery's groups (folders of tutorials/), in the order the gallery shows them.
_GALLERY_GROUPS = (
    "classification",
    "regression",
    "language",
    "dense_prediction",
    "training_methods",
    "calibration",
    "scale_out",
)

sphinx_gallery_conf = {
    "examples_dirs": ["../tutorials"],
    "gallery_dirs": ["auto_tutorials"],
    # BAYESDROP_GALLERY_PATTERN runs a subset of the tutorials while writing one.
    "filename_pattern": os.environ.get("BAYESDROP_GALLERY_PATTERN", r"/plot_"),
    # grouped by task, one folder of tutorials/ per group, in this order; inside a group a
    # reading path, the first tutorial first (docs/_ext/tutorial_order.py)
    "subsection_order": [f"../tutorials/{group}" for group in _GALLERY_GROUPS],
    "within_subsection_order": "tutorial_order.TutorialOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "plot_gallery": "True",
    # figures also at twice the resolution, for high-density screens and zooming in
    "image_srcset": ["2x"],
    # "Examples using this" on every API page (_templates/autosummary), and the code of the
    # tutorials linked to the API reference
    "backreferences_dir": "api/generated/backreferences",
    "doc_module": ("bayesdrop",),
    "show_api_usage": False,
    # no execution-time pages: sphinx-gallery's load scripts from a CDN (the docs are read
    # offline); each card and each tutorial's page give its run time instead
    "write_computation_times": False,
    # two tutorials at a time inside a group (each runs on one thread): the full-mode gallery
    # is most of CI's time
    "parallel": 2,
    # before each tutorial, in the worker that runs it (docs/_ext/gallery_setup.py)
    "reset_modules": ("matplotlib", "gallery_setup.stub_torchvision"),
}
# the workers find docs/_ext (gallery_setup, tutorial_order) through the environment
os.environ["PYTHONPATH"] = os.pathsep.join(
    [os.path.abspath("_ext"), os.path.abspath(".."), os.environ.get("PYTHONPATH", "")]
).rstrip(os.pathsep)
