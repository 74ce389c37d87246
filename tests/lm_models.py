"""Small decoder language models (GPT-2, Llama, Qwen2) from tiny configurations, with random
weights and optional PEFT LoRA adapters (nothing is downloaded).

Shared by ``tests/test_peft.py`` and ``tests/test_generation.py``. Hidden size 32, 2 layers,
vocabulary 100; ``initializer_range`` 0.3 so that the logits of a random network are large
enough for the noise to show in the probabilities.
"""

from __future__ import annotations

import warnings

import pytest
import torch

FAMILIES = ("gpt2", "llama", "qwen2")
VOCAB = 100
# what LoRA adapts in each family (GPT-2's fused attention projection is a Conv1D)
TARGETS = {"gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"]}


def _config(family: str, base_dropout: float):
    transformers = pytest.importorskip("transformers")
    small = dict(
        vocab_size=VOCAB,
        initializer_range=0.3,
        num_labels=3,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    if family == "gpt2":
        return transformers.GPT2Config(
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_positions=64,
            resid_pdrop=base_dropout,
            embd_pdrop=base_dropout,
            attn_pdrop=base_dropout,
            **small,
        )
    config = transformers.LlamaConfig if family == "llama" else transformers.Qwen2Config
    # Llama and Qwen2 have attention dropout only (0 by default, as in released checkpoints)
    return config(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        attention_dropout=base_dropout,
        **small,
    )


_CLASSES = {
    ("gpt2", "lm"): "GPT2LMHeadModel",
    ("gpt2", "cls"): "GPT2ForSequenceClassification",
    ("llama", "lm"): "LlamaForCausalLM",
    ("llama", "cls"): "LlamaForSequenceClassification",
    ("qwen2", "lm"): "Qwen2ForCausalLM",
    ("qwen2", "cls"): "Qwen2ForSequenceClassification",
}


def decoder(
    family: str,
    head: str = "lm",
    *,
    base_dropout: float = 0.1,
    lora_dropout: float | None = None,
    seed: int = 0,
):
    """A causal LM (``head="lm"``) or sequence classifier (``"cls"``) of ``family`` in eval
    mode; with ``lora_dropout`` a float, wrapped by ``peft.get_peft_model`` with rank-4 LoRA
    adapters (random, not zero, B matrices so that the adapters change the output)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    model = getattr(transformers, _CLASSES[family, head])(_config(family, base_dropout))
    if lora_dropout is None:
        return model.eval()
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=lora_dropout,
        target_modules=TARGETS[family],
        fan_in_fan_out=family == "gpt2",
        task_type="CAUSAL_LM" if head == "lm" else "SEQ_CLS",
        init_lora_weights=False,
    )
    with warnings.catch_warnings():
        # peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` (not ours)
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*checkpointing")
        return peft.get_peft_model(model, config).eval()


def tokens(n: int = 2, t: int = 8, pad_first: int = 0, seed: int = 0) -> dict:
    """``input_ids`` in [3, VOCAB) and an ``attention_mask``; the first ``pad_first`` positions
    of the last row are left padding (token 0, mask 0)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (n, t), generator=gen)
    mask = torch.ones(n, t, dtype=torch.long)
    if pad_first:
        ids[-1, :pad_first] = 0
        mask[-1, :pad_first] = 0
    return {"input_ids": ids, "attention_mask": mask}
