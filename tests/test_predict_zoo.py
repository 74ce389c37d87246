"""mc_predict on real architectures (torchvision, timm, Hugging Face, torch) with random weights.

For every model: each engine agrees with a plain loop under the model's own training-mode noise
(normalisation layers kept in eval), in the mean probabilities and in the mutual information,
within Monte-Carlo error at S = 200; modes and BatchNorm statistics are restored; the engine that
``engine="auto"`` picks is the one recorded in ``AUTO``.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import zoo_models
from torch import nn

import bayesdrop
from bayesdrop.functional import entropy

S = 200

# The engine engine="auto" picks, and why (checked below; also in benchmarks/README.md).
AUTO = {
    "vgg11": "cached",
    "mobilenet_v3_small": "cached",  # in-place Hardswish and Dropout(inplace=True) in the head
    "efficientnet_b0": "cached",  # the first block's stochastic depth has p = 0: in the trunk
    "resnet18_dropout_head": "cached",
    "deeplabv3_mobilenet": "cached",
    "timm_vit_tiny": "cached",
    "timm_convnext_atto": "cached",
    "bert": "batched",  # Hugging Face models do not trace with torch.fx
    "distilbert": "batched",
    "gpt2": "batched",
    "transformer_encoder_batch_first": "cached",
    "transformer_encoder_sequence_first": "cached",
    "lstm_batch_first": "batched",  # the LSTM's own dropout comes first: nothing to cache
    "lstm_sequence_first": "batched",
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _logits(raw):
    if isinstance(raw, torch.Tensor):
        return raw
    if hasattr(raw, "logits"):
        return raw.logits
    if isinstance(raw, dict):
        return raw["out"]
    raise AssertionError(type(raw))


def training_noise_probs(model, x, opts, num_samples, seed):
    """A plain loop of forward passes in training mode, BatchNorm in eval: batch-first probs
    with the classes last."""
    modes = [(m, m.training) for m in model.modules()]
    batch_dim, class_dim = opts.get("batch_dim", 0), opts.get("class_dim", -1)
    try:
        model.train()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        torch.manual_seed(seed)
        out = []
        with torch.no_grad():
            for _ in range(num_samples):
                raw = model(**x) if isinstance(x, dict) else model(x)
                logits = _logits(raw).movedim(class_dim, -1)
                if batch_dim == 1:
                    logits = logits.movedim(0, 1) if class_dim != 0 else logits
                out.append(logits.softmax(-1))
    finally:
        for m, mode in modes:
            m.training = mode
    return torch.stack(out)


def _mi(s):
    return entropy(s.mean(0)) - entropy(s).mean(0)


def jackknife(fn, samples, groups=20):
    """``fn(samples)`` and its delete-a-group jackknife standard error."""
    full = fn(samples)
    parts = samples.chunk(groups)
    loo = torch.stack([fn(torch.cat(parts[:i] + parts[i + 1 :])) for i in range(groups)])
    se = ((groups - 1) / groups * ((loo - loo.mean(0)) ** 2).sum(0)).sqrt()
    return full, se


def mi_with_std_error(samples):
    """Mutual information per point and its jackknife standard error."""
    return jackknife(_mi, samples)


def snapshot(model):
    flags = [m.training for m in model.modules()]
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    return flags, buffers


def assert_restored(model, before):
    flags, buffers = before
    assert [m.training for m in model.modules()] == flags
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, buffers[k], rtol=0, atol=0, msg=k)


def predict(model, x, opts, engine, seed):
    with warnings.catch_warnings():
        # forcing "cached" on a model that cannot be split warns and falls back; expected here
        warnings.filterwarnings("ignore", message="bayesdrop: cached engine unavailable")
        return bayesdrop.mc_predict(
            model, x, num_samples=S, engine=engine, seed=seed, return_samples=True, **opts
        )


@pytest.mark.parametrize("name", list(zoo_models.ZOO))
def test_every_engine_matches_training_mode_noise(name):
    model, x, opts = zoo_models.ZOO[name]()
    before = snapshot(model)
    reference = training_noise_probs(model, x, opts, S, seed=1)
    ref_mean, ref_se = reference.mean(0), reference.std(0) / S**0.5
    ref_mi, ref_mi_se = mi_with_std_error(reference)
    chosen = bayesdrop.mc_predict(model, x, num_samples=2, seed=0, **opts)
    assert chosen.engine == AUTO[name], chosen.engine_reason
    for i, engine in enumerate(("loop", "batched", "cached")):
        pred = predict(model, x, opts, engine, seed=10 + i)
        assert pred.probs.shape == ref_mean.shape
        se = (ref_se**2 + (pred.samples.std(0) / S**0.5) ** 2).sqrt()
        diff = (pred.probs - ref_mean).abs()
        assert bool((diff <= 6 * se + 1e-6).all()), (engine, float((diff / (se + 1e-12)).max()))
        mi, mi_se = mi_with_std_error(pred.samples)
        torch.testing.assert_close(pred.mutual_information, mi, rtol=1e-4, atol=1e-5)
        gap = (mi - ref_mi).abs()
        bound = 6 * (mi_se**2 + ref_mi_se**2).sqrt() + 1e-4
        assert bool((gap <= bound).all()), (engine, float((gap / bound).max()))
        # the mean mutual information, the summary a user reads (the old timm ViT gap: 0.337
        # vs 0.693), within 6 jackknife standard errors
        mean, mean_se = jackknife(lambda s: _mi(s).mean(), pred.samples)
        ref, ref_se_mean = jackknife(lambda s: _mi(s).mean(), reference)
        assert abs(float(mean - ref)) <= 6 * float((mean_se**2 + ref_se_mean**2).sqrt()) + 1e-4
        assert_restored(model, before)
    assert float(ref_mi.mean()) > 0  # the comparison is not between two zeros


def test_dense_outputs_give_uncertainty_maps():
    model, x, opts = zoo_models.deeplabv3_mobilenet()
    pred = bayesdrop.mc_predict(model, x, num_samples=8, seed=0, **opts)
    assert pred.probs.shape == (2, 32, 32, 4)
    assert pred.mutual_information.shape == pred.predictive_entropy.shape == (2, 32, 32)
    assert pred.prediction.shape == (2, 32, 32)
    with pytest.raises(ValueError, match="Expected `class_dim` to be given for a model output"):
        bayesdrop.mc_predict(model, x, num_samples=2)
    with pytest.raises(ValueError, match=r"Expected `class_dim` to be a dimension of the model"):
        bayesdrop.mc_predict(model, x, num_samples=2, class_dim=4)
    with pytest.raises(ValueError, match=r"Expected `class_dim` to be a dimension.*got 0"):
        bayesdrop.mc_predict(model, x, num_samples=2, class_dim=0)


def test_hugging_face_dict_batches_from_a_dataloader():
    model, _batch, _ = zoo_models.bert()
    labels = torch.tensor([0, 2, 1, 1, 0])
    data = [
        {
            "input_ids": torch.randint(0, 100, (8,)),
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": labels[i],
        }
        for i in range(5)
    ]
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    predictor = bayesdrop.MCPredictor(
        model, num_samples=16, seed=0, target_key="labels", progress=False
    )
    pred = predictor.predict(loader)
    assert pred.probs.shape == (5, 3) and pred.engine == "batched"
    torch.testing.assert_close(pred.target, labels)
    assert "no longer has" in pred.engine_reason or "fx tracer" in pred.engine_reason
    # the same batches one by one, in the same seeded stream, give the same numbers (the
    # batches are drawn first: iterating a DataLoader draws its base seed from the global state)
    batches = [{k: v for k, v in b.items() if k != "labels"} for b in loader]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        parts = [bayesdrop.mc_predict(model, b, num_samples=16).probs for b in batches]
    torch.testing.assert_close(pred.probs, torch.cat(parts))


def test_hugging_face_output_choice_and_positional_inputs():
    model, batch, _ = zoo_models.distilbert()
    by_key = bayesdrop.mc_predict(model, batch, num_samples=4, seed=0, output="logits")
    default = bayesdrop.mc_predict(model, batch, num_samples=4, seed=0)
    by_fn = bayesdrop.mc_predict(model, batch, num_samples=4, seed=0, output=lambda o: o[0])
    positional = bayesdrop.mc_predict(
        model, (batch["input_ids"], batch["attention_mask"]), num_samples=4, seed=0
    )
    for other in (by_key, by_fn, positional):
        torch.testing.assert_close(other.probs, default.probs)
    with pytest.raises(ValueError, match=r"Expected `output` to be a key or attribute.*'logits'"):
        bayesdrop.mc_predict(model, batch, num_samples=2, output="scores")


def test_attention_dropout_only_is_sampled():
    # before: mutual information exactly 0 (SDPA reads the attention module's training flag)
    model, batch, _ = zoo_models.bert_attention_dropout_only()
    names = [n for n, _ in bayesdrop.nn.stochastic_modules(model)]
    assert any(n.endswith("attention.self") for n in names)
    pred = bayesdrop.mc_predict(model, batch, num_samples=16, seed=0)
    assert bool((pred.mutual_information > 0).all())
    check = bayesdrop.check_noise(model, batch)
    assert not check.missed and 0.5 < check.ratio < 2.0


def test_stochastic_depth_only_is_sampled():
    # before: an efficientnet whose only noise is stochastic depth got zero uncertainty
    model, x, _ = zoo_models.efficientnet_b0_stochastic_depth_only()
    kinds = {type(m).__name__ for _, m in bayesdrop.nn.stochastic_modules(model)}
    assert kinds == {"StochasticDepth"}
    pred = bayesdrop.mc_predict(model, x, num_samples=16, seed=0)
    assert bool((pred.mutual_information > 0).all())


def test_zero_rate_modules_are_not_noise_and_do_not_move_the_split():
    model = zoo_models.small_vit(drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0).eval()
    model.head_drop.p = 0.3  # the only noise: dropout before the classifier
    x = torch.randn(2, 3, 32, 32)
    pred = bayesdrop.mc_predict(model, x, num_samples=4, seed=0)
    assert pred.engine == "cached"
    plan = bayesdrop.predict.engines.plan_source(model).get()
    head = {str(n.target) for n in plan.head.graph.nodes if n.op == "call_module"}
    assert head == {"head_drop", "head"}  # the whole transformer runs once


def test_bad_inputs():
    model, batch, _ = zoo_models.bert()
    ragged = dict(batch, attention_mask=torch.ones(3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"share the batch dimension.*'input_ids'\]: 2.*: 3"):
        bayesdrop.mc_predict(model, ragged)
    silent = zoo_models._hf("bert", only_attention=True)[0]
    for m in silent.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    with pytest.raises(ValueError, match=r"rate 0.*register_stochastic_module"):
        bayesdrop.mc_predict(silent, batch)


class HiddenNoise(nn.Module):
    """Noise switched by `if self.training:` on a line of its own: not recognised."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(4, 3), nn.Dropout(0.5)

    def forward(self, x):
        h = self.fc(x)
        if self.training:
            h = h + torch.randn_like(h)
        return h + 0.0 * self.drop(torch.ones_like(h))  # a dropout that reaches nothing


