"""Sphinx configuration for bayesdrop."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
os.environ.setdefault("BAYESDROP_SMOKE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("BAYESDROP_DATA", os.path.abspath(os.path.join("..", "..", "shared", "data")))

import bayesdrop

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
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": True}
autodoc_typehints = "none"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_preprocess_types = False
intersphinx_mapping = {}
templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_tutorials/*.ipynb", "auto_tutorials/*.py", "**.zip"]
# references.rst lists every paper; not each is cited from a page yet.
suppress_warnings = ["config.cache", "ref.citation"]

html_theme = "pydata_sphinx_theme"
html_static_path = ["_static"]
html_title = "bayesdrop"

sphinx_gallery_conf = {
    "examples_dirs": ["../tutorials"],
    "gallery_dirs": ["auto_tutorials"],
    # BAYESDROP_GALLERY_PATTERN runs a subset of the tutorials while writing one.
    "filename_pattern": os.environ.get("BAYESDROP_GALLERY_PATTERN", r"/plot_"),
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "plot_gallery": "True",
}
