"""`bayesdrop report` on hostile but realistic inputs (issue 21), run in-process: valid files in
unusual types are converted, everything else is one paragraph on stderr, never a traceback."""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bayesdrop import cli
from bayesdrop.calibration import CalibrationReport


@pytest.fixture(autouse=True)
def _agg(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")


def _data(num_classes: int = 3, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(0)
    probs = gen.dirichlet(np.ones(num_classes), size=n)
    return probs, gen.integers(0, num_classes, n)


def report(capsys, *args: object) -> tuple[int, str, str]:
    status = cli.main(["report", *(os.fspath(a) if isinstance(a, Path) else a for a in args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return status, out, err


def error(capsys, *args: object) -> str:
    """The one-paragraph error of a run that must fail with status 1."""
    status, out, err = report(capsys, *args)
    assert status == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayesdrop report: error: Expected"), err
    return lines[0]


def _ece(path: Path) -> float:
    return json.loads(path.read_text())["metrics"]["ece"]


# --- valid inputs in other types are converted ------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64", ">i8", ">u4", "<i4"])
def test_integer_labels_of_any_width_and_byte_order(capsys, tmp_path, dtype):
    probs, target = _data()
    np.savez(tmp_path / "p.npz", probs=probs.astype(">f8"), target=target.astype(dtype))
    status, _, err = report(capsys, tmp_path / "p.npz", "--out", tmp_path / "r.json")
    assert status == 0, err
    expected = CalibrationReport.from_predictions(probs, target)
    assert _ece(tmp_path / "r.json") == pytest.approx(expected.metrics.ece)


def test_boolean_labels_are_zero_and_one(capsys, tmp_path):
    probs, target = _data(num_classes=2)
    np.savez(tmp_path / "p.npz", probs=probs, target=target.astype(bool))
    assert report(capsys, tmp_path / "p.npz", "--out", tmp_path / "r.json")[0] == 0
    expected = CalibrationReport.from_predictions(probs, target).metrics.ece
    assert _ece(tmp_path / "r.json") == pytest.approx(expected)


def test_uint64_labels_beyond_int64_are_an_error(capsys, tmp_path):
    probs, target = _data()
    labels = target.astype(np.uint64)
    labels[0] = 2**64 - 1
    np.savez(tmp_path / "p.npz", probs=probs, target=labels)
    line = error(capsys, tmp_path / "p.npz", "--out", tmp_path / "r.json")
    assert "Expected `target` to be values that fit in int64" in line


def test_string_labels_map_through_classes(capsys, tmp_path):
    probs, target = _data()
    classes = np.array(["dog", "cat", "bird"])  # not sorted: the order of the last axis counts
    np.savez(tmp_path / "p.npz", probs=probs, target=classes[target], classes=classes)
    status, _, err = report(capsys, tmp_path / "p.npz", "--out", tmp_path / "r.json")
    assert status == 0, err
    expected = CalibrationReport.from_predictions(probs, target).metrics.ece
    assert _ece(tmp_path / "r.json") == pytest.approx(expected)


def test_string_labels_without_classes_are_refused(capsys, tmp_path):
    probs, target = _data()
    np.savez(tmp_path / "p.npz", probs=probs, target=np.array(["a", "b", "c"])[target])
    line = error(capsys, tmp_path / "p.npz", "--out", tmp_path / "r.json")
    assert "Expected `target` to be integer class labels, or strings with a `classes`" in line
    assert "Save classes=np.array([...]) with the 3 class names in the order" in line
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("classes", "labels", "message"),
    [
        (["a", "b"], ["a", "b"], r"Expected `classes` to be 3 class names"),
        (["a", "b", "a"], ["a", "b"], r"Expected `classes` to be distinct class names"),
        (["a", "b", "c"], ["a", "z"], r"Expected `target` to be labels named in `classes`.*'z'"),
        ([1, 2, 3], ["a", "b"], r"Expected `classes` to be 3 class names \(strings\)"),
    ],
)
def test_bad_string_labels(capsys, tmp_path, classes, labels, message):
    probs, _ = _data(n=len(labels))
    np.savez(tmp_path / "p.npz", probs=probs, target=np.array(labels), classes=np.array(classes))
    line = error(capsys, tmp_path / "p.npz", "--out", tmp_path / "r.json")
    assert re.search(message, line), line


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("target", np.arange(60).astype("datetime64[D]"), r"`target`.*dates of dtype datetime64"),
        ("target", np.arange(60).astype("timedelta64[s]"), r"`target`.*time spans"),
        ("probs", np.ones((60, 3), complex) / 3, r"`probs` to be an array of real numbers.*compl"),
    ],
)
def test_unusable_dtypes(capsys, tmp_path, key, value, message):
    probs, target = _data()
    np.savez(tmp_path / "p.npz", **{"probs": probs, "target": target, key: value})
    line = error(capsys, tmp_path / "p.npz", "--out", tmp_path / "r.json")
    assert re.search(message, line), line


def test_regression_arrays_big_endian(capsys, tmp_path):
    gen = np.random.default_rng(1)
    mean = gen.normal(size=100)
    target = mean + gen.normal(size=100)
    np.savez(
        tmp_path / "r.npz",
        mean=mean.astype(">f8"),
        std=np.full(100, 1.0, ">f4"),
        target=target.astype(">f8"),
    )
    status, out, err = report(capsys, tmp_path / "r.npz", "--out", tmp_path / "r.json")
    assert status == 0, err
    assert "PICP at 0.9" in out


# --- names --------------------------------------------------------------------------------------


def test_report_name_with_dollars_is_text(capsys, tmp_path):
    probs, target = _data()
    np.savez(tmp_path / "p.npz", probs=probs, target=target)
    name = "resnet $x^2$ {cost} 50$"
    html = tmp_path / "r.html"
    status, _, err = report(
        capsys, tmp_path / "p.npz", "--out", html, "--json", tmp_path / "r.json", "--name", name
    )
    assert status == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["name"] == name
    assert html.read_text().startswith("<!DOCTYPE html>") and "$x^2$" in html.read_text()


def test_file_name_that_is_not_utf8(capsys, tmp_path):
    probs, target = _data()
    path = tmp_path / os.fsdecode(b"preds-\xff\xfe.npz")
    try:
        np.savez(path, probs=probs, target=target)
    except (OSError, UnicodeEncodeError):
        pytest.skip("the file system does not take non-UTF-8 names")
    out = tmp_path / os.fsdecode(b"out-\xff.json")
    status, _, err = report(capsys, path, "--out", out)
    assert status == 0, err
    assert "wrote" in err and r"out-\xff.json" in err  # the bytes escaped, not a crash
    assert json.loads(out.read_text())["name"] == r"preds-\xff\xfe"
    line = error(capsys, tmp_path / os.fsdecode(b"missing-\xff.npz"))
    assert r"missing-\xff.npz" in line


# --- arrays that must not be allocated --------------------------------------------------------


def _npz_declaring(path: Path, shape: tuple[int, ...], payload: bytes = b"\0" * 64) -> None:
    """An .npz whose `probs` header declares ``shape`` (float64) over ``payload`` bytes."""
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("probs.npy", header.getvalue() + payload)
        target = io.BytesIO()
        np.lib.format.write_array(target, np.zeros(4, np.int64))
        archive.writestr("target.npy", target.getvalue())


def test_array_declared_larger_than_its_member_is_refused(capsys, tmp_path):
    path = tmp_path / "bomb.npz"
    _npz_declaring(path, (2**40, 4))  # 32 TiB declared in a few hundred bytes
    assert path.stat().st_size < 1000
    line = error(capsys, path, "--out", tmp_path / "r.json")
    assert "Expected `predictions` to be a .npz file whose arrays fit in it" in line
    assert "`probs` of shape (1099511627776, 4) (35,184,372,088,832 bytes)" in line
    assert "truncated or damaged" in line


def test_array_above_the_documented_limit_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "MAX_ARRAY_BYTES", 1000)
    probs, target = _data()  # 60 x 3 float64: 1,440 bytes
    np.savez(tmp_path / "p.npz", probs=probs, target=target)
    line = error(capsys, tmp_path / "p.npz", "--out", tmp_path / "r.json")
    assert "Expected `predictions` to be arrays of at most 1,000 bytes" in line
    assert "`probs` of shape (60, 3) (1,440 bytes)" in line


def test_member_that_is_not_an_array(capsys, tmp_path):
    probs, target = _data()
    np.savez(tmp_path / "p.npz", probs=probs, target=target)
    with zipfile.ZipFile(tmp_path / "p.npz", "a") as archive:
        archive.writestr("notes.txt", "hello")
    line = error(capsys, tmp_path / "p.npz", "--out", tmp_path / "r.json")
    assert "a .npz file of numpy arrays" in line and "`notes.txt` is not one" in line


# --- output paths -------------------------------------------------------------------------------


def test_out_equal_to_the_input_is_refused(capsys, tmp_path):
    probs, target = _data()
    path = tmp_path / "p.npz"
    np.savez(path, probs=probs, target=target)
    before = path.read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.npz").symlink_to(path)
    spellings = [path, tmp_path / "sub" / ".." / "p.npz", tmp_path / "link.npz"]
    for option in ("--out", "--json", "--markdown"):
        for spelling in spellings:
            extra = [] if option == "--out" else ["--out", tmp_path / "r.html"]
            line = error(capsys, path, *extra, option, spelling, "--format", "json")
            assert f"Expected `{option}` to be a file other than the predictions file" in line
            assert "would overwrite its input" in line
    assert path.read_bytes() == before


def test_bad_extra_output_names_its_option(capsys, tmp_path):
    probs, target = _data()
    np.savez(tmp_path / "p.npz", probs=probs, target=target)
    out = tmp_path / "r.html"
    for option in ("--json", "--markdown"):
        line = error(capsys, tmp_path / "p.npz", "--out", out, option, tmp_path / "no" / "r")
        assert line.startswith(f"bayesdrop report: error: Expected `{option}` to be a path in")
        line = error(capsys, tmp_path / "p.npz", "--out", out, option, tmp_path)
        assert f"Expected `{option}` to be a file path, but got the folder" in line
    line = error(capsys, tmp_path / "p.npz", "--out", out, "--json", out)
    assert "Expected `--json` to be a file other than that of --out" in line
    assert not out.exists()


# --- options and unexpected failures ----------------------------------------------------------


def test_ignore_index_beyond_int64_is_an_option_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", "p.npz", "--ignore-index", str(2**70)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "does not fit in a 64-bit integer" in err and "Traceback" not in err


def test_option_error_with_undecodable_bytes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", "p.npz", "--format", os.fsdecode(b"\xff")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: '\\udcff'" in err and "Traceback" not in err


def test_an_unexpected_error_is_one_paragraph(capsys, tmp_path, monkeypatch):
    probs, target = _data()
    np.savez(tmp_path / "p.npz", probs=probs, target=target)

    def broken(*args, **kwargs):
        raise RuntimeError("something\ninside broke")

    monkeypatch.setattr(cli.CalibrationReport, "from_predictions", broken)
    status, _, err = report(capsys, tmp_path / "p.npz", "--out", tmp_path / "r.json")
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert "RuntimeError: something inside broke. This is a bug in bayesdrop" in err
