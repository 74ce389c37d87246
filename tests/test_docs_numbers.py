"""Numbers quoted across pages are produced by the build, never typed.

A tutorial writes the numbers other pages quote into a JSON file
(``docs/_ext/generated_numbers.py``) and the pages quote them with the ``:number:`` role. These
tests check (1) that the role resolves a written number, and that a missing file or key fails a
``-W`` build naming the key and the tutorial to run; (2) that the landing page, the
getting-started pages and the user guide quote no decimal number in prose that the role does not
produce, apart from the facts in :data:`FACTS` (defaults, requirements, constants, benchmark
tables that name their command and ``benchmarks/README.md``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
EXT = ROOT / "docs" / "_ext"
sys.path.insert(0, str(EXT))

import generated_numbers  # noqa: E402

# ---------------------------------------------------------------------------------------------
# (1) the role


def _write(folder: Path, name: str, numbers: dict, mode: str = "full") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"tutorial": f"tutorials/{name}.py", "mode": mode, "numbers": numbers}
    (folder / f"{name}.json").write_text(json.dumps(data))


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    tutorials = tmp_path / "tutorials"
    tutorials.mkdir()
    (tutorials / "plot_demo.py").write_text('open(folder / "demo.json", "w")\n')
    return [tutorials]


def test_a_written_number_resolves_as_stored_or_formatted(tmp_path, sources, monkeypatch):
    monkeypatch.delenv("BAYESDROP_SMOKE", raising=False)
    _write(tmp_path / "numbers", "demo", {"auroc": 0.9767, "samples": 1000})
    text, path, warning = generated_numbers.resolve("demo.auroc", tmp_path / "numbers", sources)
    assert (text, path.name, warning) == ("0.9767", "demo.json", None)
    assert generated_numbers.resolve("demo.auroc:.2f", tmp_path / "numbers", sources)[0] == "0.98"
    assert generated_numbers.resolve("demo.samples:,", tmp_path / "numbers", sources)[0] == "1,000"


def test_a_missing_number_names_the_key_and_the_tutorial(tmp_path, sources):
    folder = tmp_path / "numbers"
    with pytest.raises(generated_numbers.NumberError, match=r"demo\.auroc.*plot_demo\.py"):
        generated_numbers.resolve("demo.auroc", folder, sources)  # no file
    _write(folder, "demo", {"other": 1})
    with pytest.raises(generated_numbers.NumberError, match=r"no key 'auroc'.*plot_demo\.py"):
        generated_numbers.resolve("demo.auroc", folder, sources)
    with pytest.raises(generated_numbers.NumberError, match=r"no tutorial writes nowhere\.json"):
        generated_numbers.resolve("nowhere.x", folder, sources)


def test_a_number_from_the_other_mode_is_flagged(tmp_path, sources, monkeypatch):
    monkeypatch.setenv("BAYESDROP_SMOKE", "1")
    _write(tmp_path, "demo", {"auroc": 0.9}, mode="full")
    warning = generated_numbers.resolve("demo.auroc", tmp_path, sources)[2]
    assert warning is not None and "full-mode run" in warning


CONF = """
import sys
sys.path.insert(0, {ext!r})
extensions = ["generated_numbers"]
generated_numbers_dir = {numbers!r}
generated_numbers_sources = ["tutorials"]
"""


def _build(project: Path, page: str) -> subprocess.CompletedProcess[str]:
    (project / "index.rst").write_text(f"Test\n====\n\n{page}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("BAYESDROP_NUMBERS", "BAYESDROP_SMOKE")}
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "-q", "-b", "html", str(project),
         str(project / "_build")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_docs_build_quotes_written_numbers_and_fails_on_a_missing_one(tmp_path, sources):
    numbers = tmp_path / "numbers"
    _write(numbers, "demo", {"auroc": 0.9767})
    (tmp_path / "conf.py").write_text(CONF.format(ext=str(EXT), numbers=str(numbers)))

    ok = _build(tmp_path, "AUROC :number:`demo.auroc:.3f`.")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (
        'AUROC <span class="generated-number">0.977</span>'
        in (tmp_path / "_build" / "index.html").read_text()
    )

    missing = _build(tmp_path, "AUROC :number:`demo.aupr`.")
    assert missing.returncode != 0
    assert "demo.aupr" in missing.stderr and "plot_demo.py" in missing.stderr

    (numbers / "demo.json").unlink()
    gone = _build(tmp_path, "AUROC :number:`demo.auroc`.")
    assert gone.returncode != 0
    assert "demo.json does not exist" in gone.stderr and "plot_demo.py" in gone.stderr


# ---------------------------------------------------------------------------------------------
# (2) no typed numbers in prose

PAGES = sorted(
    [
        ROOT / "docs" / "index.rst",
        *(ROOT / "docs" / "user_guide").glob("*.rst"),
        *(ROOT / "docs" / "getting_started").glob("*.rst"),
    ]
)

# Lines whose decimal numbers are facts, not outputs of a run: (page, a regular expression the
# line matches, why the numbers may stay typed). Every entry says where the number comes from.
FACTS: list[tuple[str, str, str]] = [
    # defaults of the API (bayesdrop.mc_predict's tolerance) and a constant (the normal 97.5 %
    # quantile of a central 95 % interval)
    ("user_guide/uncertainty_measures.rst", r"``tolerance`` \(default 0\.01\)", "a default"),
    ("user_guide/uncertainty_measures.rst", r"mean ± 1\.96 \*", "the normal quantile"),
    # the FAQ's Concrete Dropout collapse: benchmarks/README.md (benchmarks/concrete_collapse.py,
    # the "reference" rows at 400/1000/2000/4000 epochs), as the paragraph says
    ("user_guide/faq.rst", r"learned rate of the input layer was 0\.011", "benchmarks/README.md"),
    ("user_guide/faq.rst", r"4,000 \(hidden layer: 0\.013", "benchmarks/README.md"),
    # requirements (versions), not outputs
    ("index.rst", r"^Python 3\.10 or newer, PyTorch [\d.]+ or newer", "requirements"),
    ("getting_started/install.rst", r"Python 3\.10 or newer|PyTorch [\d.]+ or newer", "versions"),
    ("getting_started/install.rst", r"netcal 1\.4 or newer|netcal is held at 1\.4", "versions"),
    ("user_guide/library_models.rst", r"^peft 0\.21;", "the version the tests ran"),
    # a model's configuration (BERT's and GPT-2's dropout rate), not an output
    ("user_guide/library_models.rst", r"dropout of 0\.1 everywhere|ships with dropout 0\.1",
     "config"),
    # a benchmark with its command: benchmarks/hooked_engine.py, benchmarks/README.md
    ("user_guide/library_models.rst", r"within 1\.16x", "benchmarks/hooked_engine.py"),
    ("user_guide/library_models.rst", r"it was 2\.1x \(dropout\) and 2\.6x|^loop, within 1\.3x",
     "benchmarks/hooked_engine.py, benchmarks/README.md"),
    ("user_guide/library_models.rst", r"4\.8x \(GPT-2\) and 6\.6x", "benchmarks/generate.py"),
    # the fused calibration kernel's speed-up: benchmarks/README.md
    ("getting_started/install.rst", r"\(13\.8x netcal's ECE|^2\.5x with PyTorch's kernels",
     "benchmarks/README.md"),
    # concrete_collapse.rst: every figure is from benchmarks/README.md, each paragraph and table
    # names its command (benchmarks/uci.py, uci_concrete_ablation.py, bandit.py): its two
    # tables' cells and the prose lines that quote them
    ("user_guide/concrete_collapse.rst", r"^     - ", "benchmark tables (uci.py, ablation)"),
    ("user_guide/concrete_collapse.rst", r"log-likelihood -0\.74 and -0\.75", "benchmarks/uci.py"),
    ("user_guide/concrete_collapse.rst", r"^1e-4 and are still falling", "benchmarks/uci.py"),
    ("user_guide/concrete_collapse.rst", r"where the test error is 4\.8", "benchmarks/uci.py"),
    ("user_guide/concrete_collapse.rst", r"MC dropout on this data set \(-2\.939\)", "uci.py"),
    ("user_guide/concrete_collapse.rst", r"^The opposite failure: rates that rise to 0\.5$|"
     r"^rich arms learned rates|rates \*up\* towards 0\.5\.|^action \(almost one action|"
     r"^0\.499\. A learned rate",
     "benchmarks/bandit.py, benchmarks/README.md section bandit"),
    ("user_guide/concrete_collapse.rst", r"threshold`` \(default 1e-3\)", "a default"),
]  # fmt: skip

_SKIPPED_DIRECTIVES = re.compile(
    r"^(\s*)\.\. (code-block|code|sourcecode|math|literalinclude|testcode|testoutput|doctest|"
    r"raw|highlight|only|ipython|jupyter-execute|image|figure|toctree|autosummary|auto\w+|"
    r"py:\w+|list-table-skip)::"
)
_COMMENT = re.compile(r"^(\s*)\.\.(\s|$)(?!.*::)")
# inline markup whose content is not prose: literals, any role (math, number, doc, func, ...),
# substitution references, hyperlink targets and URLs
_INLINE = re.compile(
    r"``.*?``|:[\w:+-]+:`[^`]*`|`[^`]*`_{1,2}|\|[^|\s][^|]*\||https?://\S+|<[^>\s]+>"
)
# 0.975 (also "0.975." and "1.16x"), -3.31, 1,000.5, 5.3e-4, 1e-4; not 10 or 2,000
DECIMAL = re.compile(r"(?<![\w.])[-+]?(?:\d[\d,]*\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)(?!\.?\d)")


def prose_numbers(text: str) -> list[tuple[int, str, str]]:
    """``(line number, number, line)`` for each decimal number in the prose of an rst text:
    outside directives that hold code or math, literal blocks (``::``), doctest blocks, comments,
    inline literals and roles (``:number:`...``` among them)."""
    found = []
    lines = text.splitlines()
    skip_indent: int | None = None  # skipping an indented block deeper than this
    literal_next, last_indent = False, 0
    doctest = False
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if doctest:
            if stripped:
                continue
            doctest = False
        if literal_next and stripped:
            literal_next = False
            skip_indent = last_indent
            if indent > last_indent:
                continue
        match = _SKIPPED_DIRECTIVES.match(line) or _COMMENT.match(line)
        if match:
            skip_indent = len(match.group(1))
            continue
        if stripped.startswith(">>>"):
            doctest = True
            continue
        if stripped.endswith("::") and not stripped.startswith(".. "):  # not a directive
            literal_next, last_indent = True, indent
        prose = _INLINE.sub(" ", line)
        found.extend((number, m.group(0), line) for m in DECIMAL.finditer(prose))
    return found


def _allowed(page: str, line: str) -> bool:
    return any(page == name and re.search(pattern, line) for name, pattern, _ in FACTS)


def typed_numbers() -> list[str]:
    bad = []
    for path in PAGES:
        page = path.relative_to(ROOT / "docs").as_posix()
        for number, value, line in prose_numbers(path.read_text(encoding="utf-8")):
            if not _allowed(page, line):
                bad.append(f"docs/{page}:{number}: {value} in {line.strip()!r}")
    return bad


def test_pages_quote_no_typed_numbers():
    bad = typed_numbers()
    assert not bad, (
        "decimal numbers typed into prose (quote them with :number: from the tutorial that "
        "computes them, or list a fact in FACTS with its source):\n" + "\n".join(bad)
    )


def test_every_fact_still_matches_a_line():
    """An allow-list entry whose line was rewritten is removed, not left to match a new one."""
    for page, pattern, why in FACTS:
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        assert any(re.search(pattern, line) for line in text.splitlines()), (page, pattern, why)


def test_the_scan_catches_a_typed_number():
    page = textwrap.dedent(
        """
        Title
        =====

        The AUROC was 0.975 on the digits, :number:`digits.auroc_entropy` here.

        .. code-block:: python

           x = 0.5

        A literal ``0.25`` and :math:`0.5`, and a block::

           1.5

        >>> 2.5
        2.5

        .. note::

           The ECE fell to 0.031.
        """
    )
    assert [value for _, value, _ in prose_numbers(page)] == ["0.975", "0.031"]
