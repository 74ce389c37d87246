"""convert(to="concrete") on real architectures (random weights, small configs, no downloads)."""

from __future__ import annotations

import copy

import pytest
import torch
import zoo_models
from torch import nn

import bayesdrop
from bayesdrop.exceptions import BayesdropTypeError, BayesdropValueError


def state(model):
    """Types and modes of every module: a conversion that raised must leave these unchanged."""
    return [(name, type(m).__name__, m.training) for name, m in model.named_modules()]


def converted(report):
    """{dropout name: wrapped layer name}."""
    return {name: new.rsplit(" around ", 1)[1] for name, _, new in report.replaced}


def check_converted(model, report, rates):
    """Every wrapped layer is a ConcreteDropout whose rate starts at the replaced module's p."""
    for drop, layer in converted(report).items():
        wrapper = model.get_submodule(layer)
        assert isinstance(wrapper, bayesdrop.ConcreteDropout)
        assert isinstance(model.get_submodule(drop), nn.Identity)
        torch.testing.assert_close(wrapper.p.item(), rates[drop], rtol=0, atol=1e-6)


def check_kl_has_gradients(model):
    kl = bayesdrop.kl_divergence(model)
    assert torch.isfinite(kl)
    kl.backward()
    wrappers = [m for m in model.modules() if isinstance(m, bayesdrop.ConcreteDropout)]
    assert wrappers
    for m in wrappers:
        assert m.p_logit.grad is not None and torch.isfinite(m.p_logit.grad)
        assert m.layer.weight.grad is not None


def rates_of(model):
    return {name: float(m.p) for name, m in model.named_modules() if isinstance(m, nn.Dropout)}


def reasons(report):
    return dict(report.skipped)


# --------------------------------------------------------------------------------------------
# torch


def encoder(p=0.25):
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=p, batch_first=True)
    return nn.TransformerEncoder(layer, 2).eval()


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")
@pytest.mark.parametrize("with_inputs", [False, True])
def test_torch_transformer_encoder(with_inputs):
    torch.manual_seed(0)
    model = encoder()
    x = torch.randn(3, 5, 16)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] * 4 + [True]])
    with torch.no_grad():  # the inference fast path (and nested tensors with a padding mask)
        before, before_pad = model(x), model(x, src_key_padding_mask=pad)
    rates = rates_of(model)
    report = bayesdrop.convert(model, to="concrete", example_inputs=x if with_inputs else None)
    assert converted(report) == {f"layers.{i}.dropout": f"layers.{i}.linear2" for i in (0, 1)}
    check_converted(model, report, rates)
    why = reasons(report)
    assert set(why) == {
        f"layers.{i}.{k}" for i in (0, 1) for k in ("dropout1", "dropout2", "self_attn")
    }
    assert "goes to add" in why["layers.0.dropout1"]
    assert "MultiheadAttention(dropout=0.25)" in why["layers.1.self_attn"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)
        after_pad = model(x, src_key_padding_mask=pad)
    torch.testing.assert_close(after_pad[~pad], before_pad[~pad])
    with torch.no_grad(), bayesdrop.sampling(model):
        assert not torch.equal(model(x), model(x))
    check_kl_has_gradients(model)


@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_and_gru_skips_carry_reasons(batch_first):
    model = nn.Sequential()
    model.add_module("lstm", nn.LSTM(3, 4, num_layers=2, dropout=0.3, batch_first=batch_first))
    for to in ("mc", "concrete"):
        lstm = nn.LSTM(3, 4, num_layers=2, dropout=0.3, batch_first=batch_first)
        report = bayesdrop.convert(lstm, to=to)
        assert report.replaced == []
        assert [name for name, _ in report.skipped] == [""]
        assert "LSTM(dropout=0.3) keeps its rate as a float" in report.skipped[0][1]
        assert "VariationalLSTM" in report.skipped[0][1]
    gru = nn.Sequential(nn.GRU(3, 4, num_layers=2, dropout=0.2), nn.Identity())
    assert "GRU(dropout=0.2)" in reasons(bayesdrop.convert(gru, to="concrete"))["0"]


def test_multihead_attention_skip_has_reason():
    report = bayesdrop.convert(nn.MultiheadAttention(8, 2, dropout=0.1), to="concrete")
    assert report.skipped[0][0] == ""
    assert "attention probabilities" in report.skipped[0][1]


# --------------------------------------------------------------------------------------------
# timm