def test_missed_noise_is_an_error_that_names_the_module():
    model = HiddenNoise().eval()
    with pytest.raises(ValueError, match=r"misses noise.*not switched: \(model\) \(HiddenNoise\)"):
        bayesdrop.mc_predict(model, torch.randn(3, 4), num_samples=4)
    assert not model.training and not model.drop.training
    check = bayesdrop.check_noise(model, torch.randn(3, 4))
    assert check.missed and check.sampled_spread == 0.0 and check.training_spread > 0.1
    # registered, it is sampled
    bayesdrop.nn.register_stochastic_module(HiddenNoise, rate=None)
    try:
        pred = bayesdrop.mc_predict(model, torch.randn(3, 4), num_samples=8, seed=0)
        assert bool((pred.mutual_information > 0).all())
    finally:
        import sys

        sampling_module = sys.modules["bayesdrop.nn.sampling"]
        sampling_module._REGISTRY.pop(HiddenNoise)
        sampling_module._KIND_CACHE.clear()


def test_dense_prediction_to_a_calibration_report_with_ignored_pixels():
    model, x, opts = zoo_models.deeplabv3_mobilenet()
    pred = bayesdrop.mc_predict(model, x, num_samples=8, seed=0, **opts)
    target = torch.randint(0, 4, (2, 32, 32))
    target[:, :4] = 255  # a void border, as in Pascal VOC
    report = bayesdrop.CalibrationReport.from_predictions(pred, target, ignore_index=255)
    kept = target != 255
    assert report.metrics.num_data == int(kept.sum())
    flat = pred.probs[kept]
    expected = bayesdrop.calibration.expected_calibration_error(flat, target[kept])
    assert report.metrics.ece == pytest.approx(float(expected), abs=1e-6)
