"""Running sums that turn chunks of sampled outputs into a prediction.

Each accumulator takes the model outputs of a chunk of samples, shaped ``(k, N, ...)``, and keeps
only sums whose size does not depend on the number of samples (unless samples are kept on
request). Means and variances are merged with Chan's update
(:func:`bayesdrop.functional.merge_moments`), which stays exact when the spread is small.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bayesdrop import functional as BF
from bayesdrop._validation import fail
from bayesdrop.predict._results import ClassificationPrediction, RegressionPrediction

__all__ = ["NUM_GROUPS", "ClassificationAccumulator", "RegressionAccumulator"]

# Groups of the delete-a-group jackknife for the standard error of the mutual information.
NUM_GROUPS = 16


def _float(t: Tensor) -> Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _class_axis(logits: Tensor) -> int:
    """Where the classes of classes-last ``logits`` ``(k, N, ..., C)`` lie in memory: ``-1`` when
    the last dimension is the innermost one, else the position the class dimension has in the
    model's own layout (``2`` for ``(k, N, C, H, W)`` moved classes-last by ``class_dim=1``)."""
    if logits.dim() < 4 or logits.stride(-1) == 1:
        return -1
    for d in range(2, logits.dim() - 1):
        if logits.movedim(-1, d).is_contiguous():
            return d
    return -1


def _dense_read_out(logits: Tensor, axis: int) -> tuple[Tensor, Tensor, Tensor]:
    r"""Probabilities, entropies and the one-hot modal class of dense ``logits`` in their own
    layout (the classes along ``axis``, the pixels or tokens the contiguous inner dimensions).

    On CPU, reductions over a last dimension of a few classes run row by row: torch's softmax,
    ``argmax`` and entropy over 4 classes of 2 million values took 57, 12 and 15 ms classes-last,
    and ``argmax`` over the class dimension of the model's layout 77 ms. Here every pass runs
    along memory order: the max-subtracted exponentials; the entropy from the logits,
    :math:`H = \log s + m - \sum_c p_c z_c` with :math:`m = \max_c z_c` and
    :math:`s = \sum_c e^{z_c - m}` (no logarithm of every probability); and the modal class as
    the first of the classes at the maximum (``argmax``'s choice among equal maxima), found by
    weighting the classes at the maximum by :math:`C - c` and keeping the largest weight."""
    num_classes = logits.shape[axis]
    m = logits.amax(axis, keepdim=True)
    exp = (logits - m).exp_()
    total = exp.sum(axis, keepdim=True)
    probs = exp.div_(total)
    ent = total.log_().add_(m).squeeze(axis) - (probs * logits).sum(axis)
    shape = [1] * probs.dim()
    shape[axis] = num_classes
    small = torch.int16 if num_classes < 2**15 else torch.int32  # C, ..., 1 must fit
    weight = torch.arange(num_classes, 0, -1, device=probs.device, dtype=small).view(shape)
    at_max = (probs == probs.amax(axis, keepdim=True)) * weight
    modal = at_max == at_max.amax(axis, keepdim=True)  # one-hot: the first class at the max
    return probs, ent.clamp_min_(0.0), modal


def _get(value: Tensor | None) -> Tensor:
    """A running sum that must exist by now (at least one chunk was added)."""
    if value is None:
        raise RuntimeError("bayesdrop: no samples were accumulated")
    return value


def _add(total: Tensor | None, chunk: Tensor) -> Tensor:
    return chunk if total is None else total + chunk


def _describe(output: object) -> str:
    if isinstance(output, Tensor):
        return f"a tensor of shape {tuple(output.shape[1:])} per pass"
    return f"a {type(output).__name__}"


def _check_finite(value: Tensor, what: str, cause: str) -> None:
    """One host synchronisation per batch, after sampling: a non-finite result is refused."""
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        rows = bad.reshape(bad.shape[0], -1).any(-1) if bad.dim() > 0 else bad.reshape(1)
        fail(
            "model",
            f"a model whose outputs give finite {what}",
            f"non-finite {what} for {int(rows.sum())} of {rows.numel()} rows ({cause})",
        )


