"""Types that check for users (issue 24): the package is marked typed, so what a user writes
against it must pass mypy, and the result types must follow ``task=``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[1]


def run_mypy(*paths: Path) -> tuple[int, str]:
    """mypy with the project's configuration on ``paths`` (its cache in .mypy_cache, so a second
    run takes seconds)."""
    out, err, rc = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary", *map(str, paths)]
    )
    return rc, out + err


def test_user_code_and_the_readme_snippet_type_check(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    snippet = tmp_path / "readme_snippet.py"
    snippet.write_text(re.search(r"```python\n(.*?)```", readme, re.S).group(1))
    # the negative case shows the check can fail: a regression result has no .probs
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "import torch\nfrom torch import nn\nimport bayesdrop\n"
        "model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))\n"
        "pred = bayesdrop.mc_predict(model, torch.randn(3, 2), task='regression', tau=1.0)\n"
        "pred.probs\n"
    )
    rc, out = run_mypy(ROOT / "tests" / "type_checks" / "user_code.py", snippet, wrong)
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert rc == 1 and len(errors) == 1, out
    # (the path may be an earlier run's: mypy's cache keys files by module name and content)
    assert "wrong.py:6: error:" in errors[0], out
    assert '"RegressionPrediction" has no attribute "probs"' in errors[0], out
