r"""Decoding with the Monte-Carlo dropout ensemble of a causal language model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from bayesdrop._random import base_seed, generator
from bayesdrop._validation import check_choice, check_positive_int
from bayesdrop.lm._decode import (
    CausalLM,
    check_ids,
    check_mask,
    check_token_ids,
    chunk_sizes,
    positions,
    prepare_model,
    repeat_rows,
    sample_sums,
)
from bayesdrop.lm._results import TokenUncertainty, assemble, token_quantities
from bayesdrop.predict._runner import SeedStream, prediction_mode

__all__ = ["generate"]


def generate(
    model: nn.Module,
    input_ids: Tensor,
    *,
    attention_mask: Tensor | None = None,
    max_new_tokens: int = 20,
    num_samples: int = 8,
    decoding: Literal["greedy", "sample"] = "greedy",
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
    noise: str | None = None,
) -> TokenUncertainty:
    r"""Decode with the MC-averaged next-token distribution of ``num_samples`` dropout samples.

    At each step every sample :math:`s` gives a next-token distribution
    :math:`p_s = \mathrm{softmax}(f_s(w_{<t}))`; the token is chosen from the ensemble's

    .. math::

        \bar p = \frac1S \sum_{s=1}^S p_s,\qquad
        I_t = \mathcal H[\bar p] - \frac1S \sum_s \mathcal H[p_s]

    (greedy: :math:`\arg\max \bar p`; ``"sample"``: a draw from :math:`\bar p`), and the
    result holds, per token, :math:`\log \bar p(w_t)`, the predictive entropy
    :math:`\mathcal H[\bar p]`, the expected entropy and the mutual information :math:`I_t`
    (:class:`~bayesdrop.lm.TokenUncertainty`).

    The :math:`S` samples run as :math:`S \times B` rows of one batch (``chunk_size`` samples
    per pass), each row with its own dropout masks and its own rows of the model's cache.
    **Masks**: each pass draws fresh masks for the positions it computes; the cache keeps the
    activations of earlier positions, so each sample is one dropout network over the whole
    sequence (every position's masks drawn once, when the position is first computed). That is
    one full forward pass per sample, as standard MC dropout, and what
    :func:`bayesdrop.score_tokens` computes on the finished sequence. A model that returns no
    cache is re-run on the whole sequence at each step, with fresh masks for every position.
    Noise drawn once per call or coupled across the batch (LayerDrop, ...) gets one sample per
    pass.

    Parameters
    ----------
    model : nn.Module
        A causal LM with the Hugging Face calling convention (GPT-2, Llama, Qwen2, their PEFT
        wrappers): keyword ``input_ids``, ``attention_mask``, ``position_ids``, ``use_cache`` and
        its cache, returning ``logits`` ``(B, T, V)`` and the cache. Its noise modules sample
        (:func:`bayesdrop.sampling`), everything else stays in eval mode; every mode is
        restored afterwards.
    input_ids : Tensor, shape ``(B, T)``
        The prompts, left padded.
    attention_mask : Tensor, optional, shape ``(B, T)``
        1 for tokens, 0 for left padding (default: no padding). Position ids skip the padding.
    max_new_tokens : int, default 20
    num_samples : int, default 8
        :math:`S`.
    decoding : {"greedy", "sample"}, default "greedy"
    eos_token_id : int or sequence of int, optional
        A row ends after one of these tokens; decoding stops when every row has ended.
    pad_token_id : int, optional
        The token after a row's end (default: the first ``eos_token_id``, else 0).
    seed : int, optional
        Seeds the dropout masks and the ``"sample"`` draws without touching the global random
        state; the same seed, chunking and device give the same result.
    chunk_size : int, optional
        Samples per pass (default: as many as fit 2048 rows). Bounds the activation memory of
        a pass; the caches of all :math:`S \times B` rows are kept for the whole decoding.
    noise : str, optional
        Sample only the noise modules whose qualified name this regular expression finds
        (``re.search``), for example ``"lora_dropout"`` (only the adapters) or ``r"\.h\.[23]\."``
        (the last two blocks of a 4-block GPT-2); every other noise module is off for the call.
        The result's ``noise_modules`` names what was sampled. A Hugging Face attention module
        and its dropout are both noise modules: a pattern for a block finds both.

    Returns
    -------
    TokenUncertainty
        ``tokens`` ``(B, max_new_tokens)`` or fewer when every row ended, ``mask`` (False after
        a row's end), the per-token quantities and ``mean_mutual_information`` /
        ``total_log_prob`` per row.

    References
    ----------
    Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016.

    Examples
    --------
    A causal LM in the Hugging Face convention (here without a cache); a GPT-2 from
    ``transformers`` or a PEFT model is called the same way.

    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> class TinyLM(nn.Module):
    ...     def __init__(self, vocab=12):
    ...         super().__init__()
    ...         self.embed, self.drop = nn.Embedding(vocab, 16), nn.Dropout(0.3)
    ...         self.head = nn.Linear(16, vocab)
    ...     def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
    ...         return {"logits": self.head(self.drop(self.embed(input_ids)))}
    >>> _ = torch.manual_seed(0)
    >>> model = TinyLM().eval()
    >>> out = bayesdrop.generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=4, seed=0)
    >>> out.tokens.shape, out.mutual_information.shape, out.num_samples
    (torch.Size([1, 4]), torch.Size([1, 4]), 8)
    >>> bool((out.mutual_information >= 0).all()), model.training
    (True, False)
    """
    model, device, num_samples, noisy, one_per_pass = prepare_model(model, num_samples)
    ids = check_ids("input_ids", input_ids, device)
    mask = check_mask("attention_mask", attention_mask, ids, "left")
    max_new_tokens = check_positive_int("max_new_tokens", max_new_tokens)
    decoding = check_choice("decoding", decoding, ("greedy", "sample"))  # type: ignore[assignment]
    eos = check_token_ids("eos_token_id", eos_token_id)
    pad = (eos[0] if eos else 0) if pad_token_id is None else pad_token_id
    pad = check_token_ids("pad_token_id", pad)[0]
    if chunk_size is not None:
        chunk_size = check_positive_int("chunk_size", chunk_size)
    sizes = chunk_sizes(num_samples, chunk_size, ids.shape[0], one_per_pass)
    seed = base_seed(seed)
    draws = generator(seed, 1, device=device)
    stream = SeedStream(seed, device)
    with prediction_mode(model, noise) as sampled, torch.no_grad():
        call = CausalLM(model)
        with stream.active():
            steps = _decode(call, ids, mask, sizes, max_new_tokens, decoding, eos, pad, draws)
    tokens, alive, parts = (torch.stack(list(p), 1) for p in zip(*steps, strict=True))
    quantities = list(parts.unbind(-1))
    return assemble(tokens, alive, quantities, num_samples, noisy if sampled is None else sampled)


def _decode(
    call: CausalLM,
    ids: Tensor,
    mask: Tensor,
    sizes: list[int],
    max_new_tokens: int,
    decoding: str,
    eos: tuple[int, ...],
    pad: int,
    draws: torch.Generator,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(token, alive, quantities)`` per step, each ``(B,)`` (``(B, 4)`` stacked)."""
    caches: list[object] = [None] * len(sizes)
    seq, feed_pos = ids, positions(mask)
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    num_samples, out = sum(sizes), []
    for step in range(max_new_tokens):
        sum_p: Tensor | float = 0.0
        sum_h: Tensor | float = 0.0
        cached = step > 0 and all(c is not None for c in caches)
        feed = seq[:, -1:] if cached else seq
        pos = feed_pos[:, -1:] if cached else feed_pos
        for i, c in enumerate(sizes):
            rows = [repeat_rows(t, c) for t in (feed, mask, pos)]
            logits, caches[i] = call(rows[0], rows[1], rows[2], caches[i] if cached else None)
            p, h = sample_sums(logits[:, -1], c)
            sum_p, sum_h = sum_p + p, sum_h + h
        assert isinstance(sum_p, Tensor) and isinstance(sum_h, Tensor)
        if decoding == "greedy":
            token = sum_p.argmax(-1)
        else:
            token = torch.multinomial(sum_p / num_samples, 1, generator=draws).squeeze(-1)
        alive = ~finished
        token = torch.where(alive, token, torch.full_like(token, pad))
        parts = token_quantities(sum_p, sum_h, num_samples, token)
        out.append((token, alive, torch.stack(parts, -1)))
        if eos:
            finished = finished | (alive & torch.isin(token, torch.tensor(eos, device=ids.device)))
        seq = torch.cat([seq, token[:, None]], 1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        feed_pos = positions(mask)
        if bool(finished.all()):
            break
    return out
