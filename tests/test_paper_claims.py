"""Smoke versions of the paper-claim benchmarks (rnn_sentiment, bandit, concrete_fashion).

Each benchmark's core functions run on a tiny configuration in a few seconds; the checks are
ones that can fail: shapes, bookkeeping of learned rates and data sizes, hand-counted regret.
The full runs and their tables are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
from pathlib import Path

import pytest
import torch

import bayesdrop

DATA = Path(os.environ.get("BAYESDROP_DATA", Path(__file__).parents[2] / "shared" / "data"))
BENCH = Path(__file__).parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"paper_claims_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


rnn = _load("rnn_sentiment")
bandit = _load("bandit")
fashion = _load("concrete_fashion")


# ------------------------------------------------------------------------------ rnn_sentiment


def _fake_text(n: int = 48, steps: int = 7, vocab: int = 30, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (n,), generator=gen)
    x = torch.randint(2, vocab, (n, steps), generator=gen)
    x[torch.arange(steps) >= lengths[:, None]] = rnn.PAD
    y = (x == 5).any(1).long()  # learnable: does word 5 occur?
    half = n // 2
    out = {"vocab": vocab}
    for part, rows in (("train", slice(None, half)), ("test", slice(half, None))):
        out |= {f"x_{part}": x[rows], f"len_{part}": lengths[rows], f"y_{part}": y[rows]}
    return out


def test_rnn_models_share_architecture_and_place_dropout_as_specified():
    models = {v: rnn.SentimentLSTM(30, 8, 6, v, p=0.3, embed_p=0.2) for v in rnn.VARIANTS}
    counts = {v: sum(q.numel() for q in m.parameters()) for v, m in models.items()}
    assert len(set(counts.values())) == 1  # same parameters for all three
    none, naive, var = models["none"], models["naive"], models["variational"]
    assert (none.lstm.input_p, none.drop_in.p, none.drop_out.p) == (0.0, 0.0, 0.0)
    assert (naive.lstm.hidden_p, naive.drop_in.p, naive.drop_out.p) == (0.0, 0.3, 0.3)
    assert (var.lstm.input_p, var.lstm.hidden_p, var.lstm.output_p) == (0.3, 0.3, 0.3)
    assert isinstance(var.embed, bayesdrop.EmbeddingDropout) and var.embed.p == 0.2
    with pytest.raises(ValueError, match="Expected variant"):
        rnn.SentimentLSTM(30, 8, 6, "gal", p=0.3, embed_p=0.2)


def test_rnn_reads_the_state_at_each_sentences_last_token():
    torch.manual_seed(0)
    model = rnn.SentimentLSTM(30, 8, 6, "none", p=0.0, embed_p=0.0).eval()
    data = _fake_text()
    x, lengths = data["x_train"][:5], data["len_train"][:5]
    padded = torch.cat([x, torch.full((5, 4), 7)], dim=1)  # junk after the padding is ignored
    padded[:, : x.shape[1]] = x
    full = model(x, lengths)
    assert full.shape == (5, 2)
    torch.testing.assert_close(model(padded, lengths), full)
    one = model(x[:1, : int(lengths[0])], lengths[:1])
    torch.testing.assert_close(one, full[:1])


def test_rnn_training_records_one_entry_per_epoch_and_mc_turns_word_dropout_off():
    args = argparse.Namespace(dim=8, hidden=6, p=0.3, embed_p=0.5, lr=1e-2, batch_size=8,
                              epochs=2, mc_samples=3)  # fmt: skip
    data = _fake_text()
    result = rnn.train_one("variational", 0, data, args)
    assert len(result.test_error) == len(result.train_loss) == 2
    assert all(0.0 <= e <= 1.0 for e in result.test_error)
    assert 0.0 <= result.mc_error <= 1.0 and math.isfinite(result.mc_nll)
    assert math.isnan(rnn.train_one("none", 0, data, args).mc_error)  # MC only for variational
    table = rnn.summarise([result, rnn.train_one("variational", 1, data, args)])
    assert table["variational"]["test_error"].shape == (2, 2)
    model = rnn.SentimentLSTM(30, 8, 6, "variational", p=0.3, embed_p=0.5).eval()
    tokens = data["x_test"]
    with bayesdrop.sampling(model), bayesdrop.sampling(model.embed, False):
        torch.testing.assert_close(model.embed(tokens), model.embed.embedding(tokens))
        assert model.lstm.mc  # while the LSTM samples


@pytest.mark.skipif(not (DATA / "rt-polarity").is_dir(), reason="rt-polarity not available")
def test_rnn_polarity_split_is_fixed_and_disjoint():
    a = rnn.load_polarity(str(DATA), max_len=12, subset=500)
    b = rnn.load_polarity(str(DATA), max_len=12, subset=500)
    assert a["x_train"].shape == (450, 12) and a["x_test"].shape == (50, 12)
    assert torch.equal(a["x_test"], b["x_test"]) and torch.equal(a["y_train"], b["y_train"])
    assert int(a["len_train"].min()) >= 1 and int(a["len_train"].max()) <= 12
    assert set(a["y_train"].tolist()) == {0, 1}


# ------------------------------------------------------------------------------------- bandit


def test_wheel_means_match_the_definition():
    contexts = torch.tensor([[0.1, 0.1], [0.99, 0.01], [-0.99, 0.01], [-0.5, -0.86], [0.5, -0.86]])
    means = bandit.wheel_means(contexts, delta=0.95)
    assert means[0].tolist() == pytest.approx([1.2, 1.0, 1.0, 1.0, 1.0])
    rich = means.argmax(1)[1:].tolist()
    assert rich == [1, 2, 3, 4]  # quadrants I, II, III, IV
    assert means[1:].max(1).values.tolist() == pytest.approx([50.0] * 4)
    assert (means[1:, 0] == 1.2).all()


def test_regret_of_an_always_safe_agent_is_the_hand_count():
    contexts = bandit.wheel_contexts(400, torch.Generator().manual_seed(3))
    means = bandit.wheel_means(contexts, delta=0.9)
    safe = torch.zeros(400, dtype=torch.long)
    outside = int((contexts.norm(dim=1) > 0.9).sum())
    assert 0 < outside < 400
    assert bandit.regret(means, safe).sum().item() == pytest.approx(outside * (50 - 1.2), rel=1e-5)
    best = means.argmax(1)
    assert bandit.regret(means, best).abs().max().item() == 0.0
    wrong = torch.where(contexts.norm(dim=1) > 0.9, 0, 1)  # the worst choice everywhere
    expected = outside * (50 - 1.2) + (400 - outside) * (1.2 - 1.0)
    assert bandit.regret(means, wrong).sum().item() == pytest.approx(expected, rel=1e-5)


def _bandit_args(**kw):
    base = dict(delta=0.9, steps=40, hidden=8, update_every=10, train_steps=3, batch_size=16,
                lr=1e-3, length_scale=1e-2, tau=1.0, initial=2, num_probe=32)  # fmt: skip
    return argparse.Namespace(**(base | kw))


def test_bandit_runs_record_rounds_rates_and_exploration():
    args = _bandit_args()
    greedy = bandit.run_agent("greedy", 0, args)
    conc = bandit.run_agent("concrete", 0, args)
    mc = bandit.run_agent("mc p=0.3", 0, args)
    for run in (greedy, conc, mc):
        assert len(run.regret) == len(run.explored) == 40
        assert run.num_data == [10, 20, 30, 40]  # warm-up of 2 x 5 pulls, then every 10
        assert len(run.rates) == len(run.epistemic) == 4
    assert not any(greedy.explored) and greedy.epistemic == [0.0] * 4
    assert mc.rates[-1] == [0.0, 0.3, 0.3]
    assert all(0.0 < p < 1.0 for p in conc.rates[-1]) and len(conc.rates[-1]) == 3
    assert all(e > 0 for e in conc.epistemic)
    # the first ten decisions are the round-robin warm-up, identical for every agent
    assert greedy.regret[:10] == conc.regret[:10] == mc.regret[:10]


def test_concrete_regularisers_follow_the_number_of_observations():
    net = bandit.RewardNet(8, "concrete")
    for n in (10, 1000):
        net.set_num_data(n, 1e-2, 2.0)
        for layer in net.concrete_layers():
            assert layer.weight_regularizer == pytest.approx(1e-4 / (2.0 * n))
            assert layer.dropout_regularizer == pytest.approx(2 / (2.0 * n))
    fixed = bandit.RewardNet(8, "mc", 0.5)
    w = [layer.weight.pow(2).sum() for layer in fixed.layers]
    expected = 1e-4 / 100 * (w[0] + w[1] / 0.5 + w[2] / 0.5)
    torch.testing.assert_close(fixed.penalty(100, 1e-2, 1.0), expected)


# ---------------------------------------------------------------------------- concrete_fashion


def _fashion_args(**kw):
    base = dict(hidden=16, batch_size=16, lr=1e-3, p_lr=1e-2, length_scale=1e-2, mc_samples=3,
                num_bins=10)  # fmt: skip
    return argparse.Namespace(**(base | kw))


@pytest.mark.parametrize(("arch", "num_layers"), [("mlp", 4), ("cnn", 3)])
def test_fashion_nets_report_one_rate_per_dropped_layer(arch, num_layers):
    x = torch.rand(5, 1, 28, 28)
    conc = fashion.Net(arch, 100, None, 16, 1e-2)
    grid = fashion.Net(arch, 100, 0.3, 16, 1e-2)
    assert conc(x).shape == grid(x).shape == (5, 10)
    assert [round(p, 6) for p in conc.rates()] == [0.1] * num_layers
    first = 0.0 if arch == "mlp" else 0.3  # no dropout on the MLP's pixels
    assert grid.rates() == [first] + [0.3] * (num_layers - 1)
    if arch == "cnn":
        assert isinstance(conc.dropped[0], bayesdrop.SpatialConcreteDropout)
        assert conc.dropped[0].num_inputs == 16  # K = channels, not C*H*W
    consts = bayesdrop.regularizer_constants(1e-2, 100, likelihood="categorical")
    assert conc.concrete()[0].dropout_regularizer == pytest.approx(consts.dropout_regularizer)
    expected = sum(consts.weight_regularizer * m[1].weight.pow(2).sum() / (1 - float(m[0].p))
                   for m in grid.dropped)  # fmt: skip
    torch.testing.assert_close(grid.penalty(), expected)


def test_fashion_training_moves_only_concrete_rates_and_reports_metrics():
    gen = torch.Generator().manual_seed(0)
    data = {"x_train": torch.rand(64, 1, 28, 28, generator=gen),
            "y_train": torch.randint(0, 10, (64,), generator=gen),
            "x_test": torch.rand(40, 1, 28, 28, generator=gen),
            "y_test": torch.randint(0, 10, (40,), generator=gen)}  # fmt: skip
    args = _fashion_args()
    conc = fashion.train_eval("mlp", "concrete", 0.5, 6, data, args)
    grid = fashion.train_eval("mlp", "grid p=0.3", 0.5, 6, data, args)
    assert conc.num_data == 64 and len(conc.rates) == 4
    assert all(abs(p - 0.1) > 1e-4 for p in conc.rates)  # p_logit was trained
    assert grid.rates == [0.0, 0.3, 0.3, 0.3]
    for r in (conc, grid):
        assert 0.0 <= r.accuracy <= 1.0 and 0.0 <= r.ece <= 1.0 and r.nll > 0


def test_fashion_subsets_are_fixed_and_sized():
    images, labels = torch.rand(200, 1, 28, 28), torch.arange(200)
    a, la = fashion.subset(images, labels, 0.1, seed=0)
    _, lb = fashion.subset(images, labels, 0.1, seed=0)
    assert a.shape == (20, 1, 28, 28) and torch.equal(la, lb) and len(set(la.tolist())) == 20
    assert len(fashion.subset(images, labels, 1.0, seed=0)[1]) == 200
