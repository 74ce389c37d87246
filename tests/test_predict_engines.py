"""The three engines: agreement, exactness of the cached split, fallbacks."""

from __future__ import annotations

import pytest
import torch
from predict_models import (
    MLP,
    Attention,
    EarlySize,
    HeadCNN,
    Residual,
    fitted_batchnorm,
    inputs,
)
from torch import nn

import bayesdrop
from bayesdrop.predict._cached import CacheUnavailable, build_plan

ENGINES = ("loop", "batched", "cached")


pytestmark = pytest.mark.usefixtures("one_thread")


MODELS = {
    "MLP": MLP,
    "HeadCNN": HeadCNN,
    "Residual": Residual,
    "Attention": Attention,
    "WithBatchNorm": fitted_batchnorm,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_engines_agree_within_monte_carlo_error(name):
    torch.manual_seed(0)
    model, x = MODELS[name]().eval(), inputs(name)
    num_samples = 200
    preds = {
        e: bayesdrop.mc_predict(
            model, x, num_samples=num_samples, engine=e, seed=10 + i, return_samples=True
        )
        for i, e in enumerate(ENGINES)
    }
    ref = preds["loop"]
    assert ref.engine == "loop"
    se = ref.samples.std(0) / num_samples**0.5
    for e in ("batched", "cached"):
        assert preds[e].engine == e
        # independent seeds: the difference of two means has std sqrt(2) * se; allow 5 sigma
        diff = (preds[e].probs - ref.probs).abs()
        assert bool((diff <= 5 * 2**0.5 * se + 1e-6).all()), (e, diff.max())
        assert bool(preds[e].probs.sub(preds["loop"].probs).abs().max() > 0)  # really sampled


@pytest.mark.parametrize("name", ["HeadCNN", "Residual", "WithBatchNorm"])
def test_cached_equals_batched_exactly_for_one_dropout(name):
    # With a single dropout layer, the sample-major repeat draws the masks in the same order,
    # so cached (trunk once, skip path repeated) must reproduce batched bit for bit (up to
    # float rounding): a wrong skip connection or a recomputed trunk would show here.
    model, x = MODELS[name]().eval(), inputs(name)
    kwargs = dict(num_samples=16, seed=3, chunk_size=4, return_samples=True)
    batched = bayesdrop.mc_predict(model, x, engine="batched", **kwargs)
    cached = bayesdrop.mc_predict(model, x, engine="cached", **kwargs)
    assert cached.engine == "cached"
    torch.testing.assert_close(cached.samples, batched.samples, rtol=1e-5, atol=1e-6)


def test_cached_runs_the_trunk_once():
    model, x = HeadCNN().eval(), inputs("HeadCNN")
    calls = {"trunk": 0, "head": 0}
    model.trunk[0].register_forward_hook(lambda *a: calls.__setitem__("trunk", calls["trunk"] + 1))
    model.head[2].register_forward_hook(lambda *a: calls.__setitem__("head", calls["head"] + 1))
    pred = bayesdrop.mc_predict(model, x, num_samples=32, engine="cached", chunk_size=8)
    assert pred.num_samples == 32
    assert calls["trunk"] == 1
    # one validation pass, four chunks of 8 (the first one recorded by the check, which needs no
    # pass of one sample: the only draws are nn.Dropout's, on the repeated rows)
    assert calls["head"] == 1 + 4
    calls.update(trunk=0)
    bayesdrop.mc_predict(model, x, num_samples=32, engine="loop")
    assert calls["trunk"] == 32


def test_plan_splits_at_the_first_dropout():
    plan = build_plan(HeadCNN())
    assert plan.trunk_ops > 0
    head_modules = {n.target for n in plan.head.graph.nodes if n.op == "call_module"}
    assert "trunk.0" not in head_modules
    assert "head.1" in head_modules  # the dropout
    # h feeds the skip path, tanh(h) the dropout: both cross into the head
    assert build_plan(Residual()).boundary == ("relu", "tanh")


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("engine", ENGINES)
def test_p_zero_everywhere_is_refused_not_reported_as_certainty(name, engine):
    # a model whose every noise module has rate 0 would give zero uncertainty that is really
    # "nothing was sampled": refused, naming the modules
    torch.manual_seed(0)
    model, x = MODELS[name]().eval(), inputs(name)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(module, nn.MultiheadAttention):
            module.dropout = 0.0
    with pytest.raises(ValueError, match=r"only noise modules with rate 0 \(.*register_stochastic"):
        bayesdrop.mc_predict(model, x, num_samples=5, engine=engine)


def test_sampling_disabled_gives_the_deterministic_forward():
    # the invariance behind the old p = 0 test: no mask drawn = the eval forward, bit for bit
    torch.manual_seed(0)
    for name, make in MODELS.items():
        model, x = make().eval(), inputs(name)
        with torch.no_grad():
            expected = model(x)
            with bayesdrop.sampling(model, enabled=False):
                torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


def test_batchnorm_statistics_and_modes_unchanged():
    model = fitted_batchnorm()
    bn = model.net[1]
    mean, var, tracked = (
        bn.running_mean.clone(),
        bn.running_var.clone(),
        int(bn.num_batches_tracked),
    )
    for engine in ENGINES:
        bayesdrop.mc_predict(model, inputs("WithBatchNorm"), num_samples=8, engine=engine)
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    assert int(bn.num_batches_tracked) == tracked
    assert not any(m.training for m in model.modules())


def test_model_in_training_mode_is_evaluated_in_eval_mode_and_restored():
    model = fitted_batchnorm().train()
    x = inputs("WithBatchNorm")
    mean = model.net[1].running_mean.clone()
    bayesdrop.mc_predict(model, x, num_samples=4)
    assert torch.equal(model.net[1].running_mean, mean)
    assert all(m.training for m in model.modules())


def test_early_batch_size_falls_back_to_batched_with_a_reason():
    model, x = EarlySize().eval(), inputs("EarlySize")
    with pytest.warns(UserWarning, match="cached engine unavailable.*size computed before"):
        forced = bayesdrop.mc_predict(model, x, num_samples=8, engine="cached", seed=0)
    assert forced.engine == "batched"
    assert "size computed before the first dropout" in forced.engine_reason
    auto = bayesdrop.mc_predict(model, x, num_samples=8, seed=0)  # auto: no warning
    assert auto.engine == "batched" and auto.engine_reason == forced.engine_reason
    loop = bayesdrop.mc_predict(model, x, num_samples=8, engine="loop", seed=0)
    assert loop.probs.shape == auto.probs.shape == (6, 3)


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(5, 3), nn.Dropout(0.5)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            x = -x
        return self.fc(self.drop(x))


def test_untraceable_model_falls_back_with_the_reason():
    with pytest.warns(UserWarning, match="torch.fx could not trace"):
        pred = bayesdrop.mc_predict(Untraceable(), torch.randn(4, 5), engine="cached")
    assert pred.engine == "batched"
    assert "TraceError" in pred.engine_reason
    with pytest.raises(CacheUnavailable, match="could not trace"):
        build_plan(Untraceable())


class RowMixing(nn.Module):
    """Normalises over the batch after the dropout; fine for the loop only."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(5, 3), nn.Dropout(0.5)

    def forward(self, x):
        h = self.drop(self.fc(x))
        return h[: x.shape[0] // 2]


def test_non_batch_first_output_is_a_clear_error():
    with pytest.raises(ValueError, match=r"batch dimension.*engine='loop' works for any"):
        bayesdrop.mc_predict(RowMixing(), torch.randn(4, 5), engine="batched")


def test_auto_engine_rules():
    x = inputs("MLP", n=4)
    assert bayesdrop.mc_predict(HeadCNN(), inputs("HeadCNN"), num_samples=4).engine == "cached"
    small = bayesdrop.mc_predict(MLP(), x, num_samples=4)
    assert small.engine == "batched" and "no computation precedes" in small.engine_reason
    big = bayesdrop.mc_predict(MLP(), torch.randn(4096, 5), num_samples=2)
    assert big.engine == "loop" and "fills a pass" in big.engine_reason


def test_chunking_and_memory_budget_draw_the_requested_samples():
    model, x = HeadCNN().eval(), inputs("HeadCNN")
    full = bayesdrop.mc_predict(model, x, num_samples=20, engine="cached", seed=0)
    for kwargs in (dict(chunk_size=3), dict(max_memory=1), dict(max_memory=10**9)):
        pred = bayesdrop.mc_predict(model, x, num_samples=20, engine="cached", seed=0, **kwargs)
        assert pred.num_samples == 20
        # one dropout layer, sample-major draws: chunking does not change the masks
        torch.testing.assert_close(pred.probs, full.probs)


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.attn = nn.MultiheadAttention(8, 2, dropout=0.0, batch_first=True)
        self.drop, self.out = nn.Dropout(0.3), nn.Linear(8, 2)

    def forward(self, x):
        h = self.embed(x)
        h, _ = self.attn(h, h, h, need_weights=False)
        return self.out(self.drop(h.mean(1)))


def test_plan_follows_a_change_of_attention_dropout():
    from bayesdrop.predict._engines import plan_source

    model, x = SelfAttention().eval(), torch.randn(4, 5, 3)

    def head_modules():
        plan = plan_source(model).get()
        return {n.target for n in plan.head.graph.nodes if n.op == "call_module"}

    bayesdrop.mc_predict(model, x, num_samples=4)
    assert "attn" not in head_modules()  # no attention dropout: computed once in the trunk
    model.attn.dropout = 0.3
    pred = bayesdrop.mc_predict(model, x, num_samples=4)
    assert pred.engine == "cached" and "attn" in head_modules()


class InPlaceTrunk(nn.Module):
    """Zeroes, in place, a value the dropout has already read."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop, self.out = nn.Linear(5, 4), nn.Dropout(0.5), nn.Linear(4, 2)

    def forward(self, x):
        h = self.fc(x)
        y = self.drop(h)
        h.mul_(0.0)
        return self.out(y + h)


class InPlaceHead(nn.Module):
    """Adds, in place, the dropped value to the value computed before the dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop, self.out = nn.Linear(5, 4), nn.Dropout(0.5), nn.Linear(4, 2)

    def forward(self, x):
        h = self.fc(x)
        h.add_(self.drop(h))
        return self.out(h)


def test_in_place_change_after_the_read_moves_into_the_head():
    # the in-place zeroing happens after the dropout read `h`: computed once in the trunk it
    # would come too early, so it runs in the stochastic part, on the head's own copy
    model, x = InPlaceTrunk().eval(), torch.randn(4, 5)
    kwargs = dict(num_samples=6, seed=0, return_samples=True)
    cached = bayesdrop.mc_predict(model, x, engine="cached", **kwargs)
    loop = bayesdrop.mc_predict(model, x, engine="loop", **kwargs)
    assert cached.engine == "cached"
    head = {n.target for n in build_plan(model).head.graph.nodes if n.op == "call_method"}
    assert "mul_" in head
    torch.testing.assert_close(cached.samples, loop.samples)


def test_in_place_change_of_a_trunk_value_in_the_head_is_exact():
    # h.add_(drop(h)): the head changes its own copy of h; the trunk value stays intact for
    # the next chunk of samples
    model, x = InPlaceHead().eval(), torch.randn(4, 5)
    kwargs = dict(num_samples=6, seed=0, return_samples=True, chunk_size=2)
    auto = bayesdrop.mc_predict(model, x, **kwargs)
    loop = bayesdrop.mc_predict(model, x, engine="loop", **kwargs)
    assert auto.engine == "cached"
    torch.testing.assert_close(auto.samples, loop.samples)


class InPlaceDropoutAfterInPlaceActivation(nn.Module):
    """torchvision's mobilenet_v3 head: Linear, Hardswish(inplace), Dropout(inplace), Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(
            nn.Linear(5, 8),
            nn.Hardswish(inplace=True),
            nn.Dropout(0.4, inplace=True),
            nn.Linear(8, 3),
        )
        self.skip = nn.Linear(5, 8)

    def forward(self, x):
        h = self.head[1](self.head[0](x))
        y = self.head[3](self.head[2](h))
        return y + self.skip(x)[:, :3] + h[:, :3]  # h read again after the dropout changed it


