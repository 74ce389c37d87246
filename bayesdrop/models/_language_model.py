r"""A word-level LSTM language model with variational dropout, and its evaluation.

The model of Gal & Ghahramani (2016, section 5.2): an embedding with word-type dropout, a
stack of LSTM layers with per-sequence masks on inputs, recurrent states and the output, and a
linear decoder (optionally tied to the embedding). ``dropout="standard"`` builds Zaremba et
al.'s baseline instead: :class:`torch.nn.Dropout` on the embedding and the output and
``torch.nn.LSTM(dropout=p)`` between layers, a fresh mask at every step and none on the
recurrent state.

MC evaluation averages the PROBABILITY of each target word over ``S`` passes, each pass with one
mask set for the whole text and the state carried from chunk to chunk:

.. math::

    \mathrm{ppl} = \exp\Big(-\frac1{T} \sum_t \log \frac1S \sum_s p(w_t \mid w_{<t}, \omega_s)\Big).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bayesdrop._validation import (
    check_choice,
    check_positive,
    check_positive_int,
    check_probability,
    check_tensor,
    fail,
)
from bayesdrop.datasets._ptb import bptt_batches
from bayesdrop.nn._embedding import EmbeddingDropout
from bayesdrop.nn._rnn import RNNMasks
from bayesdrop.nn._rnn_layers import VariationalLSTM
from bayesdrop.nn._sampling import sampling

__all__ = ["LanguageModel", "LanguageModelMasks", "perplexity", "train_epoch"]


@dataclass(frozen=True)
class LanguageModelMasks:
    """One pass's masks of a :class:`LanguageModel`: the word-type table and the LSTM's masks.

    Attributes
    ----------
    embedding : Tensor or None, shape ``(N, V)``
        The word-type drop table of the embedding (one entry per sequence and vocabulary word;
        None when the embedding's rate is 0).
    rnn : RNNMasks
        The LSTM's input, hidden-state and output masks.
    """

    embedding: Tensor | None
    rnn: RNNMasks


class LanguageModel(nn.Module):
    r"""Embedding, LSTM stack and decoder with variational (or standard) dropout.

    Parameters
    ----------
    vocab_size : int
        Number of word types ``V``.
    hidden_size : int, default 200
        Units per LSTM layer (the paper: 650 medium, 1500 large).
    num_layers : int, default 2
        LSTM layers.
    embedding_size : int, optional
        Defaults to ``hidden_size``.
    dropout : {"variational", "standard"}, default "variational"
        Per-sequence masks (:class:`bayesdrop.VariationalLSTM`,
        :class:`bayesdrop.EmbeddingDropout`) or per-step torch dropout without recurrent dropout.
    embedding_p, input_p, hidden_p, output_p : float
        Rates of word types, layer inputs, recurrent states and the top output (the paper's
        large model: 0.3 / 0.5 / 0.3 / 0.5). ``"standard"`` uses ``input_p`` on the embedding and
        between layers and ``output_p`` on the output, and requires the other two to be zero.
    masks : {"untied", "tied"}, default "untied"
        Mask variant of the variational LSTM.
    tie_weights : bool, default False
        Share the decoder's weight with the embedding (needs ``embedding_size == hidden_size``).
    init_range : float, default 0.05
        Every parameter starts uniform in ``[-init_range, init_range]`` (0.04 for the large model).

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.models import LanguageModel
    >>> lm = LanguageModel(50, hidden_size=8, input_p=0.2, hidden_p=0.2, embedding_p=0.1)
    >>> logits, (h, c) = lm(torch.randint(50, (6, 3)))
    >>> logits.shape, h.shape
    (torch.Size([6, 3, 50]), torch.Size([2, 3, 8]))
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 200,
        num_layers: int = 2,
        *,
        embedding_size: int | None = None,
        dropout: Literal["variational", "standard"] = "variational",
        embedding_p: float = 0.0,
        input_p: float = 0.0,
        hidden_p: float = 0.0,
        output_p: float = 0.0,
        masks: Literal["untied", "tied"] = "untied",
        tie_weights: bool = False,
        init_range: float = 0.05,
    ) -> None:
        super().__init__()
        V = check_positive_int("vocab_size", vocab_size)
        H = check_positive_int("hidden_size", hidden_size)
        E = H if embedding_size is None else check_positive_int("embedding_size", embedding_size)
        self.dropout = check_choice("dropout", dropout, ("variational", "standard"))
        rates = {
            "embedding_p": embedding_p,
            "input_p": input_p,
            "hidden_p": hidden_p,
            "output_p": output_p,
        }
        rates = {k: check_probability(k, v) for k, v in rates.items()}
        self.embedding: nn.Module
        self.rnn: nn.Module
        if tie_weights and E != H:
            fail("embedding_size", f"equal to hidden_size={H} with tie_weights=True", E)
        if self.dropout == "variational":
            self.embedding = EmbeddingDropout(nn.Embedding(V, E), rates["embedding_p"])
            self.rnn = VariationalLSTM(
                E,
                H,
                num_layers,
                input_p=rates["input_p"],
                hidden_p=rates["hidden_p"],
                output_p=rates["output_p"],
                masks=masks,
            )
        else:
            for name in ("embedding_p", "hidden_p"):
                if rates[name] > 0.0:
                    fail(
                        name,
                        "0 with dropout='standard'",
                        rates[name],
                        "torch.nn.LSTM has no recurrent or word-type dropout; use 'variational'.",
                    )
            self.embedding = nn.Sequential(nn.Embedding(V, E), nn.Dropout(rates["input_p"]))
            self.rnn = nn.LSTM(
                E, H, num_layers, dropout=rates["input_p"] if num_layers > 1 else 0.0
            )
            self.output_dropout = nn.Dropout(rates["output_p"])
        self.decoder = nn.Linear(H, V)
        init_range = check_positive("init_range", init_range)
        for param in self.parameters():
            nn.init.uniform_(param, -init_range, init_range)
        if tie_weights:
            self.decoder.weight = self._embedding_weight()

    def _embedding_weight(self) -> nn.Parameter:
        emb = next(m for m in self.embedding.modules() if isinstance(m, nn.Embedding))
        return cast(nn.Parameter, emb.weight)

    def sample_masks(self, batch_size: int) -> LanguageModelMasks | None:
        """One pass's masks (``None`` for ``dropout="standard"``, whose masks are per step)."""
        if self.dropout != "variational":
            return None
        embedding, rnn = cast(EmbeddingDropout, self.embedding), cast(VariationalLSTM, self.rnn)
        return LanguageModelMasks(embedding.sample_masks(batch_size), rnn.sample_masks(batch_size))

    def forward(
        self, tokens: Tensor, state=None, *, masks: LanguageModelMasks | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Logits ``(T, N, V)`` of the next word and the final ``(h, c)`` for ``tokens`` (T, N)."""
        if self.dropout == "variational":
            emb_mask = None if masks is None else masks.embedding
            x = self.embedding(tokens, masks=emb_mask)
            out, state = self.rnn(x, state, masks=None if masks is None else masks.rnn)
        else:
            if masks is not None:
                fail("masks", "None with dropout='standard'", type(masks).__name__)
            out, state = self.rnn(self.embedding(tokens), state)
            out = self.output_dropout(out)
        return self.decoder(out), state


def _check_tokens(data: Tensor, model: nn.Module) -> None:
    """Integer word indices within the vocabulary of ``model``'s first embedding (one check of
    the whole text, before any pass)."""
    check_tensor("data", data)
    if data.dtype.is_floating_point or data.dtype.is_complex or data.dtype == torch.bool:
        fail(
            "data",
            "integer token indices",
            f"dtype {data.dtype}",
            "Use data.long().",
            type_error=True,
        )
    vocab = next((m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)), None)
    if vocab is None or data.numel() == 0:
        return
    low, high = int(data.min()), int(data.max())
    if low < 0 or high >= vocab:
        fail(
            "data",
            f"token indices in [0, {vocab}) (the model's vocabulary)",
            f"indices from {low} to {high}",
        )


def _detach(state):
    return None if state is None else tuple(s.detach() for s in state)


def train_epoch(
    model: nn.Module,
    data: Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    bptt: int = 35,
    clip: float = 5.0,
    max_batches: int | None = None,
) -> float:
    """One epoch of truncated back-propagation over ``data`` (T, N); returns the mean NLL.

    Masks are drawn afresh for every chunk (training mode); the state is carried and detached.
    """
    _check_tokens(data, model)
    clip = check_positive("clip", clip)
    model.train()
    state, total, count = None, 0.0, 0
    for b, (x, y) in enumerate(bptt_batches(data, bptt)):
        if max_batches is not None and b >= max_batches:
            break
        logits, state = model(x, _detach(state))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total, count = total + loss.item() * y.numel(), count + y.numel()
    return total / max(count, 1)


def _target_log_probs(model: nn.Module, data: Tensor, bptt: int, masks) -> Tensor:
    """Log-probability of every target word in one pass, state carried through: (tokens,)."""
    state, out = None, []
    for x, y in bptt_batches(data, bptt):
        kwargs = {} if masks is None else {"masks": masks}
        logits, state = model(x, state, **kwargs)
        out.append(logits.log_softmax(-1).gather(-1, y.unsqueeze(-1)).reshape(-1))
    return torch.cat(out)


@torch.no_grad()
def perplexity(
    model: nn.Module,
    data: Tensor,
    *,
    bptt: int = 35,
    num_samples: int | None = None,
    embedding_dropout: bool = False,
) -> float:
    r"""Perplexity of ``model`` on ``data`` (T, N), deterministic or MC-averaged.

    With ``num_samples=None`` every dropout is off (the weight-averaging approximation).
    With ``num_samples=S`` each of ``S`` passes draws one mask set (``model.sample_masks``)
    for the whole text and carries the state through it, and the probabilities of the target
    words are averaged over the passes (never the logits). Word-type dropout is off in the
    MC passes unless ``embedding_dropout=True``, as in the reference code. The model's
    training flags are restored afterwards.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.models import LanguageModel, perplexity
    >>> lm = LanguageModel(20, hidden_size=4, num_layers=1, input_p=0.3, hidden_p=0.3)
    >>> data = torch.randint(20, (30, 2))
    >>> 10 < perplexity(lm, data) < 30  # an untrained model is near uniform (V = 20)
    True
    >>> 10 < perplexity(lm, data, num_samples=3) < 30
    True
    """
    _check_tokens(data, model)
    if data.dim() != 2 or data.shape[0] < 2:
        fail("data", "a batchified token tensor (T, N) with T >= 2", f"shape {tuple(data.shape)}")
    bptt = check_positive_int("bptt", bptt)
    was_training = model.training
    model.eval()
    try:
        if num_samples is None:
            with sampling(model, enabled=False):
                log_p = _target_log_probs(model, data, bptt, None)
        else:
            S = check_positive_int("num_samples", num_samples)
            log_p = torch.stack([_mc_pass(model, data, bptt, embedding_dropout) for _ in range(S)])
            log_p = torch.logsumexp(log_p, dim=0) - math.log(S)
    finally:
        model.train(was_training)
    return math.exp(-log_p.double().mean().item())


def _mc_pass(model: nn.Module, data: Tensor, bptt: int, embedding_dropout: bool) -> Tensor:
    with sampling(model):
        if not embedding_dropout:
            for module in model.modules():
                if isinstance(module, EmbeddingDropout):
                    module.mc = False
        draw = getattr(model, "sample_masks", None)
        masks = draw(data.shape[1]) if callable(draw) else None
        if masks is not None and not embedding_dropout:
            masks = LanguageModelMasks(None, masks.rnn)
        return _target_log_probs(model, data, bptt, masks)
