"""`bayesdrop report` as a user runs it: its exit status, stdout and stderr.

The command runs in-process (``bayesdrop.cli.main``, as the console script calls it); one smoke
test runs it as a subprocess, as a user does (an interpreter start costs about 5 s here, and the
in-process run tests the same code)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

from bayesdrop.calibration import CalibrationReport, RegressionReport
from bayesdrop.cli import main


def run(*args: str, cwd=None) -> types.SimpleNamespace:
    """``bayesdrop report *args`` in-process: exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(["report", *args])
            except SystemExit as exit:  # argparse's usage errors
                status = exit.code if isinstance(exit.code, int) else 1
    finally:
        os.chdir(here)
    return types.SimpleNamespace(returncode=status, stdout=out.getvalue(), stderr=err.getvalue())


def run_subprocess(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bayesdrop", "report", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
    )


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """A classification file, a dense one, a regression one and a set of broken files."""
    folder = tmp_path_factory.mktemp("cli")
    gen = np.random.default_rng(0)
    logits = 3 * gen.normal(size=(300, 4))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    target = np.array([gen.choice(4, p=p) for p in probs])
    np.savez(folder / "cls.npz", probs=probs, target=target)
    dense = np.repeat(probs[:60, None], 5, axis=1)  # (N, T, C)
    tokens = np.repeat(target[:60, None], 5, axis=1)
    tokens[:, -1] = -100
    np.savez(folder / "dense.npz", probs=dense, target=tokens)
    mean = gen.normal(size=500)
    np.savez(
        folder / "reg.npz", mean=mean, std=np.full(500, 1.5), target=mean + gen.normal(size=500)
    )
    np.save(folder / "single.npy", probs)
    (folder / "empty.npz").write_bytes(b"")
    (folder / "text.npz").write_text("probs,target\n0.5,1\n")
    whole = (folder / "cls.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    np.savez(folder / "objects.npz", probs=np.array([{"a": 1}], dtype=object), target=target)
    return folder


@pytest.mark.parametrize("fmt", ["html", "md", "json"])
def test_formats(npz, tmp_path, fmt):
    out = tmp_path / f"r.{fmt}"
    result = run(str(npz / "cls.npz"), "--out", str(out), "--format", fmt, "--num-bins", "10")
    assert result.returncode == 0, result.stderr
    expected = CalibrationReport.from_predictions(
        np.load(npz / "cls.npz")["probs"], np.load(npz / "cls.npz")["target"], num_bins=10
    )
    assert f"{expected.metrics.ece:.4f}" in result.stdout  # the summary on stdout
    assert result.stderr.strip() == f"wrote {out}"
    text = out.read_text()
    if fmt == "json":
        assert json.loads(text)["metrics"]["ece"] == pytest.approx(expected.metrics.ece)
    elif fmt == "md":
        assert text.startswith("## Calibration report: cls") and "| ECE (10 bins, l1) |" in text
    else:
        assert text.startswith("<!DOCTYPE html>") and "data:image/png;base64," in text


def test_format_from_suffix_and_default_name(npz, tmp_path):
    assert run(str(npz / "cls.npz"), "--out", str(tmp_path / "a.json")).returncode == 0
    json.loads((tmp_path / "a.json").read_text())
    result = run(str(npz / "cls.npz"), "--format", "md", cwd=tmp_path)
    assert result.returncode == 0 and (tmp_path / "report.md").exists()


def test_dense_with_ignore_index(npz, tmp_path):
    out = tmp_path / "dense.json"
    result = run(str(npz / "dense.npz"), "--out", str(out), "--ignore-index", "-100")
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["data_shape"] == [60, 5] and data["num_ignored"] == 60
    assert data["metrics"]["num_data"] == 240


def test_regression_report(npz, tmp_path):
    out = tmp_path / "reg.json"
    result = run(str(npz / "reg.npz"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    arrays = np.load(npz / "reg.npz")
    expected = RegressionReport.from_predictions(arrays["mean"], arrays["std"], arrays["target"])
    data = json.loads(out.read_text())
    assert data["kind"] == "regression"
    assert data["crps"] == pytest.approx(expected.crps) and "PICP at 0.9" in result.stdout


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.npz", r"Expected `predictions` to be an existing .npz file"),
        ("single.npy", r"single-array .npy file.*numpy.savez"),
        ("empty.npz", r"but got an empty file"),
        ("text.npz", r"which is not a zip archive"),
        ("truncated.npz", r"readable .npz file.*damaged"),
        ("objects.npz", r"arrays of Python objects"),
    ],
)
def test_unreadable_files_fail_in_one_line(npz, tmp_path, name, message):
    result = run(str(npz / name), "--out", str(tmp_path / "r.html"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "allow_pickle" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayesdrop report: error: Expected")
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "r.html").exists()


def test_bad_out_paths(npz, tmp_path):
    result = run(str(npz / "cls.npz"), "--out", str(tmp_path))
    assert result.returncode == 1 and "Expected `--out` to be a file path" in result.stderr
    assert "the folder" in result.stderr and "Traceback" not in result.stderr
    missing = tmp_path / "no" / "such" / "r.html"
    result = run(str(npz / "cls.npz"), "--out", str(missing))
    assert result.returncode == 1 and "existing folder" in result.stderr
    assert f"Create {missing.parent} first" in result.stderr


def test_bad_content_and_options(npz, tmp_path):
    result = run(str(npz / "reg.npz"), "--format", "pdf")
    assert result.returncode == 2 and "invalid choice: 'pdf'" in result.stderr
    np.savez(
        tmp_path / "logits.npz",
        probs=np.random.default_rng(0).normal(size=(5, 3)),
        target=np.zeros(5, dtype=int),
    )
    result = run(str(tmp_path / "logits.npz"), "--out", str(tmp_path / "r.html"))
    assert result.returncode == 1 and "If these are logits" in result.stderr
    assert "Traceback" not in result.stderr


def test_version(capsys):
    import bayesdrop

    for argv in (["--version"], ["--version", "report"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
        assert capsys.readouterr() == (f"bayesdrop {bayesdrop.__version__}\n", "")


def test_the_console_command_as_a_subprocess(npz, tmp_path):
    """The one interpreter start: `python -m bayesdrop report` writes the same report."""
    out = tmp_path / "r.json"
    result = run_subprocess(str(npz / "cls.npz"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["kind"] == "classification"
    bad = run_subprocess(str(npz / "text.npz"), "--out", str(tmp_path / "x.html"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