def test_in_place_dropout_is_a_dependency_of_later_readers():
    model, x = InPlaceDropoutAfterInPlaceActivation().eval(), torch.randn(4, 5)
    kwargs = dict(num_samples=6, seed=0, return_samples=True, chunk_size=3)
    cached = bayesdrop.mc_predict(model, x, engine="cached", **kwargs)
    loop = bayesdrop.mc_predict(model, x, engine="loop", **kwargs)
    assert cached.engine == "cached"
    torch.testing.assert_close(cached.samples, loop.samples)


class InPlaceActivation(nn.Module):
    """ReLU(inplace=True) after the dropout, on a tensor the head owns: cached stays exact."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(5, 4), nn.Dropout(0.5)
        self.act, self.out = nn.ReLU(inplace=True), nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.act(self.drop(self.fc(x))))


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_in_place_ops_on_head_values_keep_the_cache_exact(chunk_size):
    model, x = InPlaceActivation().eval(), torch.randn(4, 5)
    kwargs = dict(num_samples=6, seed=0, chunk_size=chunk_size, return_samples=True)
    cached = bayesdrop.mc_predict(model, x, engine="cached", **kwargs)
    batched = bayesdrop.mc_predict(model, x, engine="batched", **kwargs)
    assert cached.engine == "cached"
    torch.testing.assert_close(cached.samples, batched.samples)


def test_memory_budget_sets_the_samples_per_pass():
    model, x = HeadCNN().eval(), inputs("HeadCNN")
    rows = []
    model.head[2].register_forward_hook(lambda m, i, o: rows.append(o.shape[0]))
    bayesdrop.mc_predict(model, x, num_samples=20, engine="cached", max_memory=1)
    assert rows[1:] == [6] * 20  # after the validation pass: one sample (6 rows) per pass
    rows.clear()
    bayesdrop.mc_predict(model, x, num_samples=20, engine="cached", max_memory=10**9)
    # the probing sample, then everything else in one pass (the first-call check's)
    assert rows == [6, 19 * 6]


class CachesInEval(nn.Module):
    """Keeps a computed value in its own attributes in eval mode (as timm's LeViT keeps its
    attention biases): a torch.fx trace would store a proxy there."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop, self.out = nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 3)
        self.bias_cache: dict = {}
        self.seen: list = []

    def forward(self, x):
        if not self.training:
            if "b" not in self.bias_cache:
                self.bias_cache["b"] = self.fc.bias * 2
            self.seen.append(x.shape[0])
            self.last = x
            return self.out(self.drop(self.fc(x) + self.bias_cache["b"]))
        return self.out(self.drop(self.fc(x) + self.fc.bias * 2))


