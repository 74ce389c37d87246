"""The tutorials' checked claims, and the docs build failing when one fails.

Each tutorial in ``tutorials/`` states the claims its page makes and checks them with
``assert``. The full-mode claims are checked where the pages are made: ``make docs`` (run by
``.ci/run``) executes every tutorial in full mode, and a raising tutorial fails the build
(sphinx-gallery's ``abort_on_example_error`` with ``-W``), which the last test here shows on a
throw-away gallery. The tests below run the quick tutorials whose claims also hold in smoke mode
(``BAYESDROP_SMOKE=1``), each in a fresh interpreter as sphinx-gallery would, so that ``make
test`` alone catches a library change that breaks a tutorial or one of those claims.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DATA = Path(os.environ.get("BAYESDROP_DATA", ROOT.parent / "shared" / "data"))

# As docs/conf.py and tests/conftest.py: transformers imports torchvision, whose CUDA operator
# registrations do not load beside the CPU torch; the tutorials use no torchvision operator.
RUNNER = textwrap.dedent(
    """
    import runpy, sys, types
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))
    runpy.run_path(sys.argv[1], run_name="__main__")
    """
)


def run_tutorial(name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        BAYESDROP_SMOKE="1",
        BAYESDROP_DATA=str(DATA),
        MPLBACKEND="Agg",
        OMP_NUM_THREADS="1",
        PYTHONWARNINGS="ignore",  # the tutorials' output, not the test suite's warning policy
    )
    script = ROOT / "tutorials" / name
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("name", "needs_data"),
    [
        # claims 1-5 checked in smoke mode
        ("classification/plot_00_own_model_digits.py", False),
        # the calibration API in use (report, display, temperature scaling)
        ("calibration/plot_calibration_report.py", False),
        # claims 3-4 (untied gate masks, word-type masks tied by word) in every run
        ("language/plot_variational_lstm_ptb.py", True),
        # claims 2 and 4 (only the LoRA adapters' dropout sampled; MI a small part of the
        # predictive entropy of generated words) in every run
        ("language/plot_lora_language_model.py", True),
        # claims 1-5 (noise check, accuracy, MI of mistakes, AUROC, HTML report written)
        ("language/plot_hf_text_classifier.py", True),
        # claims 1-4 (cached engine, MI of wrong pixels, background most certain, interiors
        # as uncertain as edges)
        ("dense_prediction/plot_segmentation_map.py", False),
        # claims 1-5 but the MI part of 5 (no-dropout refusal, cached engine runs the backbone
        # once, MC accuracy, misclassification AUROC, MNIST more uncertain)
        ("classification/plot_torchvision_dropout_head.py", True),
        # claims 1-5 but the "five times" of 3 (DropPath and head dropout found, functional
        # dropout refused by noise=, head-only faster with about the same mean MI)
        ("classification/plot_timm_drop_path.py", True),
    ],
)
def test_tutorial_runs_and_its_smoke_claims_hold(name: str, needs_data: bool, tmp_path: Path):
    if needs_data and not DATA.is_dir():
        pytest.skip(f"needs the data sets under {DATA}")
    result = run_tutorial(name, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "ran in" in result.stdout  # each tutorial states its run time


GALLERY_CONF = """
extensions = ["sphinx_gallery.gen_gallery"]
sphinx_gallery_conf = {{
    "examples_dirs": ["examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": "/plot_",
    "abort_on_example_error": {abort},
    "plot_gallery": "True",
}}
"""


def test_a_failed_tutorial_claim_fails_the_docs_build(tmp_path: Path):
    conf = (ROOT / "docs" / "conf.py").read_text()
    assert '"abort_on_example_error": True' in conf and "only_warn_on_example_error" not in conf
    (tmp_path / "conf.py").write_text(GALLERY_CONF.format(abort=True))
    (tmp_path / "index.rst").write_text("Test\n====\n\n.. toctree::\n\n   auto_examples/index\n")
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "README.rst").write_text("Examples\n========\n")
    (examples / "plot_claim.py").write_text(
        '"""\nA claim\n=======\n\nThe page says two is more than three.\n"""\n\nassert 2 > 3\n'
    )
    build = [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html"]
    result = subprocess.run(
        [*build, str(tmp_path), str(tmp_path / "_build")],
        env=dict(os.environ, MPLBACKEND="Agg"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert "AssertionError" in result.stdout + result.stderr