def vit(fused=True):
    model = zoo_models.small_vit(
        depth=2, drop_rate=0.3, proj_drop_rate=0.2, attn_drop_rate=0.1, drop_path_rate=0.1
    )
    for block in model.blocks:
        block.attn.fused_attn = fused
    return model.eval()


@pytest.mark.parametrize("with_inputs", [False, True])
def test_timm_vit(with_inputs):
    torch.manual_seed(0)
    model = vit()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    rates = rates_of(model)
    report = bayesdrop.convert(model, to="concrete", example_inputs=x if with_inputs else None)
    assert converted(report) == {
        "blocks.0.mlp.drop1": "blocks.0.mlp.fc2",
        "blocks.1.mlp.drop1": "blocks.1.mlp.fc2",
        "head_drop": "head",
    }
    check_converted(model, report, rates)
    assert rates["head_drop"] == 0.3 and rates["blocks.0.mlp.drop1"] == 0.2
    why = reasons(report)
    assert "p = 0" in why["pos_drop"]
    assert "fused attention" in why["blocks.0.attn.attn_drop"]
    assert "acts on the output of linear `blocks.0.attn.proj`" in why["blocks.0.attn.proj_drop"]
    assert "acts on the output of linear `blocks.1.mlp.fc2`" in why["blocks.1.mlp.drop2"]
    assert "stochastic depth" in why["blocks.1.drop_path1"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)
    check_kl_has_gradients(model)


def test_timm_vit_unfused_attention_dropout_is_on_probabilities():
    model = vit(fused=False)
    for inputs in (None, torch.randn(1, 3, 32, 32)):
        why = reasons(bayesdrop.convert(vit(fused=False), to="concrete", example_inputs=inputs))
        assert why["blocks.0.attn.attn_drop"] == (
            "drops attention probabilities (softmax -> matmul), not the input of a weighted layer"
        )
    assert isinstance(model.blocks[0].attn.attn_drop, nn.Dropout)


# --------------------------------------------------------------------------------------------
# Hugging Face transformers (no fx trace: only with example_inputs)


def hf_model(kind, **extra):
    transformers = pytest.importorskip("transformers")
    if kind == "bert":
        config = transformers.BertConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=64,
            **extra,
        )
        return transformers.BertForSequenceClassification(config).eval()
    if kind == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=37, **extra
        )
        return transformers.DistilBertForSequenceClassification(config).eval()
    config = transformers.GPT2Config(
        vocab_size=100,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **extra,
    )
    return transformers.GPT2ForSequenceClassification(config).eval()


def tokens():
    torch.manual_seed(3)
    ids = torch.randint(3, 100, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask}


HF_CONVERTED = {
    "bert": {"dropout": "classifier"},
    "distilbert": {"dropout": "classifier"},
    "gpt2": {},
}


@pytest.mark.parametrize("kind", ["bert", "distilbert", "gpt2"])
def test_hugging_face_sequence_classifiers(kind):
    model = hf_model(kind)
    inputs = tokens()
    with torch.no_grad():
        before = model(**inputs).logits
    rates = rates_of(model)
    report = bayesdrop.convert(model, to="concrete", example_inputs=inputs)
    assert converted(report) == HF_CONVERTED[kind]
    check_converted(model, report, rates)
    why = reasons(report)
    embed = {"bert": "bert.embeddings.dropout", "distilbert": "distilbert.embeddings.dropout"}
    if kind in embed:
        assert why[embed[kind]].startswith("feeds 3 weighted layers")
    block = {
        "bert": "bert.encoder.layer.1.output.dropout",
        "distilbert": "distilbert.transformer.layer.1.ffn.dropout",
        "gpt2": "transformer.h.1.mlp.dropout",
    }[kind]
    assert why[block].startswith("acts on the output of") and "goes to add" in why[block]
    attention = {
        "bert": "bert.encoder.layer.0.attention.self.dropout",
        "distilbert": "distilbert.transformer.layer.0.attention.dropout",
        "gpt2": "transformer.h.0.attn.attn_dropout",
    }[kind]
    assert "fused attention" in why[attention]
    assert set(why) | set(converted(report)) == set(rates)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, before)
    if converted(report):
        check_kl_has_gradients(model)


def test_hugging_face_without_inputs_says_how():
    model = hf_model("bert")
    report = bayesdrop.convert(model, to="concrete")
    assert report.replaced == []
    assert len(report.skipped) == len(rates_of(model)) == 8
    for _, why in report.skipped:
        assert why.startswith("torch.fx cannot trace this model") and "example_inputs=" in why


