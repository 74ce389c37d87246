"""Every kind of noise is sampled right, or refused; check_noise sees each failure when planted.

For each failure class of issue 20 (noise drawn once per call shared by the repeats of a pass,
noise coupled across the batch, positional arguments replaced by their defaults in the trace,
functional dropout outside ``forward``, modules that read ``self.training`` for checkpointing
as well, ``nn.RReLU``, TorchScript) the fixed predictor agrees with training-mode noise, and
with the fix switched off (the old behaviour planted with monkeypatch) ``check_noise`` and
``mc_predict(..., verify=True)`` fail. The state fingerprint (issue 21): an attribute, a buffer
and a flag changed between calls are seen by every engine.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bayesdrop
from bayesdrop.predict._selfcheck import ScopeCheck, shared_draws

pytestmark = pytest.mark.usefixtures("one_thread")

engines_mod = sys.modules["bayesdrop.predict._engines"]
runner_mod = sys.modules["bayesdrop.predict._runner"]
sampling_mod = sys.modules["bayesdrop.nn._sampling"]
cached_mod = sys.modules["bayesdrop.predict._cached"]


def plant_shared_draws(monkeypatch):
    """The old engines: every noise batchable, no first-call check."""
    monkeypatch.setattr(engines_mod, "one_per_pass_reason", lambda model: None)
    monkeypatch.setattr(
        runner_mod,
        "check_scope",
        lambda model, engine, k, n, fork: ScopeCheck(engine.sample(k), None),
    )


class LayerDropStack(nn.Module):
    """Hugging Face's LayerDrop, as in the wav2vec2 encoder: one draw per call skips a layer."""

    def __init__(self, layerdrop: float = 0.5) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))
        self.layerdrop = layerdrop
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        for layer in self.layers:
            skip = self.training and torch.rand([]) < self.layerdrop
            if not skip:
                x = x + 2.0 * torch.tanh(layer(x))
        return self.out(x)


def _stochastic_depth(mode: str):
    from torchvision.ops import StochasticDepth

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.sd, self.out = (
                nn.Linear(8, 16),
                StochasticDepth(0.3, mode),
                nn.Linear(16, 3),
            )

        def forward(self, x):
            h = self.fc(x)
            return self.out(h + self.sd(3.0 * torch.relu(h)))

    torch.manual_seed(0)
    return Net().eval()


X = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))


def test_batch_mode_stochastic_depth_gets_one_sample_per_pass(monkeypatch):
    pytest.importorskip("torchvision")
    model = _stochastic_depth("batch")
    assert bayesdrop.nn.noise_scope(model.sd) == "call"
    pred = bayesdrop.mc_predict(model, X, num_samples=256, seed=0)
    assert "once per call" in pred.engine_reason
    loop = bayesdrop.mc_predict(model, X, num_samples=256, seed=1, engine="loop")
    ratio = float(pred.mutual_information.mean() / loop.mutual_information.mean())
    assert 0.7 < ratio < 1.4, ratio  # before: MI of 1e-7 under auto
    with pytest.raises(ValueError, match=r"`sd` \(StochasticDepth\) draws its noise once per call"):
        bayesdrop.mc_predict(model, X, engine="batched")
    assert bayesdrop.check_noise(model, X).ok
    assert bayesdrop.check_noise(model, X, engine="cached").ok
    plant_shared_draws(monkeypatch)
    model = copy.deepcopy(model)  # a new cache, under the old rules
    check = bayesdrop.check_noise(model, X)
    assert not check.ok and check.missed, check.describe()
    with pytest.raises(ValueError, match=r"verify=True.*samples less noise"):
        bayesdrop.mc_predict(model, X, verify=True)


def test_row_mode_stochastic_depth_stays_batched():
    pytest.importorskip("torchvision")
    model = _stochastic_depth("row")
    assert bayesdrop.nn.noise_scope(model.sd) == "row"
    pred = bayesdrop.mc_predict(model, X, num_samples=64, seed=0)
    assert pred.engine == "cached" and "one sample" not in pred.engine_reason
    assert bayesdrop.check_noise(model, X).ok


