"""A calibration report for a classifier: metrics, uncertainty quality and diagrams in one object.

``CalibrationReport.from_predictions`` takes probabilities ``(N, C)``, dense probabilities
``(N, ..., C)`` (per pixel, per token: the class dimension last), MC samples ``(S, N, ..., C)`` or a
prediction result (any object with a ``probs`` attribute, optionally ``samples`` and
``mutual_information``), the targets ``(N, ...)`` and optionally uncertainty scores of OOD inputs.
Dense predictions are flattened to points; ``ignore_index`` drops the points of one label. An
array with more than two dimensions is either MC samples or dense probabilities, so its
``layout`` must be declared. The report renders as text, Markdown, JSON or a self-contained HTML
page with embedded PNG figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from torch import Tensor

from bayesdrop._validation import check_choice, fail
from bayesdrop.calibration import _conformal_quality as cq
from bayesdrop.calibration._binning import BinStatistics, bin_statistics
from bayesdrop.calibration._inputs import (
    Layout,
    as_float_tensor,
    as_points,
    top_label,
)
from bayesdrop.calibration._metrics import ClassificationMetrics, classification_metrics
from bayesdrop.calibration._render import ReportRendering
from bayesdrop.calibration._report_views import (
    classification_dict,
    classification_figures,
    classification_rows,
)
from bayesdrop.calibration._uncertainty_quality import (
    UNCERTAINTIES,
    DetectionScores,
    RejectionCurve,
    _rejection_curve,
    detection_scores,
    ood_detection,
    uncertainty_scores,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CalibrationReport", "Uncertainty"]

Uncertainty = Literal["predictive_entropy", "mutual_information", "max_probability"]


@dataclass(frozen=True)
class CalibrationReport(ReportRendering):
    r"""Calibration and uncertainty quality of a classifier's predictions.

    Build it with :meth:`from_predictions` from a :func:`bayesdrop.mc_predict` result (or
    probabilities, or MC samples) and the labels; in a ``torch.distributed`` job with
    :meth:`from_sharded_predictions`. Read it with :meth:`summary` (text), :meth:`to_html` (a
    self-contained page with the figures and a glossary of the metrics), :meth:`to_markdown`,
    :meth:`to_json` or :meth:`to_dict`.
    The fields below hold the numbers; the figures are drawn when the HTML is written.

    .. code-block:: python

        pred = bayesdrop.mc_predict(model, x_test, num_samples=50)
        ood = bayesdrop.mc_predict(model, x_foreign, num_samples=50).predictive_entropy
        report = bayesdrop.CalibrationReport.from_predictions(pred, y_test, ood_scores=ood)
        print(report.summary())
        report.to_html("report.html")

    Attributes
    ----------
    metrics : ClassificationMetrics
        Accuracy, ECE, MCE, Brier score and NLL.
    num_classes : int
        Number of classes ``C``.
    uncertainty : str
        The score that ranks points by uncertainty ("predictive_entropy",
        "mutual_information" or "max_probability").
    misclassification : DetectionScores or None
        How well that score finds the misclassified points (None unless some points are right
        and some wrong).
    ood : DetectionScores or None
        How well it separates ``ood_scores`` from the in-distribution scores (None without
        them).
    rejection : RejectionCurve
        Accuracy when the most uncertain fraction of the points is rejected.
    bins : BinStatistics
        The equal-width top-label bins of the reliability diagram.
    probs : Tensor, shape ``(N, C)``, or None
        The probabilities the report was computed from (dense predictions flattened to points,
        ignored points dropped; MC samples averaged), on the CPU. None for a report built by
        :meth:`from_sharded_predictions`, which never gathers the probabilities.
    target : Tensor, shape ``(N,)``, or None
        Their labels (None where ``probs`` is).
    id_scores : Tensor, shape ``(N,)``
        The uncertainty score of every point.
    ood_scores : Tensor or None
        The scores of the out-of-distribution inputs, flattened.
    name : str
        The model's name in the summary and the HTML.
    data_shape : tuple of int
        The shape of the predictions without the class dimension: ``(N,)``, or ``(N, ...)``
        for dense predictions (before ignored points are dropped).
    num_ignored : int
        Number of points dropped because their label was ``ignore_index``.
    ignore_index : int or None
        The label of the points to drop.
    confidence : Tensor, shape ``(N,)``
        The top-label confidence :math:`\max_c p_{ic}` of every point, on the CPU.
    correct : Tensor, shape ``(N,)``, bool
        Whether the most probable class is the label.
    classwise_bins : tuple of BinStatistics or None
        Class ``c``'s equal-width bins of :math:`p_{ic}` (for the classwise reliability
        diagram); None means "computed from ``probs`` when drawn".
    conformal : ConformalSetQuality or None
        Coverage and size of a conformal predictor's sets on the points (with ``conformal=``).

    Notes
    -----
    Every per-point quantity of the report is a function of ``(confidence, correct, score)``
    of the points, apart from the Brier score, the NLL and the classwise bins, which are sums
    over points. That is what lets :meth:`from_sharded_predictions` build the same report from
    the shards of a distributed job while moving three numbers per point instead of ``C``.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop import CalibrationReport
    >>> probs = torch.rand(300, 4).softmax(-1)
    >>> report = CalibrationReport.from_predictions(probs, torch.randint(0, 4, (300,)))
    >>> report.metrics.num_data, report.num_classes
    (300, 4)
    >>> print(report.summary().splitlines()[0])
    Calibration report: 300 points, 4 classes, 15 equal-width bins
    """

    _TITLE: ClassVar[str] = "Calibration report"

    metrics: ClassificationMetrics
    num_classes: int
    uncertainty: str
    misclassification: DetectionScores | None
    ood: DetectionScores | None
    rejection: RejectionCurve
    bins: BinStatistics
    probs: Tensor | None
    target: Tensor | None
    id_scores: Tensor
    ood_scores: Tensor | None
    name: str = "model"
    data_shape: tuple[int, ...] = ()
    num_ignored: int = 0
    ignore_index: int | None = None
    confidence: Tensor = None  # type: ignore[assignment]  # filled from probs when not given
    correct: Tensor = None  # type: ignore[assignment]
    classwise_bins: tuple[BinStatistics, ...] | None = None
    conformal: cq.ConformalSetQuality | None = None

    def __post_init__(self) -> None:
        if self.confidence is None or self.correct is None:
            if self.probs is None or self.target is None:
                fail(
                    "confidence",
                    "given with `correct` when `probs` and `target` are None",
                    "None",
                )
            confidence, correct = top_label(self.probs, self.target)
            object.__setattr__(self, "confidence", confidence)
            object.__setattr__(self, "correct", correct)

    @classmethod
    def from_predictions(
        cls,
        predictions: Any,
        target: Any,
        *,
        layout: Layout | None = None,
        ignore_index: int | None = None,
        ood_scores: Any = None,
        uncertainty: Uncertainty = "predictive_entropy",
        num_bins: int = 15,
        name: str = "model",
        conformal: Any = None,
    ) -> CalibrationReport:
        """Compute the report.

        Parameters
        ----------
        predictions : Tensor, ndarray or prediction result
            Probabilities ``(N, C)``; with ``layout="probs"``, dense probabilities ``(N, ..., C)``
            with the class dimension last (``(N, H, W, C)`` per pixel, ``(N, T, C)`` per token);
            with ``layout="samples"``, MC samples ``(S, N, ..., C)`` (averaged over ``S``); or an
            object with ``probs (N, ..., C)`` and optionally ``samples (S, N, ..., C)`` and
            ``mutual_information (N, ...)``, such as the result of ``mc_predict``.
        target : Tensor or ndarray, shape ``(N, ...)``
            Integer labels, one per prediction.
        layout : {"probs", "samples"}, optional
            What an array with more than two dimensions holds; required for those (a ``(A, B,
            C)`` array is either MC samples or per-position probabilities), optional for a 2-D
            array, not allowed for a prediction result.
        ignore_index : int, optional
            Points whose label is this value (e.g. 255 or -100) are dropped before anything is
            computed.
        ood_scores : Tensor or ndarray, optional
            The same uncertainty score computed on out-of-distribution inputs (any shape,
            flattened).
        uncertainty : {"predictive_entropy", "mutual_information", "max_probability"}
            The score ranking points by uncertainty (``1 - max p`` for "max_probability").
        num_bins : int, default 15
            Equal-width bins of the calibration errors and the reliability diagram.
        name : str, default "model"
            The model's name in the summary and the HTML.
        conformal : SplitConformalClassifier, optional
            Fitted on a calibration split: its sets of these points are measured (coverage,
            per class, per set size, against ``uncertainty``) in the ``conformal`` field.
        """
        check_choice("uncertainty", uncertainty, UNCERTAINTIES)
        points = as_points(
            predictions, target, layout=layout, ignore_index=ignore_index, name="predictions"
        )
        probs, target = points.probs.detach().cpu(), points.labels.cpu()
        metrics = classification_metrics(probs, target, num_bins=num_bins)
        scores = uncertainty_scores(uncertainty, probs, points.samples, points.mutual_information)
        if ood_scores is not None:
            ood_scores = as_float_tensor("ood_scores", ood_scores).detach().cpu().reshape(-1)
        confidence, correct = top_label(probs, target)
        if conformal is not None:
            conformal = cq.set_quality_of(conformal, predictions, points, scores, uncertainty)
        return cls._assemble(
            metrics,
            confidence,
            correct,
            scores.detach().cpu(),
            ood_scores,
            uncertainty=uncertainty,
            num_classes=probs.shape[1],
            probs=probs,
            target=target,
            classwise_bins=None,
            name=name,
            data_shape=points.data_shape,
            num_ignored=points.num_ignored,
            ignore_index=ignore_index,
            conformal=conformal,
        )

    @classmethod
    def _assemble(
        cls,
        metrics: ClassificationMetrics,
        confidence: Tensor,
        correct: Tensor,
        scores: Tensor,
        ood_scores: Tensor | None,
        **fields: Any,
    ) -> CalibrationReport:
        """The report from the metrics and the per-point ``(confidence, correct, score)``."""
        num_wrong = int((~correct).sum())
        has_both = 0 < num_wrong < len(correct)
        return cls(
            metrics=metrics,
            misclassification=detection_scores(scores, ~correct) if has_both else None,
            ood=None if ood_scores is None else ood_detection(scores, ood_scores),
            rejection=_rejection_curve(correct, scores, 21),
            bins=bin_statistics(confidence, correct, num_bins=metrics.num_bins),
            id_scores=scores,
            ood_scores=ood_scores,
            confidence=confidence,
            correct=correct,
            **fields,
        )

    @classmethod
    def from_sharded_predictions(
        cls,
        predictions: Any,
        target: Any,
        *,
        group: Any = None,
        layout: Layout | None = None,
        ignore_index: int | None = None,
        ood_scores: Any = None,
        uncertainty: Uncertainty = "predictive_entropy",
        num_bins: int = 15,
        name: str = "model",
    ) -> CalibrationReport:
        r"""The report of a data set whose predictions are sharded over a distributed job.

        Call it on every rank of ``group`` with that rank's shard (for instance the result of
        ``MCPredictor.predict(loader, gather="none")``, which has the sampler's padding
        dropped, so no point counts twice); every rank returns the report of the union of the
        shards. The probabilities never leave their rank:

        * accuracy, ECE, MCE, Brier score and NLL come from per-bin and per-class sums reduced
          with ``torch.distributed.all_reduce`` (:meth:`CalibrationMetrics.sync
          <bayesdrop.calibration.CalibrationMetrics.sync>`), as do the classwise bins
          (``C x num_bins`` sums);
        * the detection scores, the accuracy-rejection curve and the reliability diagrams need
          the ranking of the points, so each rank contributes three numbers per point (top-label
          confidence, correct or not, uncertainty score) and the OOD scores it holds,
          all-gathered: :math:`3N` numbers in all instead of :math:`NC`.

        Every number equals :meth:`from_predictions` on the joined predictions up to the
        order of floating-point sums (the detection scores and the rejection curve do not
        depend on the order of the points, ties included). Outside a distributed job (or with
        one process) it is :meth:`from_predictions` without keeping the probabilities.

        The options must be the same on every rank, as must the class count, the shape of a
        point and the dtypes; a mismatch, or a rank whose shard fails validation, raises on
        every rank instead of leaving the others waiting. Every shard must hold a point.

        Parameters
        ----------
        predictions : Tensor, ndarray or prediction result
            This rank's shard, in any form :meth:`from_predictions` takes.
        target : Tensor or ndarray
            The shard's integer labels.
        group : ProcessGroup, optional
            The ``torch.distributed`` process group (default: the default group).
        layout : {"probs", "samples"}, optional
            As in :meth:`from_predictions`.
        ignore_index : int, optional
            As in :meth:`from_predictions`.
        ood_scores : Tensor or ndarray, optional
            The out-of-distribution scores this rank holds (every rank passes some, or none).
        uncertainty : {"predictive_entropy", "mutual_information", "max_probability"}
            As in :meth:`from_predictions`.
        num_bins : int, default 15
            As in :meth:`from_predictions`.
        name : str, default "model"
            The model's name in the summary and the HTML.

        Returns
        -------
        CalibrationReport
            On every rank, with ``probs`` and ``target`` None; ``id_scores``, ``confidence``
            and ``correct`` hold the points rank by rank (rank 0's shard first).

        Examples
        --------
        Outside a distributed job the shard is the whole data set:

        >>> import torch
        >>> from bayesdrop import CalibrationReport
        >>> probs = torch.rand(300, 4, dtype=torch.float64).softmax(-1)
        >>> labels = torch.randint(0, 4, (300,))
        >>> full = CalibrationReport.from_predictions(probs, labels)
        >>> sharded = CalibrationReport.from_sharded_predictions(probs, labels)
        >>> sharded.probs is None, sharded.metrics == full.metrics
        (True, True)
        """
        from bayesdrop.calibration._sharded import sharded_report

        return sharded_report(
            cls,
            predictions,
            target,
            group=group,
            layout=layout,
            ignore_index=ignore_index,
            ood_scores=ood_scores,
            uncertainty=uncertainty,
            num_bins=num_bins,
            name=name,
        )

    def _rows(self) -> list[tuple[str, str]]:
        return classification_rows(self)

    def _header(self) -> str:
        m = self.metrics
        text = f"{m.num_data} points"
        if len(self.data_shape) > 1 or self.num_ignored:
            shape = " x ".join(map(str, self.data_shape))
            text += f" (predictions of shape {shape}"
            if self.num_ignored:
                text += f"; {self.num_ignored} with label {self.ignore_index} ignored"
            text += ")"
        return f"{text}, {self.num_classes} classes, {m.num_bins} equal-width bins"

    def _summary_lines(self) -> list[str]:
        return [f"  uncertainty score: {self.uncertainty.replace('_', ' ')}"]

    def _intro(self) -> str:
        score = self.uncertainty.replace("_", " ")
        return (
            f"{self._header()}. Uncertainty score: {score}. "
            "Bins are half-open, the last closed on the right."
        )

    def to_dict(self) -> dict[str, Any]:
        """The numbers and the conventions as plain Python values."""
        return classification_dict(self)

    def figures(self) -> dict[str, Figure]:
        """The report's figures by title (new :class:`~matplotlib.figure.Figure` objects)."""
        return classification_figures(self)
