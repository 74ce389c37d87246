"""PEFT LoRA models (``peft.get_peft_model`` on GPT-2, Llama and Qwen2 from small configs) with
``mc_predict``, ``MCPredictor`` and ``check_noise``: PEFT's ``lora_dropout`` is an
``nn.Dropout`` inside each adapted layer, found and switched by :func:`bayesdrop.sampling`.

The oracle is a plain loop of forward passes in training mode (these models have no
normalisation layer with running statistics), compared with the helpers of
``tests/test_predict_zoo.py``: mean probabilities within 6 Monte-Carlo standard errors, mutual
information within 6 jackknife standard errors, every mode and buffer restored bit for bit.
"""

from __future__ import annotations

import pytest
import torch
from lm_models import FAMILIES, decoder
from test_predict_zoo import Oracle, assert_restored, disagreement, snapshot, training_noise_probs

import bayesdrop

pytest.importorskip("peft")
pytestmark = pytest.mark.usefixtures("one_thread")

S = 96


def _classifier_batch(n: int = 2, t: int = 8) -> dict:
    ids = torch.randint(3, 100, (n, t))
    mask = torch.ones(n, t, dtype=torch.long)
    ids[1, 6:], mask[1, 6:] = 0, 0  # right padding (pad_token_id 0): the classifiers pool on
    return {"input_ids": ids, "attention_mask": mask}  # the last real token


CASES = [
    # (family, head, base dropout): GPT-2 with its own dropout and LoRA's, and with LoRA's only;
    # Llama and Qwen2 with attention dropout 0 (as released), so LoRA's is the only noise
    *[pytest.param(f, h, 0.0, id=f"{f}-{h}-lora-only") for f in FAMILIES for h in ("lm", "cls")],
    pytest.param("gpt2", "lm", 0.1, id="gpt2-lm-base-and-lora"),
]


@pytest.mark.parametrize(("family", "head", "base"), CASES)
def test_lora_models_match_training_mode_noise(family, head, base):
    model = decoder(family, head, base_dropout=base, lora_dropout=0.2)
    x = _classifier_batch()
    opts = {"class_dim": -1} if head == "lm" else {}
    before = snapshot(model)
    oracle = Oracle(training_noise_probs(model, x, opts, S, seed=1))
    assert_restored(model, before)
    assert float(oracle.mean_mi) > 6 * float(oracle.mean_mi_se), "no noise reaches the output"
    pred = bayesdrop.mc_predict(model, x, num_samples=S, seed=2, return_samples=True, **opts)
    assert_restored(model, before)
    assert disagreement(pred, oracle) is None, disagreement(pred, oracle)


@pytest.mark.parametrize("family", FAMILIES)
def test_check_noise_finds_only_the_adapters_dropout(family):
    model = decoder(family, "lm", base_dropout=0.0, lora_dropout=0.2)
    x = _classifier_batch()
    before = snapshot(model)
    check = bayesdrop.check_noise(model, x, class_dim=-1, seed=0)
    assert_restored(model, before)
    assert check.ok, check.describe()
    noisy = [name for name, _type, rate in check.noise_modules if rate > 0]
    # two adapted layers per block for Llama/Qwen2 (q_proj, v_proj), one for GPT-2 (c_attn)
    assert len(noisy) == (2 if family == "gpt2" else 4), noisy
    assert all(".lora_dropout." in name for name in noisy), noisy


def test_predictor_over_a_dataloader_with_labels():
    model = decoder("llama", "cls", base_dropout=0.0, lora_dropout=0.2)
    x = _classifier_batch(n=6)
    rows = [{**{k: v[i] for k, v in x.items()}, "labels": torch.tensor(i % 3)} for i in range(6)]
    loader = torch.utils.data.DataLoader(rows, batch_size=4)
    before = snapshot(model)
    pred = bayesdrop.MCPredictor(model, num_samples=16, seed=0, target_key="labels").predict(loader)
    assert_restored(model, before)
    assert pred.probs.shape == (6, 3) and pred.target.tolist() == [0, 1, 2, 0, 1, 2]
    assert bool((pred.mutual_information > 0).all())
    one = bayesdrop.mc_predict(model, x, num_samples=16, seed=0)
    assert one.probs.shape == pred.probs.shape


def test_modes_of_a_model_left_in_training_mode_are_restored():
    model = decoder("qwen2", "lm", base_dropout=0.0, lora_dropout=0.2).train()
    before = snapshot(model)
    bayesdrop.mc_predict(model, _classifier_batch(), num_samples=4, class_dim=-1, seed=0)
    assert_restored(model, before)
    assert all(m.training for m in model.modules())


def test_lora_without_dropout_and_no_base_dropout_is_refused():
    # lora_dropout=0 makes PEFT use nn.Identity: nothing left to sample
    model = decoder("gpt2", "lm", base_dropout=0.0, lora_dropout=0.0)
    with pytest.raises(ValueError, match="non-zero rate"):
        bayesdrop.mc_predict(model, _classifier_batch(), num_samples=4, class_dim=-1)


def test_only_the_adapters_noise_equals_the_model_with_the_base_dropout_at_zero():
    # GPT-2 with its own dropout (0.1) and LoRA's: noise="lora_dropout" samples the adapters
    # alone, and equals (same seed, same engine) the same weights with every other dropout at 0
    model = decoder("gpt2", "cls", base_dropout=0.1, lora_dropout=0.2)
    off = decoder("gpt2", "cls", base_dropout=0.0, lora_dropout=0.2)
    off.load_state_dict(model.state_dict())
    x = _classifier_batch()
    before = snapshot(model)
    chosen = bayesdrop.mc_predict(model, x, num_samples=32, seed=4, noise="lora_dropout")
    base = bayesdrop.mc_predict(off, x, num_samples=32, seed=4)
    assert_restored(model, before)
    assert chosen.engine == base.engine
    torch.testing.assert_close(chosen.probs, base.probs, rtol=0, atol=1e-5)
    assert "noise='lora_dropout'" in chosen.engine_reason
    full = bayesdrop.mc_predict(model, x, num_samples=32, seed=4)
    assert not torch.allclose(full.probs, chosen.probs, atol=1e-4)
    check = bayesdrop.predict.check_noise(model, x, noise="lora_dropout", num_samples=64)
    assert check.ok, check.describe()