def test_layerdrop_is_found_at_run_time(monkeypatch):
    torch.manual_seed(0)
    model = LayerDropStack().eval()
    assert bayesdrop.nn.is_noise_module(model)  # reads self.training to pick a drop
    pred = bayesdrop.mc_predict(model, X, num_samples=128, seed=0)
    assert pred.engine == "loop" and "shared the draws of `(model)` (rand)" in pred.engine_reason
    with pytest.raises(ValueError, match="shared the draws"):
        bayesdrop.mc_predict(model, X, engine="batched")
    # the model's plans remember the verdict: batched is refused from the start now
    with pytest.raises(ValueError, match="shared the draws"):
        bayesdrop.mc_predict(model, X, engine="batched")
    check = bayesdrop.check_noise(model, X)
    assert check.ok, check.describe()
    fresh = copy.deepcopy(model)  # a new cache: the check runs again, then is planted away
    plant_shared_draws(monkeypatch)
    check = bayesdrop.check_noise(fresh, X)
    assert not check.ok, check.describe()


def test_shared_draws_tells_per_row_from_per_call():
    from bayesdrop.nn._noise_calls import Draw

    one = [Draw("drop", "dropout", 4 * 16), Draw("enc", "rand", 1), Draw("w", "dropout", 128)]
    many = [Draw("drop", "dropout", 3 * 4 * 16), Draw("enc", "rand", 1), Draw("w", "dropout", 128)]
    assert shared_draws(one, many, 3) == [("enc", "rand"), ("w", "dropout")]
    assert shared_draws(one[:1], many[:1], 3) == []


class WeightDrop(nn.Module):
    """An ``nn.Dropout`` module applied to a weight (DropConnect): a built-in noise module
    whose draw is shared by every row of the batch (with per-row dropout after it, so that the
    repeats of a pass are not identical)."""

    def __init__(self, functional: bool = False) -> None:
        super().__init__()
        self.fc, self.drop, self.out = nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 3)
        self.rows, self.functional = nn.Dropout(0.1), functional

    def forward(self, x):
        if self.functional:  # as AWD-LSTM's weight drop
            weight = F.dropout(self.fc.weight, 0.5, training=self.training)
        else:
            weight = self.drop(self.fc.weight)
        h = torch.tanh(3.0 * F.linear(x, weight, self.fc.bias))
        return self.out(self.rows(h))


def _count_samples(monkeypatch) -> list[int]:
    """The ``k`` of every engine pass (batched and cached engines)."""
    seen: list[int] = []
    for cls in (engines_mod.BatchedEngine, engines_mod.CachedEngine):
        original = cls.sample

        def sample(self, k, original=original):
            seen.append(k)
            return original(self, k)

        monkeypatch.setattr(cls, "sample", sample)
    return seen


def test_built_in_row_noise_needs_no_one_sample_pass(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3)).eval()
    seen = _count_samples(monkeypatch)
    pred = bayesdrop.mc_predict(model, X, num_samples=32, seed=0)
    assert pred.engine == "cached" and seen == [32]  # no dropped pass of one sample
    again = bayesdrop.mc_predict(copy.deepcopy(model), X, num_samples=32, seed=0)
    torch.testing.assert_close(pred.probs, again.probs, rtol=0, atol=0)
    seen.clear()
    bayesdrop.mc_predict(HelperDropout().eval(), X, num_samples=32, seed=0)
    assert seen == [32]  # F.dropout on the rows, outside any noise module: known per row too
    seen.clear()
    bayesdrop.mc_predict(LayerDropStack().eval(), X, num_samples=32, seed=0)
    assert seen[:2] == [32, 1]  # torch.rand([]): the one-sample pass is recorded