def test_tracing_leaves_no_proxy_in_the_model():
    model = CachesInEval().eval()
    x = torch.randn(5, 4)
    cache, seen = model.bias_cache, model.seen
    for _ in range(2):  # the second trace used to read the first one's proxy: KeyError
        pred = bayesdrop.mc_predict(model, x, num_samples=8, engine="cached", seed=0)
        assert pred.engine == "cached"
    assert model.bias_cache is cache and model.seen is seen and not hasattr(model, "last")
    assert cache == {} and seen == []
    from bayesdrop.nn._flow import fx_flow  # the converter's trace keeps the model too

    assert not fx_flow(model).unknown
    assert cache == {} and seen == [] and not hasattr(model, "last")
    torch.testing.assert_close(model(x), model.out(model.fc(x) + model.fc.bias * 2))


class TokenModel(nn.Module):
    """Token ids to logits, with a data-dependent branch torch.fx cannot trace (so "auto" is
    batched or the loop, or hooked with ``early=0``): a transformer, or a recurrent model with
    ``recurrent=True``."""

    def __init__(self, recurrent: bool = False, early: float = 0.2) -> None:
        super().__init__()
        # dropout on the embeddings (noise before the chain of blocks: no hooked engine)
        self.embed, self.early = nn.Embedding(50, 16), nn.Dropout(early)
        self.body: nn.Module
        if recurrent:
            self.body = nn.LSTM(16, 16, batch_first=True)
        else:
            layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.2, batch_first=True)
            self.body = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.drop, self.head = nn.Dropout(0.2), nn.Linear(16, 3)

    def forward(self, ids):
        h = self.early(self.embed(ids))
        if ids.max() >= 0:  # data-dependent: not traceable
            h = self.body(h)
        h = h[0] if isinstance(h, tuple) else h
        return self.head(self.drop(h.mean(1)))


