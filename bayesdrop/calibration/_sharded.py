"""The calibration report of a data set sharded over a distributed job (private): per-bin and
per-class sums reduced, three numbers per point gathered (see
:meth:`bayesdrop.CalibrationReport.from_sharded_predictions`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from bayesdrop._distributed import (
    all_reduce_sum,
    check_same_options,
    context,
    gather_tensor,
    run_on_every_rank,
)
from bayesdrop._validation import check_choice
from bayesdrop.calibration._binning import (
    BinStatistics,
    check_num_bins,
    classwise_bin_sums,
    equal_width_edges,
)
from bayesdrop.calibration._inputs import Layout, as_float_tensor, as_points, top_label
from bayesdrop.calibration._streaming import CalibrationMetrics
from bayesdrop.calibration._uncertainty_quality import UNCERTAINTIES, uncertainty_scores

__all__ = ["sharded_report"]


def sharded_report(
    cls: Any,
    predictions: Any,
    target: Any,
    *,
    group: Any,
    layout: Layout | None,
    ignore_index: int | None,
    ood_scores: Any,
    uncertainty: str,
    num_bins: int,
    name: str,
) -> Any:
    """``cls`` (a :class:`~bayesdrop.CalibrationReport`) of the union of every rank's shard."""
    ctx = context(group)
    if ctx.active:
        options: dict[str, object] = {
            "uncertainty": uncertainty,
            "num_bins": num_bins,
            "layout": layout,
            "ignore_index": ignore_index,
            "ood_scores": "given" if ood_scores is not None else None,
            "name": name,
        }
        check_same_options(ctx, options)

    def local() -> tuple[Any, ...]:
        check_choice("uncertainty", uncertainty, UNCERTAINTIES)
        bins = check_num_bins(num_bins)
        points = as_points(
            predictions, target, layout=layout, ignore_index=ignore_index, name="predictions"
        )
        probs, labels = points.probs.detach(), points.labels
        sums = CalibrationMetrics(num_bins=bins).update(probs, labels)
        classwise = torch.stack(classwise_bin_sums(probs, labels, bins))
        confidence, correct = top_label(probs, labels)
        scores = uncertainty_scores(uncertainty, probs, points.samples, points.mutual_information)
        ood = None
        if ood_scores is not None:
            ood = as_float_tensor("ood_scores", ood_scores).detach().reshape(-1)
        return points, sums, classwise, confidence, correct, scores.detach(), ood

    if not ctx.active:
        points, sums, classwise, confidence, correct, scores, ood = local()
    else:
        points, sums, classwise, confidence, correct, scores, ood = run_on_every_rank(ctx, local)
        shape = {
            "class count": points.probs.shape[1],
            "point shape": points.data_shape[1:],
            "dtype": str(points.probs.dtype),
            "ood_scores dtype": None if ood is None else str(ood.dtype),
        }
        check_same_options(ctx, shape)
        sums = sums.sync(group)
        counts = torch.tensor(
            [len(points.target), points.data_shape[0], points.num_ignored],
            dtype=torch.long,
            device=classwise.device,
        )
        all_reduce_sum(ctx, classwise, counts)
        n_rows, n_ignored = int(counts[1]), int(counts[2])
        confidence, correct, scores = (
            torch.cat(gather_tensor(ctx, t.to(classwise.device), 0, to_all=True))
            for t in (confidence, correct.to(torch.uint8), scores)
        )
        correct = correct.bool()
        if ood is not None:
            ood = torch.cat(gather_tensor(ctx, ood.to(classwise.device), 0, to_all=True))
        points = dataclasses.replace(
            points, data_shape=(n_rows, *points.data_shape[1:]), num_ignored=n_ignored
        )
    edges = equal_width_edges(num_bins, dtype=classwise.dtype)
    classwise = classwise.cpu()
    return cls._assemble(
        sums.compute(),
        confidence.cpu(),
        correct.cpu(),
        scores.cpu(),
        None if ood is None else ood.cpu(),
        uncertainty=uncertainty,
        num_classes=points.probs.shape[1],
        probs=None,
        target=None,
        classwise_bins=tuple(
            BinStatistics(edges, classwise[0, c], classwise[1, c], classwise[2, c])
            for c in range(classwise.shape[1])
        ),
        name=name,
        data_shape=points.data_shape,
        num_ignored=points.num_ignored,
        ignore_index=ignore_index,
    )
