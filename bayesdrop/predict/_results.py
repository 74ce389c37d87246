"""Frozen results of a Monte-Carlo dropout prediction."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bayesdrop import functional as BF
from bayesdrop._validation import check_positive, check_tensor, fail

__all__ = ["ClassificationPrediction", "RegressionPrediction"]


def _shape(value: Tensor) -> str:
    return f"a tensor of shape {tuple(value.shape)}"


def _concat(values: Sequence[Tensor | None], dim: int) -> Tensor | None:
    if any(v is None for v in values):
        return None
    return torch.cat(list(values), dim)  # type: ignore[arg-type]


def _merge_meta(parts: Sequence[object]) -> dict[str, object]:
    counts = {p.num_samples for p in parts}  # type: ignore[attr-defined]
    engines = {p.engine for p in parts}  # type: ignore[attr-defined]
    reasons = [p.engine_reason for p in parts if p.engine_reason]  # type: ignore[attr-defined]
    return {
        "num_samples": counts.pop() if len(counts) == 1 else max(counts),
        "engine": engines.pop() if len(engines) == 1 else "+".join(sorted(engines)),
        "engine_reason": reasons[0] if reasons else "",
    }


@dataclass(frozen=True, eq=False)
class ClassificationPrediction:
    r"""Monte-Carlo predictive distribution of a classifier and its uncertainty measures.

    With :math:`S` sampled probability vectors :math:`p_s = \mathrm{softmax}(f_s(x))`:

    .. math::

        \bar p = \frac1S \sum_s p_s, \quad
        \underbrace{\mathcal H[\bar p]}_{\text{predictive}} =
        \underbrace{\frac1S\sum_s \mathcal H[p_s]}_{\text{expected}} +
        \underbrace{I}_{\text{mutual information}} .

    Attributes
    ----------
    probs : Tensor (N, C)
        Mean probabilities (probabilities are averaged, never logits).
    predictive_entropy, expected_entropy, mutual_information, variation_ratio : Tensor (N,)
        Total, aleatoric and epistemic (BALD) uncertainty in nats; the variation ratio
        ``1 - (modal class count) / S``.
    num_samples : int
        The number of samples :math:`S` drawn.
    samples : Tensor (S, N, C) or None
        The sampled probabilities, kept only with ``return_samples=True``.
    probs_std_error, mutual_information_std_error : Tensor or None
        Monte-Carlo standard errors, set with ``num_samples="auto"``.
    engine : str or None
        The engine that drew the samples (``"loop"``, ``"batched"``, ``"cached"``,
        ``"hooked"``).
    engine_reason : str
        Why that engine was chosen, e.g. why tracing fell back to ``"batched"``.
    target : Tensor or None
        The targets of the data, when :class:`bayesdrop.MCPredictor` read them from the
        batches (``target_key=`` or ``(input, target)`` tuples).

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> s = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    >>> pred = bayesdrop.ClassificationPrediction.from_samples(s)
    >>> pred.probs, round(pred.mutual_information.item(), 4)
    (tensor([[0.5000, 0.5000]]), 0.6931)
    """

    probs: Tensor
    predictive_entropy: Tensor
    expected_entropy: Tensor
    mutual_information: Tensor
    variation_ratio: Tensor
    num_samples: int
    samples: Tensor | None = None
    probs_std_error: Tensor | None = None
    mutual_information_std_error: Tensor | None = None
    engine: str | None = None
    engine_reason: str = ""
    target: Tensor | None = None

    @property
    def prediction(self) -> Tensor:
        """The predicted class, ``probs.argmax(-1)``."""
        return self.probs.argmax(-1)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, as a plain ``dict`` (the tensors are not copied).

        For frameworks that rebuild the values a step returns, which a frozen dataclass does not
        allow: Lightning's ``Trainer.predict`` moves them with ``apply_to_collection``, so
        ``predict_step`` returns ``pred.to_dict()``.

        Examples
        --------
        >>> import torch
        >>> import bayesdrop
        >>> s = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
        >>> d = bayesdrop.ClassificationPrediction.from_samples(s).to_dict()
        >>> d["num_samples"], sorted(d)[:3]
        (2, ['engine', 'engine_reason', 'expected_entropy'])
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_samples(cls, samples: Tensor) -> ClassificationPrediction:
        """Build the prediction from sampled probabilities ``(S, N, C)`` (kept in the result)."""
        check_tensor("samples", samples)
        if samples.dim() < 3:
            fail("samples", "a tensor of shape (S, N, C)", _shape(samples))
        return cls(
            probs=samples.mean(0),
            predictive_entropy=BF.predictive_entropy(samples),
            expected_entropy=BF.expected_entropy(samples),
            mutual_information=BF.mutual_information(samples),
            variation_ratio=BF.variation_ratio(samples),
            num_samples=samples.shape[0],
            samples=samples,
        )

    @classmethod
    def concatenate(cls, parts: Sequence[ClassificationPrediction]) -> ClassificationPrediction:
        """Join predictions of consecutive batches along the data dimension."""
        fields = {}
        for f in dataclasses.fields(cls):
            if f.name not in ("num_samples", "engine", "engine_reason"):
                dim = 1 if f.name == "samples" else 0
                fields[f.name] = _concat([getattr(p, f.name) for p in parts], dim)
        return cls(**fields, **_merge_meta(parts))  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class RegressionPrediction:
    r"""Monte-Carlo predictive mean and variances of a regression model.

    With sampled predictions :math:`\hat y_s` (and, for a heteroscedastic model, sampled
    log-variances :math:`s_s`):

    .. math::

        \mathbb E[y] \approx \frac1S\sum_s \hat y_s, \quad
        \sigma^2_\text{epi} = \frac1S\sum_s \hat y_s^2 - \mathbb E[y]^2, \quad
        \sigma^2_\text{ale} = \tau^{-1} \text{ or } \exp\Big(\frac1S\sum_s s_s\Big),

    and the total variance is their sum.

    Attributes
    ----------
    mean, epistemic_variance, aleatoric_variance, total_variance : Tensor (N, ...)
        Shaped like one model output.
    num_samples : int
        The number of samples :math:`S`.
    samples : Tensor (S, N, ...) or None
        Sampled predictions (the mean head), kept with ``return_samples=True``.
    log_variance_samples : Tensor (S, N, ...) or None
        Sampled log-variances of a heteroscedastic model, kept with ``return_samples=True``.
    tau : float or None
        The model precision of ``task="regression"``.
    mean_std_error : Tensor or None
        Monte-Carlo standard error of ``mean``, set with ``num_samples="auto"``.
    target, target_log_likelihood : Tensor or None
        The ``target`` given to the prediction and its per-point log-likelihood, accumulated
        while sampling (so :meth:`log_likelihood` needs no kept samples).
    engine, engine_reason : str
        As in :class:`ClassificationPrediction`.

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> s = torch.tensor([[[1.0]], [[3.0]]])
    >>> pred = bayesdrop.RegressionPrediction.from_samples(s, tau=4.0)
    >>> pred.mean.item(), pred.epistemic_variance.item(), pred.total_variance.item()
    (2.0, 1.0, 1.25)
    """

    mean: Tensor
    epistemic_variance: Tensor
    aleatoric_variance: Tensor
    total_variance: Tensor
    num_samples: int
    samples: Tensor | None = None
    log_variance_samples: Tensor | None = None
    tau: float | None = None
    mean_std_error: Tensor | None = None
    target: Tensor | None = None
    target_log_likelihood: Tensor | None = None
    engine: str | None = None
    engine_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, as a plain ``dict`` (the tensors are not copied).

        See :meth:`ClassificationPrediction.to_dict` (Lightning's ``Trainer.predict``).

        Examples
        --------
        >>> import torch
        >>> import bayesdrop
        >>> s = torch.tensor([[[1.0]], [[3.0]]])
        >>> d = bayesdrop.RegressionPrediction.from_samples(s, tau=4.0).to_dict()
        >>> d["mean"], d["num_samples"], d["tau"]
        (tensor([[2.]]), 2, 4.0)
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_samples(
        cls,
        samples: Tensor,
        *,
        tau: float | None = None,
        log_variance_samples: Tensor | None = None,
    ) -> RegressionPrediction:
        """Build the prediction from sampled outputs ``(S, N, ...)``, ``tau`` or log-variances."""
        check_tensor("samples", samples)
        mean, m2 = BF.sample_moments(samples)
        epistemic = m2 / samples.shape[0]
        if log_variance_samples is not None:
            aleatoric = BF.heteroscedastic_aleatoric_variance(log_variance_samples)
        elif tau is not None:
            aleatoric = torch.full_like(mean, 1.0 / check_positive("tau", tau))
        else:
            fail("tau", "given (or log_variance_samples)", "neither", "Pass tau=...")
        return cls(
            mean=mean,
            epistemic_variance=epistemic,
            aleatoric_variance=aleatoric,
            total_variance=epistemic + aleatoric,
            num_samples=samples.shape[0],
            samples=samples,
            log_variance_samples=log_variance_samples,
            tau=tau,
        )

    def log_likelihood(self, target: Tensor) -> Tensor:
        r"""Per-point Monte-Carlo test log-likelihood of ``target``.

        See :doc:`/theory/predictive_uncertainty`.

        .. math::

            \log p(y) \approx \operatorname{logsumexp}_s \log \mathcal N(y;\ \hat y_s,
            \sigma_s^2) - \log S,

        with :math:`\sigma^2_s = \tau^{-1}` or :math:`e^{s_s}`. It needs the sampled outputs:
        either predict with ``return_samples=True``, or pass ``target=`` to the prediction so
        the log-likelihood is accumulated while sampling (memory independent of :math:`S`).

        Returns
        -------
        Tensor (N,)
            Log-likelihood of each point, summed over its output dimensions.
        """
        check_tensor("target", target)
        if target.shape != self.mean.shape:
            fail("target", f"shaped like the mean {tuple(self.mean.shape)}", _shape(target))
        target = target.to(self.mean.device, self.mean.dtype)
        if self.samples is not None and self.log_variance_samples is not None:
            return BF.heteroscedastic_mc_log_likelihood(
                self.samples, self.log_variance_samples, target
            )
        if self.samples is not None and self.tau is not None:
            return BF.gaussian_mc_log_likelihood(self.samples, target, self.tau)
        if self.target is not None and torch.equal(self.target.to(target), target):
            return self.target_log_likelihood  # type: ignore[return-value]
        fail(
            "target",
            "the target given when predicting, or samples to be kept",
            "a prediction without samples for this target",
            "Predict with return_samples=True, or pass target=... to mc_predict.",
        )
        raise AssertionError  # unreachable

    @classmethod
    def concatenate(cls, parts: Sequence[RegressionPrediction]) -> RegressionPrediction:
        """Join predictions of consecutive batches along the data dimension."""
        fields: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            if f.name in ("num_samples", "engine", "engine_reason", "tau"):
                continue
            dim = 1 if f.name in ("samples", "log_variance_samples") else 0
            fields[f.name] = _concat([getattr(p, f.name) for p in parts], dim)
        fields["tau"] = parts[0].tau
        return cls(**fields, **_merge_meta(parts))  # type: ignore[arg-type]
