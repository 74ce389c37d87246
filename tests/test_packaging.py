"""What a pip user installs: a lean core, extras that name themselves when missing, one version,
a license, a long description that matches the README. The wheel itself, installed into a fresh
venv, is checked by .ci/install_smoke.sh."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

import bayesdrop
from bayesdrop._optional import EXTRAS, require
from bayesdrop.exceptions import BayesdropError, MissingDependencyError

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
OPTIONAL = ("pyro", "matplotlib", "netcal", "sklearn", "scipy", "numba")

# Makes the named top-level packages look uninstalled, as Python reports it (name= the package).
BLOCK = """
import sys
BLOCKED = set(sys.argv[1].split(","))
class _Uninstalled:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name.partition(".")[0])
sys.meta_path.insert(0, _Uninstalled)
"""


def run_python(code: str, blocked: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code), blocked],
        capture_output=True,
        text=True,
        timeout=180,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
        cwd=ROOT,
    )


def test_import_bayesdrop_loads_no_optional_dependency():
    done = run_python(
        f"""
        import json, sys
        import bayesdrop, bayesdrop.cli
        print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] in {OPTIONAL!r})))
        """
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_import_bayesdrop_without_any_optional_dependency():
    done = run_python("import bayesdrop; print(bayesdrop.__version__)", ",".join(OPTIONAL))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == bayesdrop.__version__


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_require_names_the_extra(module):
    distribution, extra = EXTRAS[module]
    done = run_python(
        f"""
        from bayesdrop._optional import require
        from bayesdrop.exceptions import MissingDependencyError
        try:
            require({module + ".sub"!r}, "this feature")
        except MissingDependencyError as error:
            assert isinstance(error, ImportError) and error.name == {module!r}
            print(error)
        """,
        module,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"this feature needs {distribution}, which is not installed; install it with "
        f'pip install "bayesdrop[{extra}]"'
    )


def test_require_imports_and_keeps_other_errors():
    assert require("matplotlib.colors", "a figure").__name__ == "matplotlib.colors"
    with pytest.raises(ModuleNotFoundError) as info:  # a missing submodule is a bug: not rewritten
        require("matplotlib.not_a_module", "a figure")
    assert not isinstance(info.value, MissingDependencyError)
    with pytest.raises(KeyError, match="not an optional dependency"):
        require("json", "a feature")
    assert issubclass(MissingDependencyError, BayesdropError)
    assert issubclass(MissingDependencyError, ImportError)
    assert bayesdrop.MissingDependencyError is MissingDependencyError


def test_pyro_subpackage_without_pyro():
    done = run_python(
        """
        try:
            import bayesdrop.pyro
        except ImportError as error:
            print(type(error).__name__, error)
        """,
        "pyro",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MissingDependencyError bayesdrop.pyro needs pyro-ppl")
    assert 'pip install "bayesdrop[pyro]"' in done.stdout


@pytest.mark.parametrize("name", ["IsotonicCalibration", "HistogramBinning", "BetaCalibration"])
def test_netcal_recalibrators_without_netcal(name):
    done = run_python(
        f"""
        import torch
        from bayesdrop.calibration import {name}
        from bayesdrop.exceptions import MissingDependencyError
        probs = torch.full((20, 2), 0.5)
        try:
            {name}().fit(probs, torch.arange(20) % 2)
        except MissingDependencyError as error:
            print(error)
        """,
        "netcal",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{name} needs netcal")
    assert 'pip install "bayesdrop[recal]"' in done.stdout


def test_extras_agree_with_pyproject():
    extras = PYPROJECT["project"]["optional-dependencies"]

    def names(requirements):
        return {re.split(r"[<>=!~; \[]", r, maxsplit=1)[0].lower() for r in requirements}

    core = names(PYPROJECT["project"]["dependencies"])
    assert core == {"torch", "numpy", "scikit-learn", "tqdm"}
    for distribution, extra in EXTRAS.values():
        assert distribution in names(extras[extra]), (distribution, extra)
        assert distribution not in core
        assert extra in extras["all"][0]
    assert "netcal>=1.4" in extras["recal"]  # an older netcal can replace the user's torch
    assert "bayesdrop[all]" in extras["test"]
    # the five packages the project card names stay installable (scipy through scikit-learn)
    listed = re.search(r"\[(.*)\]", extras["all"][0]).group(1).split(",")
    every = core | names(extras["test"]).union(*(names(extras[e]) for e in listed))
    assert {"torch", "pyro-ppl", "scipy", "scikit-learn", "netcal"} <= every


def test_one_version():
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "bayesdrop/__init__.py"
    version = bayesdrop.__version__
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(r"^version: (.+)$", citation, re.M).group(1) == version
    bibtex = (ROOT / "docs" / "project" / "citation.rst").read_text(encoding="utf-8")
    assert re.search(r"version = \{(.+)\}", bibtex).group(1) == version


def test_license_and_long_description():
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License\n\nCopyright (c) 2026 bayesdrop developers\n")
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# bayesdrop\n\n```bash\nmake demo ")  # the developers' commands
    pypi = (ROOT / PYPROJECT["project"]["readme"]["file"]).read_text(encoding="utf-8")
    assert "make " not in pypi and "pip install bayesdrop" in pypi

    def snippet(text):
        return re.search(r"```python\n(.*?)```", text, re.S).group(1)

    assert snippet(pypi) == snippet(readme)  # the snippet .ci/install_smoke.sh runs


def test_html_report_without_matplotlib_names_the_extra(tmp_path):
    done = run_python(
        f"""
        import sys
        import numpy as np
        from bayesdrop.cli import main
        gen = np.random.default_rng(0)
        probs = gen.dirichlet(np.ones(3), size=200)
        np.savez({str(tmp_path / "p.npz")!r}, probs=probs, target=gen.integers(0, 3, 200))
        md = main(["report", {str(tmp_path / "p.npz")!r}, "--out", {str(tmp_path / "r.md")!r}])
        html = main(["report", {str(tmp_path / "p.npz")!r}, "--out", {str(tmp_path / "r.html")!r}])
        print(md, html)
        """,
        "matplotlib",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("0 1")  # Markdown needs no extra; HTML fails cleanly
    assert "needs matplotlib" in done.stderr and 'pip install "bayesdrop[plot]"' in done.stderr
    assert "Traceback" not in done.stderr and "bug" not in done.stderr