@pytest.mark.parametrize("functional", [False, True])
def test_dropout_on_a_weight_is_not_batched(monkeypatch, functional):
    torch.manual_seed(0)
    model = WeightDrop(functional).eval()
    seen = _count_samples(monkeypatch)
    pred = bayesdrop.mc_predict(model, X, num_samples=128, seed=0)
    assert seen[:2] == [128, 1]  # the draw on a parameter is measured
    where = "`(model)` (dropout)" if functional else "`drop` (dropout)"
    assert pred.engine == "loop" and where in pred.engine_reason, pred.engine_reason
    loop = bayesdrop.mc_predict(model, X, num_samples=128, seed=1, engine="loop")
    ratio = float(pred.mutual_information.mean() / loop.mutual_information.mean())
    assert 0.7 < ratio < 1.4, ratio


def test_batch_coupled_dropblock_gets_the_batch_as_given(monkeypatch):
    timm = pytest.importorskip("timm")

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3, padding=1)
            self.block = timm.layers.DropBlock2d(drop_prob=0.3, block_size=5)
            self.out = nn.Linear(2, 3)

        def forward(self, x):
            return self.out(self.block(3.0 * torch.relu(self.conv(x))).mean((2, 3)))

    torch.manual_seed(0)
    # one image: the mask's rescaling by the kept fraction of the batch is strongest
    model, x = Net().eval(), torch.randn(1, 3, 6, 6)
    assert bayesdrop.nn.noise_scope(model.block) == "batch"
    pred = bayesdrop.mc_predict(model, x, num_samples=32, seed=0)
    assert "couples its noise across the batch" in pred.engine_reason
    assert bayesdrop.check_noise(model, x, num_samples=128).ok
    plant_shared_draws(monkeypatch)
    check = bayesdrop.check_noise(copy.deepcopy(model), x, num_samples=128)
    assert not check.ok, check.describe()


class Masked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.attn = nn.MultiheadAttention(16, 2, dropout=0.2, batch_first=True)
        self.drop, self.out = nn.Dropout(0.2), nn.Linear(16, 3)

    def forward(self, x, key_padding_mask=None):
        h = self.embed(x)
        a, _ = self.attn(h, h, h, key_padding_mask=key_padding_mask, need_weights=False)
        return self.out(self.drop(4.0 * a.mean(1)))


def test_masks_passed_positionally_reach_the_cached_trunk(monkeypatch):
    torch.manual_seed(0)
    model, x = Masked().eval(), torch.randn(3, 5, 6)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[:, 2:] = True
    for given in ((x, mask), {"x": x, "key_padding_mask": mask}):
        pred = bayesdrop.mc_predict(model, given, num_samples=32, seed=0, engine="cached")
        loop = bayesdrop.mc_predict(model, given, num_samples=32, seed=0, engine="loop")
        unmasked = bayesdrop.mc_predict(model, x, num_samples=32, seed=0, engine="loop")
        assert pred.engine == "cached"
        assert (pred.probs - loop.probs).abs().max() < 0.25 * (
            pred.probs - unmasked.probs
        ).abs().max()
        assert bayesdrop.check_noise(model, given, engine="cached").ok
    # the old trace: every argument after the first fixed at its default (the mask dropped)
    old = cached_mod._concrete_args
    monkeypatch.setattr(cached_mod, "_concrete_args", lambda model, inputs: old(model, None))
    check = bayesdrop.check_noise(copy.deepcopy(model), (x, mask), engine="cached")
    assert check.shifted and not check.ok, check.describe()


