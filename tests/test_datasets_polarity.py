"""The sentence-polarity loader: what it reads, and an error that says where to get the data
(it cannot be downloaded) when the files are not there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bayesdrop import BayesdropValueError
from bayesdrop.datasets import load_polarity

DATA = Path(os.environ.get("BAYESDROP_DATA", Path(__file__).parents[2] / "shared" / "data"))
HOW = (
    r"cannot fetch sentence polarity.*"
    r"https://www\.cs\.cornell\.edu/people/pabo/movie-review-data/rt-polaritydata\.tar\.gz.*"
    r"<data>/rt-polarity/.*export BAYESDROP_DATA=<data>"
)


def _files(folder: Path, pos: bytes, neg: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rt-polarity.pos").write_bytes(pos)
    (folder / "rt-polarity.neg").write_bytes(neg)
    return folder


def test_reads_latin1_sentences_positive_first(tmp_path):
    _files(tmp_path / "rt-polarity", b"caf\xe9 society . \r\n\nfine .\n", b"dull . \n")
    sentences, labels = load_polarity(tmp_path)
    assert sentences == ["café society .", "fine .", "dull ."]
    assert labels.tolist() == [1, 1, 0]
    assert load_polarity(tmp_path / "rt-polarity")[0] == sentences  # the folder itself


def test_reads_the_root_from_the_environment(tmp_path, monkeypatch):
    _files(tmp_path / "rt-polarity", b"good .\n", b"bad .\n")
    monkeypatch.setenv("BAYESDROP_DATA", str(tmp_path))
    assert load_polarity()[0] == ["good .", "bad ."]


def test_no_data_folder_says_where_to_get_it(monkeypatch):
    monkeypatch.delenv("BAYESDROP_DATA", raising=False)
    with pytest.raises(BayesdropValueError, match=r"Expected `root` to be the data folder.*" + HOW):
        load_polarity()


def test_a_missing_file_says_where_to_get_it(tmp_path):
    (tmp_path / "rt-polarity").mkdir()
    (tmp_path / "rt-polarity" / "rt-polarity.pos").write_text("good .\n")
    with pytest.raises(
        BayesdropValueError, match=r"a folder containing 'rt-polarity.neg'.*without it.*" + HOW
    ):
        load_polarity(tmp_path)
    with pytest.raises(BayesdropValueError, match=r"'rt-polarity.pos'.*" + HOW):
        load_polarity(tmp_path / "nowhere")


def test_an_empty_file_is_an_error_naming_it(tmp_path):
    _files(tmp_path, b"good .\n", b"\n \n")
    with pytest.raises(BayesdropValueError, match=r"`rt-polarity.neg` to be a file of sentences"):
        load_polarity(tmp_path)


@pytest.mark.skipif(not (DATA / "rt-polarity").is_dir(), reason="rt-polarity not available")
def test_the_published_data():
    sentences, labels = load_polarity(DATA)
    assert len(sentences) == 10662 and int(labels.sum()) == 5331
    assert sentences[0].startswith("the rock is destined to be the 21st century's new")