def test_auto_counts_tokens_for_a_transformer_not_for_a_recurrent_model():
    """16 sequences of 64 tokens fill a pass of a transformer (issue 27: 20 samples in one pass
    were 1.4-1.5x slower than the loop on a BERT-style model), not of an LSTM, which steps
    through time with 16 rows per op."""
    torch.manual_seed(0)
    long, short = torch.randint(0, 50, (16, 64)), torch.randint(0, 50, (2, 8))
    transformer = TokenModel().eval()
    pred = bayesdrop.mc_predict(transformer, long, num_samples=4)
    assert pred.engine == "loop"
    assert "16 sequences of 64 tokens fills a pass" in pred.engine_reason
    assert bayesdrop.mc_predict(transformer, short, num_samples=4).engine == "batched"
    lstm = TokenModel(recurrent=True).eval()
    assert bayesdrop.mc_predict(lstm, long, num_samples=4).engine == "batched"
    # an explicit chunk_size is taken as given
    assert bayesdrop.mc_predict(transformer, long, num_samples=4, chunk_size=4).engine == "batched"
    # the hooked engine (no noise before the blocks) counts tokens too: one sample per pass of
    # 16 x 64 tokens, four in one pass of 2 x 8
    hooked, rows = TokenModel(early=0.0).eval(), []
    hooked.head.register_forward_hook(lambda _m, a, _o: rows.append(a[0].shape[0]))
    assert bayesdrop.mc_predict(hooked, long, num_samples=4).engine == "hooked"
    assert rows[-4:] == [16] * 4
    assert bayesdrop.mc_predict(hooked, short, num_samples=4).engine == "hooked"
    assert rows[-1] == 8
