"""PTB loader, the language model, MC perplexity, and a tiny run of benchmarks/ptb_lm.py."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import pytest
import torch

from bayesdrop.datasets import batchify, bptt_batches, load_ptb
from bayesdrop.models import LanguageModel, perplexity, train_epoch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BAYESDROP_DATA", REPO.parent / "shared" / "data"))
needs_ptb = pytest.mark.skipif(not (DATA / "ptb").is_dir(), reason="PTB not available")


@pytest.fixture(scope="module")
def ptb():
    return load_ptb(DATA)


@needs_ptb
def test_ptb_token_counts_and_vocabulary(ptb):
    assert (ptb.train.numel(), ptb.valid.numel(), ptb.test.numel()) == (929_589, 73_760, 82_430)
    assert ptb.vocab_size == 10_000
    eos = ptb.vocab.index("<eos>")
    assert "<unk>" in ptb.vocab
    first_line = "aer banknote berlitz calloway centrust cluett fromstein gitano guterman".split()
    assert [ptb.vocab[i] for i in ptb.train[:9]] == first_line
    assert int((ptb.train == eos).sum()) == 42_068  # one <eos> per line of ptb.train.txt


def test_ptb_missing_files(tmp_path):
    with pytest.raises(ValueError, match=r"`root` to be a folder containing 'ptb\.train\.txt'"):
        load_ptb(tmp_path)


def test_batchify_and_bptt():
    data = batchify(torch.arange(23), 4)  # 5 steps, 3 tokens dropped
    assert data.shape == (5, 4) and data[:, 1].tolist() == [5, 6, 7, 8, 9]
    chunks = list(bptt_batches(data, 3))
    assert [x.shape[0] for x, _ in chunks] == [3, 1]
    for x, y in chunks:
        torch.testing.assert_close(y, x + 1)
    with pytest.raises(ValueError, match="`data` to be a 1-D token stream"):
        batchify(torch.arange(3), 4)
    with pytest.raises(ValueError, match="`bptt` to be a positive integer"):
        next(bptt_batches(data, 0))


def test_language_model_options_and_errors():
    lm = LanguageModel(30, hidden_size=6, tie_weights=True)
    assert lm.decoder.weight is lm.embedding.embedding.weight
    with pytest.raises(ValueError, match="`embedding_size` to be equal to hidden_size=6"):
        LanguageModel(30, hidden_size=6, embedding_size=4, tie_weights=True)
    with pytest.raises(ValueError, match="`hidden_p` to be 0 with dropout='standard'"):
        LanguageModel(30, hidden_size=6, dropout="standard", hidden_p=0.2)
    with pytest.raises(ValueError, match="`dropout` to be one of 'variational', 'standard'"):
        LanguageModel(30, dropout="zoneout")
    with pytest.raises(ValueError, match=r"`data` to be a batchified token tensor \(T, N\)"):
        perplexity(lm, torch.arange(10))
    optimizer = torch.optim.SGD(lm.parameters(), lr=0.1)
    for bad, match in [
        (
            torch.randint(30, 40, (12, 2)),
            r"`data` to be token indices in \[0, 30\).*from 3\d to 3\d",
        ),
        (torch.full((12, 2), -1), r"indices in \[0, 30\).*from -1 to -1"),
    ]:
        with pytest.raises(ValueError, match=match):
            perplexity(lm, bad)
        with pytest.raises(ValueError, match=match):
            train_epoch(lm, bad, optimizer)
    with pytest.raises(TypeError, match=r"`data` to be integer token indices.*float32"):
        perplexity(lm, torch.rand(12, 2))


def test_mc_perplexity_with_zero_rates_equals_deterministic():
    torch.manual_seed(0)
    lm = LanguageModel(25, hidden_size=5)  # every rate 0
    data = torch.randint(25, (40, 3))
    det = perplexity(lm, data, bptt=7)
    assert perplexity(lm, data, bptt=7, num_samples=3) == pytest.approx(det, rel=1e-6)


def test_mc_pass_keeps_one_mask_and_carries_the_state():
    """With masks fixed per pass and the state carried, the chunk length cannot matter."""
    lm = LanguageModel(25, hidden_size=5, input_p=0.4, hidden_p=0.4, output_p=0.4,
                       embedding_p=0.3, init_range=1.0)  # fmt: skip
    lm.train()  # restored afterwards
    data = torch.randint(25, (40, 3))
    results = []
    for bptt in (4, 40):
        torch.manual_seed(1)
        results.append(perplexity(lm, data, bptt=bptt, num_samples=2, embedding_dropout=True))
    assert results[0] == pytest.approx(results[1], rel=1e-6)
    assert lm.training and lm.rnn.mc is None
    torch.manual_seed(1)
    assert perplexity(lm, data, num_samples=2) != pytest.approx(results[0], rel=1e-3)


def test_mc_averages_probabilities_not_logits():
    torch.manual_seed(0)
    lm = LanguageModel(25, hidden_size=5, num_layers=1, output_p=0.5, hidden_p=0.5, init_range=1.0)
    data = torch.randint(25, (20, 2))
    torch.manual_seed(3)
    mc = perplexity(lm, data, num_samples=4)
    torch.manual_seed(3)
    log_p = []
    with torch.no_grad():
        for _ in range(4):
            masks = lm.sample_masks(2)
            logits, _ = lm(data[:-1], masks=masks)
            log_p.append(logits.log_softmax(-1).gather(-1, data[1:, :, None]).reshape(-1))
    mean_p = torch.stack(log_p).exp().mean(0)
    assert mc == pytest.approx(math.exp(-mean_p.log().mean().item()), rel=1e-5)


@needs_ptb
@pytest.mark.parametrize("dropout", ["variational", "standard"])
def test_tiny_model_learns_ptb(ptb, dropout):
    torch.manual_seed(0)
    train = batchify(ptb.train[:4_000], 10)
    rates = {"input_p": 0.2, "output_p": 0.2}
    if dropout == "variational":
        rates.update(hidden_p=0.2, embedding_p=0.1)
    lm = LanguageModel(ptb.vocab_size, hidden_size=16, num_layers=1, dropout=dropout, **rates)
    before = perplexity(lm, train[:200])
    opt = torch.optim.SGD(lm.parameters(), lr=5.0)
    train_epoch(lm, train, opt, bptt=20)
    after = perplexity(lm, train[:200])
    assert before > 9_000 and after < 0.3 * before
    mc = perplexity(lm, train[:200], num_samples=2)
    assert math.isfinite(mc) and mc < 0.3 * before


@needs_ptb
def test_benchmark_tiny_configuration():
    spec = importlib.util.spec_from_file_location("ptb_lm", REPO / "benchmarks" / "ptb_lm.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = "--hidden 8 --layers 1 --epochs 1 --train-tokens 2000 --eval-tokens 400 --mc-samples 2"
    rows = bench.main(["--root", str(DATA), *args.split()])
    assert [r["model"] for r in rows] == ["variational", "standard"]
    for row in rows:
        assert all(1 < row[k] < 20_000 for k in ("valid_det", "valid_mc", "test_det", "test_mc"))