class HelperDropout(nn.Module):
    """Functional dropout in a helper method (as timm's forward_head)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(8, 16), nn.Linear(16, 3)

    def forward_head(self, h):
        return self.out(F.dropout(h, 0.3, training=self.training))

    def forward(self, x):
        return self.forward_head(3.0 * torch.relu(self.fc(x)))


def test_functional_dropout_in_a_helper_is_sampled(monkeypatch):
    torch.manual_seed(0)
    model = HelperDropout().eval()
    assert bayesdrop.nn.find_functional_dropout(model) == [""]
    pred = bayesdrop.mc_predict(model, X, num_samples=64, seed=0)
    assert bool((pred.mutual_information > 0).all())
    for engine in ("auto", "loop", "batched", "cached"):
        assert bayesdrop.check_noise(model, X, engine=engine).ok, engine
    # the old sampling(): module flags only
    monkeypatch.setattr(sampling_mod, "functional_noise", contextlib.nullcontext)
    check = bayesdrop.check_noise(copy.deepcopy(model), X, engine="loop")
    assert check.missed and check.training_only == ["(model)"], check.describe()


def test_rrelu_is_noise():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.RReLU(0.1, 0.9), nn.Linear(16, 3)).eval()
    assert bayesdrop.nn.is_stochastic(model[1])
    assert not bayesdrop.nn.is_stochastic(nn.RReLU(0.3, 0.3))  # equal bounds: no noise
    assert bayesdrop.check_noise(model, X - 1.0).ok
    pred = bayesdrop.mc_predict(model, X - 1.0, num_samples=16, seed=0)
    assert bool((pred.mutual_information > 0).all())


def test_rrelu_missed_when_the_fix_is_off(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.RReLU(0.0, 1.0), nn.Dropout(0.05), nn.Linear(16, 3))
    monkeypatch.setattr(sampling_mod, "functional_noise", contextlib.nullcontext)
    real_kind = sampling_mod._kind
    monkeypatch.setattr(
        sampling_mod,
        "_kind",
        lambda m: ("", None, "row") if isinstance(m, nn.RReLU) else real_kind(m),
    )
    check = bayesdrop.check_noise(model.eval(), 3.0 * X - 2.0)
    assert check.missed and "1" in check.training_only, check.describe()


def test_checkpointing_reader_is_still_switched(monkeypatch):
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(
        vocab_size=50, d_model=16, d_kv=8, d_ff=24, num_layers=1, num_heads=2,
        dropout_rate=0.0, num_labels=3, initializer_factor=3.0, decoder_start_token_id=0,
        pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.T5ForSequenceClassification(config).eval()
    attention = transformers.models.t5.modeling_t5.T5Attention
    for m in model.modules():
        if isinstance(m, attention):
            m.dropout = 0.3  # attention dropout is the only noise
    ids = torch.randint(2, 50, (2, 6))
    ids[:, -1] = 1
    batch = {"input_ids": ids}
    assert bayesdrop.nn.is_noise_module(
        next(m for m in model.modules() if isinstance(m, attention))
    )
    assert bayesdrop.check_noise(model, batch).ok
    # the old rule: any other line reading self.training makes the module unswitched
    monkeypatch.setattr(
        sys.modules["bayesdrop.nn._source"], "_CHECKPOINTING", __import__("re").compile("^$")
    )
    sampling_mod._KIND_CACHE.clear()
    try:
        check = bayesdrop.check_noise(copy.deepcopy(model), batch)
        assert check.missed, check.describe()
    finally:
        sampling_mod._KIND_CACHE.clear()


def test_torchscript_is_refused():
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.Linear(16, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated
        scripted = torch.jit.script(model)
    for call in (
        lambda: bayesdrop.mc_predict(scripted, X),
        lambda: bayesdrop.check_noise(scripted, X),
        lambda: bayesdrop.MCPredictor(scripted),
        lambda: bayesdrop.sampling(scripted).__enter__(),
    ):
        with pytest.raises(TypeError, match=r"TorchScript module.*Pass the eager module"):
            call()


def test_trunk_draws_through_a_wrapped_function_are_not_cached():
    torch.manual_seed(0)
    model = _WrappedNoise().eval()
    pred = bayesdrop.mc_predict(model, X, num_samples=32, seed=0)
    assert pred.engine != "cached" and "draws random numbers" in pred.engine_reason
    assert bayesdrop.check_noise(model, X).ok


def _noisy_linear(x, weight, training):
    return F.dropout(x @ weight, 0.3, training=training)


torch.fx.wrap("_noisy_linear")


class _WrappedNoise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 16))
        self.drop, self.out = nn.Dropout(0.1), nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.drop(_noisy_linear(x, self.w, self.training)))


class Stateful(nn.Module):
    """Reads a plain attribute, a buffer, a flag and a list's contents in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop, self.out = nn.Linear(8, 16), nn.Dropout(0.2), nn.Linear(16, 3)
        self.temperature = 1.0
        self.use_relu = True
        self.shift = [0.0, 0.0, 0.0]
        self.register_buffer("log_prior", torch.zeros(3))

    def forward(self, x):
        h = self.fc(x)
        h = torch.relu(h) if self.use_relu else torch.tanh(h)
        shift = torch.tensor(self.shift)
        return self.out(self.drop(h)) / self.temperature + self.log_prior + shift


