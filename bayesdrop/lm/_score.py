r"""Scoring a given continuation under the Monte-Carlo dropout ensemble (teacher forcing)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bayesdrop._random import base_seed
from bayesdrop._validation import check_positive_int, fail
from bayesdrop.lm._decode import (
    CausalLM,
    check_ids,
    check_mask,
    chunk_sizes,
    positions,
    prepare_model,
    repeat_rows,
    sample_sums,
)
from bayesdrop.lm._results import TokenUncertainty, assemble, token_quantities
from bayesdrop.predict._runner import SeedStream, prediction_mode

__all__ = ["score_tokens"]


def score_tokens(
    model: nn.Module,
    input_ids: Tensor,
    target_ids: Tensor,
    *,
    attention_mask: Tensor | None = None,
    target_mask: Tensor | None = None,
    num_samples: int = 8,
    seed: int | None = None,
    chunk_size: int | None = None,
    noise: str | None = None,
) -> TokenUncertainty:
    r"""Per-token uncertainty of a given continuation ``target_ids`` after ``input_ids``.

    Each dropout sample :math:`s` is one forward pass over prompt and continuation; at every
    target position :math:`t` its next-token distribution :math:`p_s` is read (teacher
    forcing), and, with :math:`\bar p = \frac1S\sum_s p_s`,

    .. math::

        \log \bar p(w_t),\qquad \mathcal H[\bar p],\qquad
        I_t = \mathcal H[\bar p] - \frac1S \sum_s \mathcal H[p_s]

    are returned as by :func:`bayesdrop.generate`: scoring the tokens ``generate`` returned
    gives the same quantities within Monte-Carlo error (both are one dropout network per
    sample over the whole sequence).

    Parameters
    ----------
    model : nn.Module
        A causal LM with the Hugging Face calling convention (see :func:`bayesdrop.generate`).
    input_ids : Tensor, shape ``(B, P)``
        The prompts, left padded.
    target_ids : Tensor, shape ``(B, T)``
        The continuations, right padded.
    attention_mask : Tensor, optional, shape ``(B, P)``
        1 for prompt tokens, 0 for left padding (default: none).
    target_mask : Tensor, optional, shape ``(B, T)``
        1 for continuation tokens, 0 for right padding (default: none); a ``generate``
        result's ``mask``.
    num_samples : int, default 8
        :math:`S`.
    seed : int, optional
        Seeds the dropout masks without touching the global random state.
    chunk_size : int, optional
        Samples per pass (default: as many as fit 2048 rows).
    noise : str, optional
        Sample only the noise modules whose qualified name this regular expression finds
        (``re.search``), for example ``"lora_dropout"`` (only the adapters) or ``r"\.h\.[23]\."``
        (the last two blocks of a 4-block GPT-2); every other noise module is off for the call.
        The result's ``noise_modules`` names what was sampled. A Hugging Face attention module
        and its dropout are both noise modules: a pattern for a block finds both.

    Returns
    -------
    TokenUncertainty
        ``tokens`` is ``target_ids``; ``mask`` is ``target_mask``.

    Examples
    --------
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
    >>> prompt, continuation = torch.tensor([[1, 2, 3]]), torch.tensor([[4, 5]])
    >>> out = bayesdrop.score_tokens(model, prompt, continuation, num_samples=16, seed=0)
    >>> out.log_probs.shape, bool((out.log_probs < 0).all())
    (torch.Size([1, 2]), True)
    >>> bool(torch.allclose(out.total_log_prob, out.log_probs.sum(-1)))
    True
    """
    model, device, num_samples, noisy, one_per_pass = prepare_model(model, num_samples)
    ids = check_ids("input_ids", input_ids, device)
    target = check_ids("target_ids", target_ids, device)
    if target.shape[0] != ids.shape[0]:
        fail("target_ids", f"{ids.shape[0]} rows (one per prompt)", tuple(target.shape))
    mask = check_mask("attention_mask", attention_mask, ids, "left")
    keep = check_mask("target_mask", target_mask, target, "right")
    if chunk_size is not None:
        chunk_size = check_positive_int("chunk_size", chunk_size)
    sizes = chunk_sizes(num_samples, chunk_size, ids.shape[0], one_per_pass)
    seq, full_mask = torch.cat([ids, target], 1), torch.cat([mask, keep], 1)
    pos, first = positions(full_mask), ids.shape[1] - 1
    call = CausalLM(model)
    sum_p: Tensor | float = 0.0
    sum_h: Tensor | float = 0.0
    stream = SeedStream(base_seed(seed), device)
    with prediction_mode(model, noise) as sampled, torch.no_grad():
        for c in sizes:
            rows = [repeat_rows(t, c) for t in (seq, full_mask, pos)]
            with stream.active():
                logits = call(rows[0], rows[1], rows[2], None)[0]
            logits = logits[:, first : first + target.shape[1]]
            p, h = sample_sums(logits, c)
            sum_p, sum_h = sum_p + p, sum_h + h
    assert isinstance(sum_p, Tensor) and isinstance(sum_h, Tensor)
    parts = token_quantities(sum_p, sum_h, num_samples, target)
    return assemble(
        target, keep.bool(), list(parts), num_samples, noisy if sampled is None else sampled
    )