def test_hugging_face_eager_attention_calls_functional_dropout():
    model = hf_model("bert", attn_implementation="eager")
    with pytest.warns(UserWarning, match=r"functional dropout.*attention\.self"):
        report = bayesdrop.convert(model, to="concrete", example_inputs=tokens())
    name = "bert.encoder.layer.0.attention.self"
    assert name in report.functional
    why = reasons(report)
    assert why[name].startswith("calls functional dropout")
    assert "passes this module's rate to functional dropout" in why[f"{name}.dropout"]


def test_hugging_face_head_keeps_a_large_rate_and_its_mutual_information():
    torch.manual_seed(4)
    model = hf_model("bert", classifier_dropout=0.5)
    inputs = tokens()

    def mutual_information(num_samples=400):
        with torch.no_grad(), bayesdrop.sampling(model):
            probs = torch.stack([model(**inputs).logits.softmax(-1) for _ in range(num_samples)])
        entropy = lambda p: -(p * p.clamp_min(1e-12).log()).sum(-1)  # noqa: E731
        return (entropy(probs.mean(0)) - entropy(probs).mean(0)).mean().item()

    for m in model.modules():  # keep only the head's noise, for a clean comparison
        if isinstance(m, nn.Dropout) and m is not model.dropout:
            m.p = 0.0
    before = mutual_information()
    bayesdrop.convert(model, to="concrete", example_inputs=inputs)
    assert model.classifier.p.item() == pytest.approx(0.5, abs=1e-6)
    after = mutual_information()
    assert before > 0 and 0.7 < after / before < 1.3


# --------------------------------------------------------------------------------------------
# torchvision (fx traces them; conftest.py stubs torchvision's operator registrations)

TORCHVISION = {
    "vgg11": ({"classifier.2": "classifier.3", "classifier.5": "classifier.6"}, 0),
    "mobilenet_v3_small": ({"classifier.2": "classifier.3"}, 0),
    "efficientnet_b0": ({"classifier.0": "classifier.1"}, 15),
}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_classifiers(name):
    models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    model = getattr(models, name)(num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    rates = rates_of(model)
    report = bayesdrop.convert(model, to="concrete")
    expected, num_depth = TORCHVISION[name]
    assert converted(report) == expected
    check_converted(model, report, rates)
    depth = [why for _, why in report.skipped if why.startswith("StochasticDepth")]
    assert len(depth) == len(report.skipped) == num_depth
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)
    if name != "vgg11":  # same answer from one forward pass
        again = getattr(models, name)(num_classes=10)
        assert bayesdrop.convert(again, to="concrete", example_inputs=x).replaced == report.replaced
    check_kl_has_gradients(model)


# --------------------------------------------------------------------------------------------
# data flows, one rule each, with fx (no inputs) and with a forward pass


class Flows(nn.Module):
    def __init__(self):
        super().__init__()
        self.through_view = nn.Dropout(0.15)
        self.fc_view = nn.Linear(12, 4)
        self.spatial = nn.Dropout2d(0.35)
        self.conv = nn.Conv2d(3, 3, 1)
        self.elementwise = nn.Dropout(0.2)
        self.conv2 = nn.Conv2d(3, 3, 1)
        self.twice = nn.Dropout(0.2)
        self.shared_in = nn.Dropout(0.2)
        self.shared = nn.Linear(4, 4)
        self.residual = nn.Dropout(0.2)
        self.fc_res = nn.Linear(4, 4)

    def forward(self, x):  # x: (N, 3, 2, 2)
        h = self.fc_view(self.through_view(x).view(x.shape[0], 12))
        x = self.conv2(self.elementwise(self.conv(self.spatial(x))))
        h = self.twice(h) + self.twice(h)
        h = self.shared(self.shared_in(h)) + self.shared(h)
        r = self.residual(h)
        return self.fc_res(r) + r + x.sum()


FLOW_REASONS = {
    "elementwise": "feeds conv2d `conv2` (Conv2d), not an nn.Linear; an elementwise mask",
    "twice": "called 2 times in one forward pass",
    "shared_in": "it feeds `shared`, which is also called 1 more time(s) on other inputs",
    "residual": "its output goes to linear `fc_res`, add: besides any weighted layer",
}