class _Moments:
    """Running count, mean and M2 of a stream of chunks ``(k, ...)``."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def update(self, chunk: Tensor, axis: int = -1) -> None:
        """Add ``chunk`` ``(k, ...)``; with ``axis`` not -1, ``chunk`` is a dense output in its
        own layout, classes along ``axis``, and the moments are kept classes-last."""
        mean, m2 = BF.sample_moments(chunk)
        if axis != -1:
            mean, m2 = mean.movedim(axis - 1, -1), m2.movedim(axis - 1, -1)
        if self.mean is None or self.m2 is None:
            self.mean, self.m2 = mean, m2
        else:
            self.mean, self.m2 = BF.merge_moments(
                self.count, self.mean, self.m2, chunk.shape[0], mean, m2
            )
        self.count += chunk.shape[0]


class _Spread:
    """Whether the raw sampled outputs (logits, regression means) vary beyond rounding: the
    largest distance of any sample from the first one, against the outputs' magnitude. Rounding
    alone (a repeated batch through another matrix-multiply kernel, a mean of identical values)
    moves outputs by a few units in the last place; a spread of exactly zero in the
    probabilities is too strict a test (their moments never are), and a saturated softmax has
    probabilities that do not move while its logits do. Kept on the device: read once."""

    #: units of the output dtype's epsilon, times the outputs' magnitude, still called rounding
    ROUNDING = 64

    def __init__(self) -> None:
        self.ref: Tensor | None = None
        self.dev: Tensor | None = None
        self.scale: Tensor | None = None
        self.eps = 0.0

    def update(self, raw: Tensor) -> None:
        finite = torch.nan_to_num(raw.detach(), nan=0.0, posinf=0.0, neginf=0.0)
        if self.ref is None:
            self.ref, self.eps = finite[0], torch.finfo(raw.dtype).eps
        # largest magnitudes from one min-max pass each (this runs on every chunk of logits)
        low, high = torch.aminmax(finite - self.ref)
        dev = torch.maximum(-low, high)
        low, high = torch.aminmax(finite)
        scale = torch.maximum(-low, high)
        self.dev = dev if self.dev is None else torch.maximum(self.dev, dev)
        self.scale = scale if self.scale is None else torch.maximum(self.scale, scale)

    def tolerance(self, bounded: bool) -> float:
        """The largest spread of the outputs (or, ``bounded``, of probabilities) that rounding
        alone gives."""
        scale = 0.0 if bounded else float(_get(self.scale))
        return self.ROUNDING * self.eps * (1.0 + scale)

    def is_rounding(self) -> bool:
        """No output moved by more than rounding (nothing was sampled that reaches them)."""
        return float(_get(self.dev)) <= self.tolerance(bounded=False)


class ClassificationAccumulator:
    """Mean probabilities, summed entropies and votes of sampled logits ``(k, N, ..., C)``."""

    def __init__(self, *, keep_samples: bool, std_errors: bool) -> None:
        self.moments = _Moments()
        self.spread = _Spread()
        self.keep_samples, self.std_errors = keep_samples, std_errors
        self.entropy_sum: Tensor | None = None
        self.votes: Tensor | None = None
        self.group_probs: Tensor | None = None
        self.group_entropy: Tensor | None = None
        self.group_counts: Tensor | None = None
        self.samples: list[Tensor] = []

    def update(self, logits: object) -> None:
        if not isinstance(logits, Tensor) or logits.dim() < 3 or logits.shape[-1] < 2:
            fail(
                "model",
                "a classifier returning logits of shape (N, C) with C >= 2 for "
                "task='classification'",
                _describe(logits),
                "For regression use task='regression', for mean and log-variance heads "
                "task='heteroscedastic'.",
            )
        first = self.moments.count
        axis = _class_axis(logits)  # dense outputs are read in their own layout
        # (the spread is a maximum over every value: any layout gives it, the contiguous fastest)
        self.spread.update(logits if axis == -1 else logits.movedim(-1, axis))
        if axis == -1:
            probs = _float(logits).softmax(-1)
            ent = BF.entropy(probs)
            # a comparison instead of F.one_hot, which checks the class range on the host (a
            # device synchronisation per chunk on CUDA)
            classes = torch.arange(probs.shape[-1], device=probs.device)
            votes = (probs.argmax(-1, keepdim=True) == classes).sum(0, dtype=torch.int32)
            self.moments.update(probs)
        else:
            native, ent, modal = _dense_read_out(_float(logits.movedim(-1, axis)), axis)
            probs = native.movedim(axis, -1)  # classes last (a view)
            votes = modal.sum(0, dtype=torch.int32).movedim(axis - 1, -1)
            self.moments.update(native, axis=axis)
        self.entropy_sum, self.votes = _add(self.entropy_sum, ent.sum(0)), _add(self.votes, votes)
        if self.std_errors:
            self._update_groups(first, probs, ent)
        if self.keep_samples:
            self.samples.append(probs)

    def _update_groups(self, first: int, probs: Tensor, ent: Tensor) -> None:
        index = torch.arange(first, first + probs.shape[0], device=probs.device) % NUM_GROUPS
        if self.group_probs is None or self.group_entropy is None or self.group_counts is None:
            self.group_probs = probs.new_zeros((NUM_GROUPS, *probs.shape[1:]))
            self.group_entropy = ent.new_zeros((NUM_GROUPS, *ent.shape[1:]))
            self.group_counts = torch.zeros(NUM_GROUPS)
        self.group_probs.index_add_(0, index, probs)
        self.group_entropy.index_add_(0, index, ent)
        self.group_counts.add_(torch.bincount(index.cpu(), minlength=NUM_GROUPS))

    def std_error(self) -> tuple[Tensor, Tensor]:
        """Standard errors of the mean probabilities and of the mutual information."""
        count = self.moments.count
        probs_se = BF.mean_std_error(_get(self.moments.m2), count)
        if count < NUM_GROUPS or self.group_probs is None or self.group_entropy is None:
            return probs_se, torch.full_like(probs_se[..., 0], float("inf"))
        counts = _get(self.group_counts).to(self.group_probs.device)
        mi_se = BF.jackknife_mutual_information_std_error(
            self.group_probs, self.group_entropy, counts
        )
        return probs_se, mi_se

    def has_zero_spread(self) -> bool:
        """No sampled logit moved beyond rounding (nothing varied; see :class:`_Spread`)."""
        return self.spread.is_rounding()

    def rounding_spread(self) -> float:
        """The largest spread of the probabilities that rounding alone gives."""
        return self.spread.tolerance(bounded=True)

    def converged(self, tolerance: float) -> bool:
        probs_se, mi_se = self.std_error()
        return bool(probs_se.max() <= tolerance) and bool(mi_se.max() <= tolerance)

    def result(self, engine: str, reason: str) -> ClassificationPrediction:
        count, probs = self.moments.count, _get(self.moments.mean)
        _check_finite(probs, "probabilities", "NaN or +inf logits, or every logit -inf")
        predictive = BF.entropy(probs)
        expected = _get(self.entropy_sum) / count
        ratio = 1.0 - _get(self.votes).amax(-1).to(probs.dtype) / count
        probs_se, mi_se = self.std_error() if self.std_errors else (None, None)
        return ClassificationPrediction(
            probs=probs,
            predictive_entropy=predictive,
            expected_entropy=expected,
            mutual_information=(predictive - expected).clamp_min(0.0),
            variation_ratio=ratio,
            num_samples=count,
            samples=torch.cat(self.samples) if self.keep_samples else None,
            probs_std_error=probs_se,
            mutual_information_std_error=mi_se,
            engine=engine,
            engine_reason=reason,
        )


class RegressionAccumulator:
    """Moments of sampled predictions; ``tau`` or sampled log-variances for the noise."""

    def __init__(
        self,
        *,
        tau: float | None,
        target: Tensor | None,
        keep_samples: bool,
        std_errors: bool,
    ) -> None:
        self.tau, self.target = tau, target
        self.keep_samples, self.std_errors = keep_samples, std_errors
        self.moments = _Moments()
        self.spread = _Spread()
        self.log_variance_sum: Tensor | None = None
        self.log_likelihood: Tensor | None = None
        self.samples: list[Tensor] = []
        self.log_variance_samples: list[Tensor] = []

    def _split(self, output: object) -> tuple[Tensor, Tensor | None]:
        if self.tau is not None:
            if not isinstance(output, Tensor) or output.dim() < 2:
                fail("model", "a regression model returning one tensor (N, ...)", _describe(output))
            return _float(output), None
        if not isinstance(output, (tuple, list)) or len(output) != 2:
            fail(
                "model",
                "a model returning (mean, log_variance) for task='heteroscedastic'",
                _describe(output),
            )
        mean, log_var = output[0], output[1]
        if not isinstance(mean, Tensor) or not isinstance(log_var, Tensor):
            fail("model", "returning two tensors (mean, log_variance)", _describe(output))
        if mean.shape != log_var.shape:
            fail("model", "returning mean and log_variance of one shape", "different shapes")
        return _float(mean), _float(log_var)

    def update(self, output: object) -> None:
        mean, log_var = self._split(output)
        self.spread.update(mean)
        self.moments.update(mean)
        if log_var is not None:
            self.log_variance_sum = _add(self.log_variance_sum, log_var.sum(0))
        if self.target is not None:
            self._update_log_likelihood(mean, log_var)
        if self.keep_samples:
            self.samples.append(mean)
            if log_var is not None:
                self.log_variance_samples.append(log_var)

    def _update_log_likelihood(self, mean: Tensor, log_var: Tensor | None) -> None:
        target = _get(self.target).to(mean)
        if target.shape != mean.shape[1:]:
            fail(
                "target",
                f"shaped like one model output {tuple(mean.shape[1:])}",
                f"a tensor of shape {tuple(target.shape)}",
            )
        if log_var is None:
            tau = float(self.tau or 1.0)  # task="regression" always has tau
            nll = [BF.gaussian_nll(m, target, tau) for m in mean]
        else:
            nll = [BF.heteroscedastic_nll(m, s, target) for m, s in zip(mean, log_var, strict=True)]
        chunk = torch.logsumexp(-torch.stack(nll), 0)
        previous = self.log_likelihood
        self.log_likelihood = chunk if previous is None else torch.logaddexp(previous, chunk)

    def std_error(self) -> Tensor:
        return BF.mean_std_error(_get(self.moments.m2), self.moments.count)

    def _aleatoric(self) -> Tensor:
        mean, count = _get(self.moments.mean), self.moments.count
        if self.log_variance_sum is not None:
            return (self.log_variance_sum / count).exp()
        return torch.full_like(mean, 1.0 / float(self.tau or 1.0))

    def has_zero_spread(self) -> bool:
        """No sampled mean moved beyond rounding (nothing varied; see :class:`_Spread`)."""
        return self.spread.is_rounding()

    def rounding_spread(self) -> float:
        """The largest spread of the outputs that rounding alone gives."""
        return self.spread.tolerance(bounded=False)

    def converged(self, tolerance: float) -> bool:
        epistemic = _get(self.moments.m2) / self.moments.count
        total = epistemic + self._aleatoric()
        return bool((self.std_error() / total.sqrt()).max() <= tolerance)

    def result(self, engine: str, reason: str) -> RegressionPrediction:
        count = self.moments.count
        epistemic = _get(self.moments.m2) / count
        aleatoric = self._aleatoric()
        _check_finite(_get(self.moments.mean), "means", "NaN or inf in the sampled outputs")
        _check_finite(
            epistemic + aleatoric, "variances", "the outputs or their spread overflow the dtype"
        )
        ll = self.log_likelihood
        return RegressionPrediction(
            mean=_get(self.moments.mean),
            epistemic_variance=epistemic,
            aleatoric_variance=aleatoric,
            total_variance=epistemic + aleatoric,
            num_samples=count,
            samples=torch.cat(self.samples) if self.keep_samples else None,
            log_variance_samples=(
                torch.cat(self.log_variance_samples) if self.log_variance_samples else None
            ),
            tau=self.tau,
            mean_std_error=self.std_error() if self.std_errors else None,
            target=self.target,
            target_log_likelihood=None if ll is None else ll - math.log(count),
            engine=engine,
            engine_reason=reason,
        )