class StatefulChain(Stateful):
    """The same state, read around a chain of blocks behind a data-dependent branch (torch.fx
    cannot trace it: the hooked engine caches the blocks before the noisy one)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Linear(16, 16), nn.Tanh()),
            nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Dropout(0.2)),
        )

    def forward(self, x):
        h = self.fc(x)
        if bool(h.abs().sum() >= 0):  # data-dependent
            h = torch.relu(h) if self.use_relu else torch.tanh(h)
        h = self.blocks(h)
        shift = torch.tensor(self.shift)
        return self.out(h) / self.temperature + self.log_prior + shift


@pytest.mark.parametrize("engine", ["auto", "loop", "batched", "cached", "hooked"])
def test_state_changed_between_calls_is_seen(engine):
    torch.manual_seed(0)
    model = (StatefulChain() if engine == "hooked" else Stateful()).eval()
    first = bayesdrop.mc_predict(model, X, num_samples=8, seed=0, engine=engine)  # cached plans
    assert engine == "auto" or first.engine == engine, first.engine_reason
    changes = [
        lambda m: setattr(m, "temperature", 5.0),
        lambda m: setattr(m, "log_prior", torch.tensor([2.0, 0.0, -2.0])),
        lambda m: setattr(m, "use_relu", False),
        lambda m: m.shift.__setitem__(0, 3.0),  # in place: the same list object
        lambda m: setattr(m, "out", nn.Linear(16, 3)),  # a re-assigned child
    ]
    predictor = bayesdrop.MCPredictor(model, num_samples=8, seed=0, engine=engine, progress=False)
    predictor.predict(X)
    for change in changes:
        before = bayesdrop.mc_predict(model, X, num_samples=8, seed=0, engine=engine)
        change(model)
        after = bayesdrop.mc_predict(model, X, num_samples=8, seed=0, engine=engine)
        fresh = bayesdrop.mc_predict(copy.deepcopy(model), X, num_samples=8, seed=0, engine=engine)
        torch.testing.assert_close(after.probs, fresh.probs, rtol=0, atol=0)
        assert not torch.allclose(after.probs, before.probs)
        torch.testing.assert_close(predictor.predict(X).probs, fresh.probs, rtol=0, atol=0)


def test_check_noise_arguments():
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.Linear(16, 3))
    with pytest.raises(ValueError, match="Expected `num_samples` to be at least 2"):
        bayesdrop.check_noise(model, X, num_samples=1)
    with pytest.raises(ValueError, match="Expected `alpha`"):
        bayesdrop.check_noise(model, X, alpha=0.0)
    with pytest.raises(ValueError, match="Expected `engine`"):
        bayesdrop.check_noise(model, X, engine="fast")
    with pytest.raises(TypeError, match="Expected `verify` to be True or False"):
        bayesdrop.mc_predict(model, X, verify="yes")
    check = bayesdrop.check_noise(model, X, engine="batched")
    assert check.ok and check.engine == "batched" and "agrees" in check.describe()


def test_compiled_models_are_sampled_through_their_eager_module():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.Linear(16, 3)).eval()
    with warnings.catch_warnings():
        # torch's inductor imports torch.utils.mkldnn, which uses the deprecated script_method
        warnings.simplefilter("ignore", DeprecationWarning)
        compiled = torch.compile(model)
    pred = bayesdrop.mc_predict(compiled, X, num_samples=16, seed=0)
    eager = bayesdrop.mc_predict(model, X, num_samples=16, seed=0)
    torch.testing.assert_close(pred.probs, eager.probs, rtol=0, atol=0)
    assert "torch.compile model: sampled through its original (eager) module" in pred.engine_reason
    assert bayesdrop.check_noise(compiled, X).ok