@pytest.mark.parametrize("with_inputs", [False, True])
def test_each_data_flow_rule(with_inputs):
    torch.manual_seed(0)
    model = Flows()
    x = torch.randn(2, 3, 2, 2)
    before = model.eval()(x)
    report = bayesdrop.convert(model, to="concrete", example_inputs=(x,) if with_inputs else None)
    assert converted(report) == {"through_view": "fc_view", "spatial": "conv"}
    assert isinstance(model.conv, bayesdrop.SpatialConcreteDropout)
    assert model.conv.p.item() == pytest.approx(0.35, abs=1e-6)
    assert model.fc_view.p.item() == pytest.approx(0.15, abs=1e-6)
    why = reasons(report)
    assert set(why) == set(FLOW_REASONS)
    for name, start in FLOW_REASONS.items():
        assert why[name].lower().startswith(start.lower())  # fx names the module type
    torch.testing.assert_close(model(x), before)


def test_explicit_initial_rate_overrides_the_model():
    model = nn.Sequential(nn.Dropout(0.4), nn.Linear(3, 2))
    bayesdrop.convert(model, to="concrete", init_min=0.1, init_max=0.1)
    assert model[1].p.item() == pytest.approx(0.1, abs=1e-6)


def test_forward_pass_leaves_model_modes_statistics_and_rng_alone():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.3), nn.Linear(4, 2))
    model.train()
    model[3].eval()
    stats = model[1].running_mean.clone()
    x = torch.randn(8, 3)
    torch.manual_seed(1)
    bayesdrop.convert(copy.deepcopy(model), to="concrete")
    rng = torch.get_rng_state()
    torch.manual_seed(1)
    bayesdrop.convert(model, to="concrete", example_inputs=x)
    assert torch.equal(torch.get_rng_state(), rng)  # the forward pass draws no random numbers
    assert torch.equal(model[1].running_mean, stats)
    assert [m.training for m in model] == [True, True, True, False]


# --------------------------------------------------------------------------------------------
# bad input: clear errors, model unchanged


def head():
    return nn.Sequential(
        nn.Linear(3, 4), nn.Dropout(0.3), nn.Linear(4, 4), nn.Dropout(0.3), nn.Linear(4, 2)
    )


@pytest.mark.parametrize("bad", [{1: torch.ones(1)}, {torch.ones(1)}, "x", 3])
def test_example_inputs_of_another_type(bad):
    model = head()
    with pytest.raises(
        BayesdropTypeError,
        match=r"Expected `example_inputs` to be a tensor, a tuple of positional inputs or a map",
    ):
        bayesdrop.convert(model, to="concrete", example_inputs=bad)


def test_example_inputs_the_model_rejects():
    model = head().train()
    saved = state(model)
    with pytest.raises(
        BayesdropValueError,
        match=r"Expected `example_inputs` to be inputs the model's forward accepts, but got inputs "
        r"on which the forward pass raised RuntimeError: mat1 and mat2 shapes cannot be multiplied",
    ):
        bayesdrop.convert(model, to="concrete", example_inputs=torch.randn(2, 5))
    assert state(model) == saved
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lenght_scale": 1.0}, BayesdropTypeError, r"Expected `kwargs` to be keyword arguments "
         r"of ConcreteDropout \(weight_regularizer, .*\), but got lenght_scale"),
        ({"weight_regularizer": -1.0}, BayesdropValueError, r"Expected `weight_regularizer` to be "
         r"non-negative, but got -1\.0"),
    ],
)  # fmt: skip
def test_bad_keyword_arguments_change_nothing(kwargs, error, match):
    model = head()
    saved = state(model)
    with pytest.raises(error, match=match):
        bayesdrop.convert(model, to="concrete", **kwargs)
    assert state(model) == saved


def test_a_failure_on_a_later_layer_changes_nothing(monkeypatch):
    import sys

    module = sys.modules["bayesdrop.nn._convert"]
    built = []

    class Failing(bayesdrop.ConcreteDropout):
        def __init__(self, layer, **kwargs):
            built.append(layer)
            if len(built) == 2:
                raise RuntimeError("second layer")
            super().__init__(layer, **kwargs)

    monkeypatch.setattr(module, "ConcreteDropout", Failing)
    model = head()
    saved = state(model)
    with pytest.raises(RuntimeError, match="second layer"):
        bayesdrop.convert(model, to="concrete")
    assert len(built) == 2 and state(model) == saved
