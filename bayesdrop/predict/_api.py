"""The one-line front door: :func:`mc_predict`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

import torch
from torch import Tensor, nn

from bayesdrop._validation import check_tensor
from bayesdrop.predict._engines import plan_source
from bayesdrop.predict._options import options_from
from bayesdrop.predict._results import ClassificationPrediction, RegressionPrediction
from bayesdrop.predict._runner import (
    SeedStream,
    check_input,
    check_model,
    eager_model,
    model_device,
    predict_batch,
    verify_noise,
)

__all__ = ["mc_predict"]


@overload
def mc_predict(
    model: nn.Module,
    x: Tensor | tuple | Mapping[str, object],
    *,
    num_samples: int | Literal["auto"] = ...,
    task: Literal["classification"] = ...,
    tau: float | None = ...,
    target: Tensor | None = ...,
    seed: int | None = ...,
    engine: Literal["auto", "loop", "batched", "cached", "hooked"] = ...,
    chunk_size: int | None = ...,
    max_memory: int | None = ...,
    return_samples: bool = ...,
    tolerance: float = ...,
    max_samples: int = ...,
    autocast: bool | torch.dtype = ...,
    output: str | int | Callable[[Any], Any] | None = ...,
    class_dim: int | None = ...,
    batch_dim: Literal[0, 1] = ...,
    verify: bool = ...,
    noise: str | None = ...,
) -> ClassificationPrediction: ...


@overload
def mc_predict(
    model: nn.Module,
    x: Tensor | tuple | Mapping[str, object],
    *,
    num_samples: int | Literal["auto"] = ...,
    task: Literal["regression", "heteroscedastic"],
    tau: float | None = ...,
    target: Tensor | None = ...,
    seed: int | None = ...,
    engine: Literal["auto", "loop", "batched", "cached", "hooked"] = ...,
    chunk_size: int | None = ...,
    max_memory: int | None = ...,
    return_samples: bool = ...,
    tolerance: float = ...,
    max_samples: int = ...,
    autocast: bool | torch.dtype = ...,
    output: str | int | Callable[[Any], Any] | None = ...,
    class_dim: int | None = ...,
    batch_dim: Literal[0, 1] = ...,
    verify: bool = ...,
    noise: str | None = ...,
) -> RegressionPrediction: ...


@overload
def mc_predict(
    model: nn.Module,
    x: Tensor | tuple | Mapping[str, object],
    *,
    num_samples: int | Literal["auto"] = ...,
    task: Literal["classification", "regression", "heteroscedastic"] = ...,
    tau: float | None = ...,
    target: Tensor | None = ...,
    seed: int | None = ...,
    engine: Literal["auto", "loop", "batched", "cached", "hooked"] = ...,
    chunk_size: int | None = ...,
    max_memory: int | None = ...,
    return_samples: bool = ...,
    tolerance: float = ...,
    max_samples: int = ...,
    autocast: bool | torch.dtype = ...,
    output: str | int | Callable[[Any], Any] | None = ...,
    class_dim: int | None = ...,
    batch_dim: Literal[0, 1] = ...,
    verify: bool = ...,
    noise: str | None = ...,
) -> ClassificationPrediction | RegressionPrediction: ...


def mc_predict(
    model: nn.Module,
    x: Tensor | tuple | Mapping[str, object],
    *,
    num_samples: int | Literal["auto"] = 50,
    task: Literal["classification", "regression", "heteroscedastic"] = "classification",
    tau: float | None = None,
    target: Tensor | None = None,
    seed: int | None = None,
    engine: Literal["auto", "loop", "batched", "cached", "hooked"] = "auto",
    chunk_size: int | None = None,
    max_memory: int | None = None,
    return_samples: bool = False,
    tolerance: float = 1e-2,
    max_samples: int = 1000,
    autocast: bool | torch.dtype = False,
    output: str | int | Callable[[Any], Any] | None = None,
    class_dim: int | None = None,
    batch_dim: Literal[0, 1] = 0,
    verify: bool = False,
    noise: str | None = None,
) -> ClassificationPrediction | RegressionPrediction:
    r"""Monte-Carlo dropout prediction: sample the dropout masks, reduce to uncertainty.

    The model runs in eval mode with only its noise modules sampling (see
    :func:`bayesdrop.sampling`; BatchNorm keeps its running statistics), without gradients;
    every mode and flag is restored afterwards, also when the model raises. For
    ``task="classification"`` the model returns logits :math:`f_s(x)` and

    .. math::

        \bar p = \frac1S\sum_{s=1}^S \mathrm{softmax}(f_s(x)),\qquad
        I = \mathcal H[\bar p] - \frac1S \sum_s \mathcal H[\mathrm{softmax}(f_s(x))] ;

    for regression it returns :math:`\hat y_s` (or ``(mean, log_variance)`` with
    ``task="heteroscedastic"``) and the result holds the predictive mean and variances.

    Parameters
    ----------
    model : nn.Module
        A model with at least one noise module whose rate is not 0 (``nn.Dropout`` family,
        bayesdrop layers, attention with dropout, torchvision's ``StochasticDepth``, timm's
        ``DropPath`` and fused attention, Hugging Face attention; see
        :func:`bayesdrop.nn.is_stochastic`). Functional dropout
        (``F.dropout(x, p, training=self.training)`` in a ``forward``) is sampled too, as in
        training mode. When every sample comes out the same, :func:`bayesdrop.predict.check_noise`
        compares with training-mode noise and the error says which modules were looked at.
    x : Tensor, tuple of tensors or mapping of tensors
        What the model takes, on the model's device: a tensor ``model(x)``, a tuple of
        positional arguments ``model(*x)`` or a mapping of keyword arguments ``model(**x)``
        (a tokenizer's ``input_ids`` and ``attention_mask``). Every tensor with more than
        ``batch_dim`` dimensions is batched and all share the batch size; other entries
        (``None``, flags, 0-d tensors) are passed unchanged.
    num_samples : int or "auto", default 50
        :math:`S`. ``"auto"`` samples in chunks until the Monte-Carlo standard error of every
        mean probability and of every mutual information (regression: of the mean, relative
        to the predictive standard deviation) is at most ``tolerance``, or ``max_samples`` is
        reached; the result then carries the standard errors.
    task : {"classification", "regression", "heteroscedastic"}
        What the model returns: logits, a prediction (noise precision ``tau``), or
        ``(mean, log_variance)``. Heteroscedastic aleatoric variance is
        :math:`\exp(\frac1S\sum_s s_s)` (:doc:`/theory/predictive_uncertainty`).
    tau : float, optional
        Model precision; required for ``task="regression"``.
    target : Tensor, optional
        Regression targets shaped like one output: the per-point log-likelihood is then
        accumulated while sampling (``result.log_likelihood(target)`` needs no samples).
    seed : int, optional
        Seeds the sampling without touching the global random state. The same seed gives the
        same result for the same engine, chunking and device.
    engine : {"auto", "loop", "batched", "cached", "hooked"}
        ``"loop"``: one pass per sample. ``"batched"``: the batch repeated ``k`` times per
        pass. ``"cached"``: the part of the graph no dropout feeds runs once, only the rest
        runs on repeated rows (torch.fx); if the model does not trace it falls back to
        ``"hooked"``, else ``"batched"``, with a warning. ``"hooked"``: for models torch.fx
        cannot trace (Hugging Face transformers, PEFT), the module calls before the first
        block of an ``nn.ModuleList`` / ``nn.Sequential`` chain that holds noise run once,
        found by forward hooks, and the model is re-entered on repeated rows with those calls
        replaying their outputs; refused (batched, with a warning) where the part before
        that block draws random numbers or its replay cannot be checked
        (:doc:`/user_guide/library_models`). ``"auto"``: cached when the model traces and
        some computation precedes the first dropout, else hooked when a chain is found, else
        batched, or the loop when one batch already fills a pass of 2048 rows (tokens, for a
        transformer). ``result.engine`` and ``result.engine_reason`` say what ran and why.
    chunk_size : int, optional
        Samples per pass (``k``); default ``max(1, 2048 // N)`` or from ``max_memory``. For
        the batched and hooked engines on a model that reads token ids ``(N, T)`` and has no
        recurrent layer (a transformer) ``N`` counts tokens, ``N * T``: such a model already
        works on every token at once, and a larger pass only costs memory.
    max_memory : int, optional
        Activation memory budget of one pass, in bytes: one probing sample measures the
        largest layer output, a sample is taken to need 4 times that, and ``k`` is chosen to
        fit (an estimate, not a hard limit; at least one sample per pass).
    return_samples : bool, default False
        Keep the sampled probabilities (or predictions). Otherwise only running sums are
        kept, so memory does not grow with :math:`S`.
    tolerance : float, default 1e-2
        Stopping rule of ``num_samples="auto"``: sampling stops once the Monte-Carlo standard
        error of every mean probability and every mutual information (regression: of the
        mean, relative to the predictive standard deviation) is at most ``tolerance``.
    max_samples : int, default 1000
        The most samples ``num_samples="auto"`` draws when ``tolerance`` is not reached.
    autocast : bool or torch.dtype, default False
        Run the model under :func:`torch.autocast` (``True``: the device's default dtype).
    output : str, int, callable or None
        Where the prediction is in what the model returns. None: a tensor as it is; for
        ``task="heteroscedastic"`` a pair ``(mean, log_variance)``; an object with a tensor
        ``logits`` (key or attribute, as Hugging Face's ``ModelOutput``) its ``logits``; a
        mapping (torchvision's segmentation ``{"out": ...}``) its first tensor; a tuple or
        list its first tensor. A string picks a key or attribute, an integer an index, a
        callable is applied to the output.
    class_dim : int, optional
        The class dimension of one model output, for per-pixel or per-token predictions:
        ``1`` for PyTorch's ``(N, C, H, W)``, ``-1`` for Hugging Face's ``(N, T, C)``. Needed
        (there is no guessing) when the output has more than two dimensions. Results keep the
        classes last: ``probs`` is ``(N, H, W, C)`` and the uncertainty maps ``(N, H, W)``.
    batch_dim : {0, 1}, default 0
        The batch dimension of the inputs and outputs: 1 for sequence-first models
        (``nn.LSTM``/``nn.Transformer`` without ``batch_first``). Results are batch-first.
    verify : bool, default False
        First run :func:`bayesdrop.predict.check_noise` (the engine against the model's
        training-mode noise, with a verdict from Monte-Carlo standard errors) and raise when
        it fails.
    noise : str, optional
        Sample only the noise modules whose qualified name this regular expression finds
        (``re.search``): ``r"encoder\.layer\.11\.|classifier"`` for the last block and the
        head of a 12-block BERT, ``"lora_dropout"`` for a PEFT model's adapters. Every other
        noise module is off for the call, so the result approximates the posterior with the
        selected noise alone (the others at their mean, as in eval mode): a different, usually
        narrower, predictive distribution, not an estimate of the full one. Its benefit is
        cost: noise that is off is deterministic, so the cached and hooked engines compute
        everything before the first selected noise module once. ``result.engine_reason``
        names what was sampled. Refused for models with functional dropout in a ``forward``
        (it cannot be told apart by module) and for a pattern that selects a dropout module
        inside an unselected ``nn.TransformerEncoderLayer`` (whose inference path, taken when
        it is off, skips that module). ``verify=True`` checks the selection against
        training-mode noise of the same modules.

    Returns
    -------
    ClassificationPrediction or RegressionPrediction

    Raises
    ------
    BayesdropValueError
        For a model without noise (or whose noise modules all have rate 0), outputs that do
        not vary over the samples, an input on another device or with inconsistent batch
        sizes, ``num_samples <= 0``, an unknown ``task`` or ``engine``, an ``output`` that is
        not in the model's output, a ``class_dim`` out of range, or outputs that do not fit
        the task.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    >>> pred = bayesdrop.mc_predict(model, torch.randn(8, 4), num_samples=20, seed=0)
    >>> pred.probs.shape, pred.mutual_information.shape, pred.engine
    (torch.Size([8, 3]), torch.Size([8]), 'cached')
    >>> bool((pred.mutual_information <= pred.predictive_entropy).all())
    True

    Keyword inputs, a structured output and per-token classes (``(N, T, C)``):

    >>> class Tagger(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.embed, self.drop = nn.Embedding(10, 8), nn.Dropout(0.3)
    ...         self.out = nn.Linear(8, 5)
    ...     def forward(self, input_ids, attention_mask=None):
    ...         return {"logits": self.out(self.drop(self.embed(input_ids)))}
    >>> batch = {"input_ids": torch.randint(0, 10, (2, 7)), "attention_mask": torch.ones(2, 7)}
    >>> pred = bayesdrop.mc_predict(Tagger(), batch, class_dim=-1, num_samples=8, seed=0)
    >>> pred.probs.shape, pred.mutual_information.shape
    (torch.Size([2, 7, 5]), torch.Size([2, 7]))
    """
    settings = options_from(locals()).settings()
    model, note = eager_model(model)
    plans = plan_source(model, settings.noise)
    if not plans.checked:  # once per model (and per change of its modules)
        check_model(model)
        plans.checked = True
    device = model_device(model)
    inputs = check_input(x, device, batch_dim)
    on = inputs.tensors()[0].device
    if target is not None:
        target = check_tensor("target", target).to(on)
    if verify:
        verify_noise(model, inputs, settings, 0 if seed is None else seed)
    with SeedStream(seed, device or on).active():
        pred = predict_batch(model, inputs, settings, plans, target)
    if note:
        pred = dataclasses.replace(pred, engine_reason=f"{pred.engine_reason}; {note}")
    return pred
