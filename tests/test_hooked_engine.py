"""The hooked engine (issue 23): the blocks before the first stochastic block of a chain run
once, without torch.fx, on Hugging Face models (BERT, GPT-2, Llama, Qwen2, ViT, PEFT LoRA) with
noise only in the last block and the head; agreement with the loop (exact at one sample per
pass under the same seed, within Monte-Carlo error otherwise), the checks that refuse it, and
nothing left behind."""

from __future__ import annotations

import warnings

import pytest
import torch
from lm_models import decoder
from lm_models import tokens as lm_tokens
from torch import nn
from torch.nn.modules import module as torch_module

import bayesdrop
from bayesdrop.exceptions import EngineFallbackWarning
from bayesdrop.predict import _prefix as prefix

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(
    vocab_size=100,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    max_position_embeddings=64,
    initializer_range=0.3,
    num_labels=3,
)


def _noise_in(module: nn.Module, p: float) -> None:
    """Dropout of rate ``p`` in every ``nn.Dropout`` and float attention rate of ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
        if isinstance(getattr(m, "attention_dropout", None), float):
            m.attention_dropout = p


def _batch(n: int = 3, t: int = 8) -> dict:
    ids = torch.randint(3, 100, (n, t))
    mask = torch.ones(n, t, dtype=torch.long)
    ids[1, 6:], mask[1, 6:] = 0, 0  # right padding
    return {"input_ids": ids, "attention_mask": mask}


def bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        **SMALL, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.2
    )
    model = transformers.BertForSequenceClassification(config).eval()
    _noise_in(model.bert.encoder.layer[-1], 0.2)
    return model, _batch(), "bert.encoder.layer.1"


def gpt2():
    model = decoder("gpt2", "cls", base_dropout=0.0)
    _noise_in(model.transformer.h[-1], 0.2)
    return model, _batch(), "transformer.h.1"


def llama():
    model = decoder("llama", "lm", base_dropout=0.0)
    _noise_in(model.model.layers[-1], 0.3)
    return model, lm_tokens(3, 8, pad_first=2), "model.layers.1"


def qwen2():
    model = decoder("qwen2", "cls", base_dropout=0.0)
    _noise_in(model.model.layers[-1], 0.3)
    return model, _batch(), "model.layers.1"


def vit():
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=16,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.3,
        num_labels=3,
    )
    model = transformers.ViTForImageClassification(config).eval()
    _noise_in(model.vit.layers[-1], 0.2)
    return model, {"pixel_values": torch.randn(3, 3, 16, 16)}, "vit.layers.1"


def lora(family: str, last_only: bool):
    """A LoRA-wrapped decoder whose only noise is ``lora_dropout`` (in the last block only, or
    in every block: the prefix is then the embeddings)."""
    peft = pytest.importorskip("peft")
    model = decoder(family, "cls", base_dropout=0.0)
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.3,
        target_modules=["c_attn"] if family == "gpt2" else ["q_proj", "v_proj"],
        fan_in_fan_out=family == "gpt2",
        task_type="SEQ_CLS",
        init_lora_weights=False,
        layers_to_transform=[1] if last_only else None,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*checkpointing")
        model = peft.get_peft_model(model, config).eval()
    block = "layers" if family != "gpt2" else "h"
    owner = "transformer" if family == "gpt2" else "model"
    name = f"base_model.model.{owner}.{block}.{1 if last_only else 0}"
    return model, _batch(), name


MODELS = {
    "bert": bert,
    "gpt2": gpt2,
    "llama": llama,
    "qwen2": qwen2,
    "vit": vit,
    "llama-lora-last": lambda: lora("llama", True),
    "qwen2-lora-all": lambda: lora("qwen2", False),
    "gpt2-lora-last": lambda: lora("gpt2", True),
}


#: per-token logits of a causal LM: classes last
OPTS = {"llama": {"class_dim": -1}}


def _state(model: nn.Module) -> tuple:
    """Modes, hooks and instance attributes of every module, and the global hooks."""
    return (
        tuple(
            (m.training, len(m._forward_hooks), len(m._forward_pre_hooks), "forward" in m.__dict__)
            for m in model.modules()
        ),
        len(torch_module._global_forward_hooks),
        len(torch_module._global_forward_pre_hooks),
    )


@pytest.mark.parametrize("name", list(MODELS))
def test_one_sample_per_pass_equals_the_loop_exactly(name):
    model, x, block = MODELS[name]()
    before = _state(model)
    opts = dict(num_samples=6, seed=3, return_samples=True, **OPTS.get(name, {}))
    hooked = bayesdrop.mc_predict(model, x, engine="hooked", chunk_size=1, **opts)
    loop = bayesdrop.mc_predict(model, x, engine="loop", **opts)
    assert hooked.engine == "hooked", hooked.engine_reason
    assert f"`{block}` is the first stochastic block" in hooked.engine_reason
    # the prefix draws nothing, so the rest draws the loop's masks in the loop's order
    torch.testing.assert_close(hooked.samples, loop.samples, rtol=1e-5, atol=1e-6)
    assert hooked.samples.std(0).max() > 1e-3  # really sampled
    assert _state(model) == before


@pytest.mark.parametrize("name", list(MODELS))
def test_auto_picks_it_and_agrees_with_the_loop_within_monte_carlo_error(name):
    model, x, _block = MODELS[name]()
    num_samples, opts = 200, OPTS.get(name, {})
    auto = bayesdrop.mc_predict(model, x, num_samples=num_samples, seed=1, **opts)
    loop = bayesdrop.mc_predict(
        model, x, num_samples=num_samples, seed=2, engine="loop", return_samples=True, **opts
    )
    assert auto.engine == "hooked", auto.engine_reason
    assert auto.engine_reason.startswith("auto: cached engine unavailable: torch.fx")
    se = loop.samples.std(0) / num_samples**0.5
    diff = (auto.probs - loop.probs).abs()
    assert bool((diff <= 5 * 2**0.5 * se + 1e-6).all()), diff.max()
    # k samples in one pass: the same masks as the batched engine under the same seed
    batched = bayesdrop.mc_predict(model, x, num_samples=8, seed=4, engine="batched", **opts)
    hooked = bayesdrop.mc_predict(model, x, num_samples=8, seed=4, engine="hooked", **opts)
    torch.testing.assert_close(hooked.probs, batched.probs, rtol=1e-4, atol=1e-5)


def test_the_predictor_and_check_noise_use_it():
    model, x, _ = bert()
    predictor = bayesdrop.MCPredictor(model, num_samples=16, seed=0, progress=False)
    pred = predictor.predict([x, x])
    assert pred.engine == "hooked" and pred.probs.shape == (6, 3)
    check = bayesdrop.check_noise(model, x, num_samples=64, seed=0)
    assert check.ok and check.engine == "hooked", check.describe()


# a plain torch chain that torch.fx cannot trace (a branch on a value) --------------------------


class Chain(nn.Module):
    """Embedding, a ModuleList of blocks (dropout in the last), a head; options plant the
    cases the engine must refuse."""

    def __init__(self, early_noise=False, rng=False, size=False, shared=False, fail_at=0):
        super().__init__()
        self.embed = nn.Linear(4, 16)
        self.early = nn.Dropout(0.2 if early_noise else 0.0)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(16, 16), nn.Tanh()) for _ in range(2))
        self.blocks.append(nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Dropout(0.3)))
        self.head = nn.Linear(16, 3)
        self.sizer = _Size() if size else None
        self.rng, self.shared, self.fail_at, self.calls = rng, shared, fail_at, 0

    def forward(self, x):
        h = self.early(self.embed(x))
        if bool(h.abs().sum() >= 0):  # data-dependent: torch.fx cannot trace it
            h = h + 0.0
        if self.rng:
            h = h + 1e-3 * torch.rand_like(h)
        if self.sizer is not None:
            h = h.view(self.sizer(h), -1)
        for block in self.blocks:
            h = block(h)
        if self.shared:
            h = self.blocks[-1](h)
        self.calls += 1
        if self.fail_at and self.calls >= self.fail_at:
            raise RuntimeError("planted failure")
        return self.head(h)


class _Size(nn.Module):
    def forward(self, h):
        return h.shape[0]


def test_a_plain_chain_runs_hooked_and_equals_the_loop():
    torch.manual_seed(0)
    model, x = Chain().eval(), torch.randn(5, 4)
    opts = dict(num_samples=6, seed=0, return_samples=True)
    auto = bayesdrop.mc_predict(model, x, chunk_size=1, **opts)
    assert auto.engine == "hooked" and "`blocks.2` is the first" in auto.engine_reason
    assert "the 4 module calls before it ran once" in auto.engine_reason  # embed, early, 2 blocks
    loop = bayesdrop.mc_predict(model, x, engine="loop", **opts)
    torch.testing.assert_close(auto.samples, loop.samples)


REFUSED = {
    "noise before the chain": (dict(early_noise=True), r"noise before the first .* `early`"),
    "a prefix that reads RNG": (dict(rng=True), r"noise before the first .*rand_like"),
    "a size it cannot repeat": (dict(size=True), r"`sizer` returns 5, the batch size"),
    "a block called twice": (dict(shared=True), r"`blocks.2` is called 2 times per forward"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refusals_fall_back_with_the_reason(case):
    kwargs, reason = REFUSED[case]
    torch.manual_seed(0)
    model, x = Chain(**kwargs).eval(), torch.randn(5, 4)
    before = _state(model)
    auto = bayesdrop.mc_predict(model, x, num_samples=4, seed=0)
    assert auto.engine in ("batched", "loop")
    assert "hooked engine unavailable" in auto.engine_reason
    assert __import__("re").search(reason, auto.engine_reason), auto.engine_reason
    with pytest.warns(EngineFallbackWarning, match=r"bayesdrop: hooked engine unavailable"):
        forced = bayesdrop.mc_predict(model, x, num_samples=4, seed=0, engine="hooked")
    assert forced.engine in ("batched", "loop")
    assert _state(model) == before


def test_layerdrop_in_the_prefix_is_refused():
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 32),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        apply_spec_augment=False,
        hidden_dropout=0.0,
        activation_dropout=0.0,
        attention_dropout=0.0,
        feat_proj_dropout=0.0,
        final_dropout=0.0,
        layerdrop=0.5,
        num_labels=3,
    )
    model = transformers.Wav2Vec2ForSequenceClassification(config).eval()
    _noise_in(model.wav2vec2.encoder.layers[-1], 0.2)
    pred = bayesdrop.mc_predict(model, {"input_values": torch.randn(2, 800)}, num_samples=4)
    assert pred.engine != "hooked"
    assert "hooked engine unavailable: `wav2vec2.encoder` is a noise module running around" in (
        pred.engine_reason
    )


def test_the_validation_catches_a_broken_replay(monkeypatch):
    # plant a bug: the replayed prefix outputs come back with their rows in the wrong order
    model, x, _ = bert()
    original = prefix.repeat_value

    def rolled(value, k, n, batch_dim):
        out = original(value, k, n, batch_dim)
        return out.roll(1, 0) if isinstance(out, torch.Tensor) and out.dim() == 3 else out

    monkeypatch.setattr(prefix, "repeat_value", rolled)
    pred = bayesdrop.mc_predict(model, x, num_samples=4, seed=0)
    assert pred.engine == "batched"
    assert "hooked engine unavailable: the arguments of `bert.encoder.layer.1`" in (
        pred.engine_reason
    )


def test_the_self_check_catches_noise_shared_by_the_repeats():
    # a block whose noise is one draw per call, declared per row: the repeats of one pass
    # would share it; the first-call check sends auto to one sample per pass
    class CallNoise(nn.Module):
        p = 0.5

        def forward(self, h):
            return h * (torch.rand([]) < 0.5) * 2 if self.training else h

    bayesdrop.nn.register_stochastic_module(CallNoise, rate="p", scope="row")
    torch.manual_seed(0)
    model = Chain().eval()
    model.blocks[-1].append(CallNoise())
    x = torch.randn(5, 4)
    opts = dict(num_samples=8, seed=0, return_samples=True)
    pred = bayesdrop.mc_predict(model, x, **opts)
    assert pred.engine == "hooked", pred.engine_reason
    assert "one sample per pass: the 8 repeats of one pass shared the draws of" in (
        pred.engine_reason
    )
    # one re-entry per sample, from the stream the check started from: the loop's samples
    loop = bayesdrop.mc_predict(model, x, engine="loop", **opts)
    torch.testing.assert_close(pred.samples, loop.samples)


def test_hooks_and_modes_are_restored_after_an_error():
    torch.manual_seed(0)
    model, x = Chain(fail_at=4).eval(), torch.randn(5, 4)
    before = _state(model)
    with pytest.raises(RuntimeError, match="planted failure"):
        bayesdrop.mc_predict(model, x, num_samples=4, chunk_size=1, engine="hooked")
    assert model.calls == 4  # the capture stops before the head; validation 2, samples 2
    assert _state(model) == before
