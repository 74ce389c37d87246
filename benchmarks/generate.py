"""Generation with uncertainty (issue 23): ``bayesdrop.generate`` with S = 8 samples against S
separate ``model.generate`` calls, each under its own dropout sampling, at batch 1.

Both decode ``--new`` tokens after a prompt of 16 tokens, greedy, with the model's cache; the
baseline gives S trajectories (no averaging, no uncertainty), ``bayesdrop.generate`` one, chosen
from the MC-averaged distribution, with per-token entropy and mutual information. In one
process, one thread, interleaved rounds (the median of ``--rounds``); the target is a speed-up
of at least 3.

    python benchmarks/generate.py              # 5 rounds, 32 new tokens
    python benchmarks/generate.py --quick      # 2 rounds, 8 new tokens
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
import warnings

for _name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_name, types.ModuleType(_name))  # see tests/conftest.py

import torch  # noqa: E402
import transformers  # noqa: E402

import bayesdrop  # noqa: E402

S = 8


def gpt2() -> torch.nn.Module:
    """GPT-2 with its own dropout 0.1 (hidden 256, 4 layers, vocabulary 4096)."""
    config = transformers.GPT2Config(
        vocab_size=4096, n_embd=256, n_layer=4, n_head=4, n_positions=128, pad_token_id=0
    )
    return transformers.GPT2LMHeadModel(config).eval()


def llama_lora() -> torch.nn.Module:
    """Llama without dropout of its own, LoRA (rank 8, lora_dropout 0.1) on q/v projections."""
    import peft

    config = transformers.LlamaConfig(
        vocab_size=4096,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    lora = peft.LoraConfig(
        r=8, lora_dropout=0.1, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return peft.get_peft_model(transformers.LlamaForCausalLM(config), lora).eval()


def separate_calls(model, ids, new):
    for _ in range(S):
        with bayesdrop.sampling(model), torch.no_grad():
            model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new,
                min_new_tokens=new,
                do_sample=False,
                pad_token_id=0,
            )


def ours(model, ids, new):
    bayesdrop.generate(model, ids, max_new_tokens=new, num_samples=S, seed=0)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.new = 2, 8
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    warnings.simplefilter("ignore", FutureWarning)  # transformers' own deprecation notes
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, 1 thread")
    print(f"S = {S}, batch 1, prompt 16, {args.new} new tokens, median of {args.rounds} rounds")
    print(f"{'model':<12} {'separate (s)':>13} {'generate (s)':>13} {'speed-up':>9}")
    for name, build in (("gpt2", gpt2), ("llama+lora", llama_lora)):
        torch.manual_seed(0)
        model = build()
        ids = torch.randint(1, 4096, (1, 16))
        ours(model, ids, 2), separate_calls(model, ids, 2)  # warm-up
        base, new = [], []
        for _ in range(args.rounds):  # interleaved
            base.append(timed(separate_calls, model, ids, args.new))
            new.append(timed(ours, model, ids, args.new))
        b, n = statistics.median(base), statistics.median(new)
        print(f"{name:<12} {b:>13.3f} {n:>13.3f} {b / n:>8.2f}x")


if __name__ == "__main__":
    main()
