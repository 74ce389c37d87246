"""bayesdrop.generate and bayesdrop.score_tokens on GPT-2, Llama and Qwen2 from small configs,
with and without PEFT LoRA adapters (random weights, nothing downloaded).

The reference is a plain loop over samples: each sample its own cache, one forward call per
sample and step under :func:`bayesdrop.sampling`, teacher-forced along the tokens ``generate``
chose. With one sample per pass and the same seed the loop draws the same masks in the same
order, so it must agree to rounding; with all samples in one pass (rows of one batch) it must
agree within Monte-Carlo error (6 standard errors), which also shows the rows' masks differ.
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch
from lm_models import FAMILIES, decoder, tokens
from test_predict_zoo import assert_restored, jackknife, snapshot

import bayesdrop
from bayesdrop.functional import entropy

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = [
    *[pytest.param(f, None, id=f"{f}") for f in FAMILIES],
    *[pytest.param(f, 0.2, id=f"{f}-lora") for f in FAMILIES],
]


def _model(family, lora, base=0.1):
    if lora is not None:
        pytest.importorskip("peft")
        return decoder(family, base_dropout=0.0, lora_dropout=lora)
    return decoder(family, base_dropout=base)


def _cache_keyword(model):
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def loop_samples(model, batch, target, num_samples, seed):
    """Per-sample next-token probabilities along ``target``, ``(S, B, T, V)``: the plain loop."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    keyword, caches, out = _cache_keyword(model), [None] * num_samples, []
    with torch.random.fork_rng(devices=[]), bayesdrop.sampling(model), torch.no_grad():
        torch.manual_seed(seed)
        feed, pos = ids, (mask.cumsum(-1) - 1).clamp_min(0)
        for t in range(target.shape[1]):
            step = []
            for s in range(num_samples):
                kwargs = {} if caches[s] is None else {keyword: caches[s]}
                o = model(
                    input_ids=feed, attention_mask=mask, position_ids=pos, use_cache=True, **kwargs
                )
                caches[s] = o.get("cache", o.get("past_key_values"))
                step.append(o.logits[:, -1].softmax(-1))
            out.append(torch.stack(step))
            feed, mask = target[:, t : t + 1], torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            pos = mask.sum(-1, keepdim=True) - 1
    return torch.stack(out, 2)


def _mi(samples):
    return entropy(samples.mean(0)) - entropy(samples).mean(0)


def assert_agrees(result, samples, z=6.0):
    """``result``'s token probabilities and mutual information within ``z`` Monte-Carlo
    standard errors of the loop's (the result's error taken equal to the loop's)."""
    picked = samples.gather(-1, result.tokens[None, ..., None].expand(len(samples), -1, -1, 1))[
        ..., 0
    ]
    se = picked.std(0) / len(samples) ** 0.5
    gap = (result.log_probs.exp() - picked.mean(0)).abs()
    assert bool((gap <= z * 2**0.5 * se + 1e-5).all()), (gap / (se + 1e-9)).max()
    mi, mi_se = jackknife(_mi, samples)
    assert float(mi.mean()) > 6 * float(mi_se.mean()), "the noise must reach the output"
    gap = (result.mutual_information - mi).abs()
    assert bool((gap <= z * 2**0.5 * mi_se + 1e-4).all()), (gap / (mi_se + 1e-9)).max()


