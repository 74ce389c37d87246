"""``noise=`` on the predictors (issue 23, "choosing the noise"): sampling part of a model's
noise equals sampling a model whose other noise is switched off, on every engine; the noise
switched off moves into the part computed once (the cached trunk, the hooked prefix); the
selection is part of the plans' key and leaves no flag changed; bad patterns are refused."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import bayesdrop

pytestmark = pytest.mark.usefixtures("one_thread")

X = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))


class TwoStage(nn.Module):
    """Dropout after an early stage and before the head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.early = nn.Linear(8, 32), nn.Dropout(0.3)
        self.body, self.late = nn.Linear(32, 32), nn.Dropout(0.4)
        self.out = nn.Linear(32, 3)

    def forward(self, x):
        h = self.early(torch.tanh(2.0 * self.stem(x)))
        return self.out(self.late(torch.tanh(2.0 * self.body(h))))


def _model() -> TwoStage:
    torch.manual_seed(0)
    return TwoStage().eval()


def _off(model: nn.Module, *names: str) -> nn.Module:
    """A copy whose named dropout modules have rate 0."""
    other = copy.deepcopy(model)
    for name in names:
        other.get_submodule(name).p = 0.0
    return other


@pytest.mark.parametrize("engine", ["loop", "batched", "cached", "auto"])
def test_a_selection_equals_the_model_with_the_other_noise_off(engine):
    model = _model()
    chosen = bayesdrop.mc_predict(model, X, num_samples=32, seed=3, engine=engine, noise="late")
    base = bayesdrop.mc_predict(_off(model, "early"), X, num_samples=32, seed=3, engine=engine)
    torch.testing.assert_close(chosen.probs, base.probs, rtol=0, atol=1e-6)
    mi, base_mi = chosen.mutual_information, base.mutual_information
    torch.testing.assert_close(mi, base_mi, atol=1e-6, rtol=0)
    assert chosen.engine == base.engine
    assert "noise='late': 1 of 2 noise modules sampled (late)" in chosen.engine_reason
    # and it is not the full model's noise
    full = bayesdrop.mc_predict(model, X, num_samples=32, seed=3, engine=engine)
    assert not torch.allclose(full.probs, chosen.probs)


def test_the_noise_switched_off_moves_into_the_trunk():
    model = _model()
    counter = [0]
    model.body.register_forward_hook(lambda m, i, o: counter.__setitem__(0, counter[0] + len(o)))
    bayesdrop.mc_predict(model, X, num_samples=40, seed=0, engine="cached", chunk_size=8)
    full_rows = counter[0]
    counter[0] = 0
    pred = bayesdrop.mc_predict(
        model, X, num_samples=40, seed=0, engine="cached", chunk_size=8, noise="late"
    )
    assert pred.engine == "cached"
    # all noise: the body is after `early`, so it runs on all 40 x 6 sampled rows (plus the
    # first-call checks); with `early` off it is trunk, computed once per call on 6 rows
    assert full_rows >= 40 * len(X)
    assert counter[0] <= 2 * len(X), counter[0]


def test_the_selection_is_part_of_the_plans_key_and_flags_are_restored():
    model = _model()
    flags = [m.training for m in model.modules()]
    fresh = bayesdrop.mc_predict(copy.deepcopy(model), X, num_samples=16, seed=1)
    bayesdrop.mc_predict(model, X, num_samples=16, seed=1, noise="late")
    again = bayesdrop.mc_predict(model, X, num_samples=16, seed=1)
    torch.testing.assert_close(again.probs, fresh.probs, rtol=0, atol=0)
    assert [m.training for m in model.modules()] == flags
    selected = bayesdrop.mc_predict(model, X, num_samples=16, seed=1, noise="early")
    base = bayesdrop.mc_predict(_off(model, "late"), X, num_samples=16, seed=1)
    torch.testing.assert_close(selected.probs, base.probs, rtol=0, atol=1e-6)


def test_flags_are_restored_when_the_model_raises():
    model = _model()
    model.body = nn.Linear(5, 32)  # the wrong width: the forward raises
    with pytest.raises(RuntimeError):
        bayesdrop.mc_predict(model, X, num_samples=4, noise="late", engine="loop")
    assert not model.early.training and not model.late.training
    torch.testing.assert_close(model.early(X), X)  # not sampling after the call


def test_predictor_and_check_noise_take_the_selection():
    model = _model()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X), batch_size=6)
    predictor = bayesdrop.MCPredictor(
        model, num_samples=16, seed=2, noise="late", progress=False, verify=True
    )
    pred = predictor.predict(loader)
    direct = bayesdrop.mc_predict(model, X, num_samples=16, seed=2, noise="late")
    torch.testing.assert_close(pred.probs, direct.probs, rtol=0, atol=1e-6)
    check = bayesdrop.predict.check_noise(model, X, noise="late", num_samples=128)
    assert check.ok, check.describe()
    # the oracle switches the other noise off as well: the full model's training noise is
    # wider than the selection's samples
    assert check.training_spread < bayesdrop.predict.check_noise(model, X).training_spread


def test_a_planted_forced_call_inside_an_off_module_is_caught(monkeypatch):
    # with the selection's mode left forcing every dropout call (the `early` module's
    # F.dropout sampled although it is off), the samples differ from the model with it off
    noise_calls = __import__("bayesdrop.nn._noise_calls", fromlist=["FunctionalNoise"])
    monkeypatch.setattr(noise_calls.FunctionalNoise, "_inside_off", lambda self: False)
    model = _model()
    chosen = bayesdrop.mc_predict(model, X, num_samples=32, seed=3, engine="loop", noise="late")
    base = bayesdrop.mc_predict(_off(model, "early"), X, num_samples=32, seed=3, engine="loop")
    assert not torch.allclose(chosen.probs, base.probs, atol=1e-4)


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(8, 3), nn.Dropout(0.2)

    def forward(self, x):
        return self.drop(self.fc(nn.functional.dropout(x, 0.3, training=self.training)))


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.2, batch_first=True)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.layer(self.fc(x).unsqueeze(1))[:, 0])


@pytest.mark.parametrize(
    ("model", "noise", "error", "words"),
    [
        (TwoStage(), 3, TypeError, "Expected `noise` to be None or a regular expression"),
        (TwoStage(), "(", ValueError, "a valid regular expression"),
        (TwoStage(), "nothing", ValueError, "a pattern that finds a noise module"),
        (Functional(), "drop", ValueError, "in the code of the model (Functional)"),
        (Nested(), r"layer\.dropout1", ValueError, "selects `layer.dropout1` but not `layer`"),
    ],
)
def test_bad_selections_are_refused(model, noise, error, words):
    with pytest.raises(error, match="noise") as info:
        bayesdrop.mc_predict(model.eval(), X, num_samples=4, noise=noise)
    assert words in str(info.value)
    assert not any(m.training for m in model.modules())


def test_a_bert_selection_equals_the_model_with_the_other_dropout_at_zero():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=37, num_labels=3, initializer_range=0.3,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    batch = {"input_ids": torch.randint(0, 50, (4, 9)), "attention_mask": torch.ones(4, 9)}
    batch["attention_mask"][0, 6:] = 0
    pattern = r"encoder\.layer\.2\.|classifier|^dropout$"
    off = copy.deepcopy(model)
    for name, m in off.named_modules():
        if isinstance(m, nn.Dropout) and not __import__("re").search(pattern, name):
            m.p = 0.0
    counts = [0]
    inner = model.bert.encoder.layer[0].intermediate.dense  # runs only when block 0 computes
    handle = inner.register_forward_hook(lambda m, i, o: counts.__setitem__(0, counts[0] + 1))
    try:
        for engine in ("loop", "auto"):
            chosen = bayesdrop.mc_predict(
                model, batch, num_samples=24, seed=5, engine=engine, noise=pattern
            )
            base = bayesdrop.mc_predict(off, batch, num_samples=24, seed=5, engine=engine)
            torch.testing.assert_close(chosen.probs, base.probs, rtol=0, atol=1e-5)
            assert chosen.engine == base.engine
        assert chosen.engine == "hooked", chosen.engine_reason
        counts[0] = 0
        bayesdrop.mc_predict(model, batch, num_samples=24, seed=5, chunk_size=8)
        full = counts[0]
        counts[0] = 0
        bayesdrop.mc_predict(model, batch, num_samples=24, seed=5, chunk_size=8, noise=pattern)
    finally:
        handle.remove()
    # all noise: block 0 runs in each of the 3 passes; the first two blocks' noise off: they
    # are the hooked engine's prefix, computed once per call
    assert full >= 3 and counts[0] == 1, (full, counts[0])