@pytest.mark.parametrize(("family", "lora"), CASES)
def test_one_sample_per_pass_is_the_plain_loop(family, lora):
    model = _model(family, lora)
    batch = tokens(n=2, t=6, pad_first=2)
    before = snapshot(model)
    out = bayesdrop.generate(model, **batch, max_new_tokens=5, num_samples=4, seed=3, chunk_size=1)
    assert_restored(model, before)
    samples = loop_samples(model, batch, out.tokens, 4, seed=3)
    mean = samples.mean(0)
    assert torch.equal(out.tokens, mean.argmax(-1))
    picked = mean.gather(-1, out.tokens[..., None])[..., 0]
    torch.testing.assert_close(out.log_probs, picked.log(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.predictive_entropy, entropy(mean), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.mutual_information, _mi(samples).clamp_min(0), atol=1e-5, rtol=0)
    assert out.noise_modules and bool((out.mutual_information > 0).all())
    if lora is not None:
        assert all(".lora_dropout." in name for name in out.noise_modules)


@pytest.mark.parametrize(("family", "lora"), CASES)
def test_samples_as_rows_of_one_pass_match_the_loop(family, lora):
    model = _model(family, lora)
    batch = tokens(n=2, t=6, pad_first=2)
    out = bayesdrop.generate(model, **batch, max_new_tokens=4, num_samples=64, seed=0)
    samples = loop_samples(model, batch, out.tokens, 64, seed=1)
    assert_agrees(out, samples)
    scored = bayesdrop.score_tokens(
        model,
        batch["input_ids"],
        out.tokens,
        attention_mask=batch["attention_mask"],
        target_mask=out.mask,
        num_samples=64,
        seed=2,
    )
    assert torch.equal(scored.tokens, out.tokens)
    assert_agrees(scored, samples)


@pytest.mark.parametrize(("family", "lora"), [*CASES[:3], CASES[3]])
def test_left_padding_gives_the_unpadded_tokens(family, lora):
    # dropout rate 1e-6: noise modules sample but (almost surely) drop nothing, so the rows are
    # deterministic and padding must change nothing
    model = _model(family, None, base=1e-6) if lora is None else _model(family, 1e-6)
    batch = tokens(n=2, t=7, pad_first=3)
    out = bayesdrop.generate(model, **batch, max_new_tokens=5, num_samples=2, seed=0)
    alone = bayesdrop.generate(model, batch["input_ids"][1:, 3:], max_new_tokens=5, num_samples=2)
    assert torch.equal(out.tokens[1:], alone.tokens)
    torch.testing.assert_close(out.log_probs[1:], alone.log_probs, atol=1e-4, rtol=1e-4)
    scored = bayesdrop.score_tokens(model, batch["input_ids"][1:, 3:], alone.tokens, num_samples=2)
    torch.testing.assert_close(scored.log_probs, alone.log_probs, atol=1e-4, rtol=1e-4)


def test_end_of_sequence_ends_a_row_and_decoding():
    model = _model("gpt2", None)
    batch = tokens(n=2, t=5)
    free = bayesdrop.generate(model, **batch, max_new_tokens=6, num_samples=4, seed=0)
    eos = int(free.tokens[0, 1])
    out = bayesdrop.generate(
        model, **batch, max_new_tokens=6, num_samples=4, seed=0, eos_token_id=eos
    )
    first = int((free.tokens[1] == eos).nonzero()[0]) if bool((free.tokens[1] == eos).any()) else 9
    assert torch.equal(out.tokens[0, :2], free.tokens[0, :2])
    assert out.mask[0].tolist()[:2] == [True, True] and not bool(out.mask[0, 2:].any())
    assert bool((out.tokens[0, 2:] == eos).all())  # the pad token defaults to the eos token
    assert bool((out.mutual_information[0, 2:] == 0).all())
    torch.testing.assert_close(out.total_log_prob[0], free.log_probs[0, :2].sum())
    torch.testing.assert_close(
        out.mean_mutual_information[0], free.mutual_information[0, :2].mean()
    )
    assert out.tokens.shape[1] == min(6, max(2, first + 1))


def test_sampling_from_the_average_is_seeded():
    model = _model("llama", None)
    batch = tokens(n=2, t=5)
    a = bayesdrop.generate(
        model, **batch, num_samples=4, decoding="sample", seed=5, max_new_tokens=8
    )
    b = bayesdrop.generate(
        model, **batch, num_samples=4, decoding="sample", seed=5, max_new_tokens=8
    )
    c = bayesdrop.generate(
        model, **batch, num_samples=4, decoding="sample", seed=6, max_new_tokens=8
    )
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    state = torch.get_rng_state()
    bayesdrop.generate(model, **batch, num_samples=2, seed=0, max_new_tokens=2)
    assert torch.equal(state, torch.get_rng_state())  # a seeded call leaves the global stream


def test_arguments_are_checked():
    model = _model("qwen2", None)
    ids = tokens(n=2, t=4)["input_ids"]
    right = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with pytest.raises(ValueError, match=r"attention_mask.*left padding"):
        bayesdrop.generate(model, ids, attention_mask=right)
    with pytest.raises(ValueError, match=r"decoding.*'greedy', 'sample'.*'beam'"):
        bayesdrop.generate(model, ids, decoding="beam")
    with pytest.raises(ValueError, match=r"num_samples.*positive integer.*0"):
        bayesdrop.generate(model, ids, num_samples=0)
    with pytest.raises(TypeError, match=r"input_ids.*integer tensor.*float32"):
        bayesdrop.generate(model, ids.float())
    with pytest.raises(ValueError, match=r"max_new_tokens.*positive"):
        bayesdrop.generate(model, ids, max_new_tokens=0)
    with pytest.raises(ValueError, match=r"target_ids.*2 rows.*\(1, 3\)"):
        bayesdrop.score_tokens(model, ids, ids[:1, :3])
    with pytest.raises(ValueError, match=r"target_mask.*right padding"):
        bayesdrop.score_tokens(
            model, ids, ids, target_mask=torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])
        )
    with pytest.raises(ValueError, match=r"non-zero rate"):
        bayesdrop.generate(decoder("qwen2", base_dropout=0.0), ids)


@pytest.mark.parametrize("pattern", ["lora_dropout", r"\.h\.1\."])
def test_sampling_part_of_the_noise_is_the_model_with_the_rest_off(pattern):
    # GPT-2 with its own dropout and LoRA's; the reference: a copy whose other noise has rate 0
    pytest.importorskip("peft")
    model = decoder("gpt2", base_dropout=0.1, lora_dropout=0.2)
    reference = decoder("gpt2", base_dropout=0.1, lora_dropout=0.2)
    for name, m in reference.named_modules():
        if isinstance(m, torch.nn.Dropout) and not re.search(pattern, name):
            m.p = 0.0
    batch = tokens(n=2, t=6, pad_first=2)
    before = snapshot(model)
    out = bayesdrop.generate(
        model, **batch, max_new_tokens=4, num_samples=64, seed=0, noise=pattern
    )
    assert_restored(model, before)
    assert out.noise_modules and all(re.search(pattern, n) for n in out.noise_modules)
    samples = loop_samples(reference, batch, out.tokens, 64, seed=1)
    assert_agrees(out, samples)
    scored = bayesdrop.score_tokens(
        model,
        batch["input_ids"],
        out.tokens,
        attention_mask=batch["attention_mask"],
        num_samples=64,
        seed=2,
        noise=pattern,
    )
    assert scored.noise_modules == out.noise_modules
    assert_agrees(scored, samples)
    with pytest.raises(ValueError, match=r"noise.*finds a noise module.*'nothing'"):
        bayesdrop.generate(model, batch["input_ids"], noise="nothing")
    assert_restored(model, before)
