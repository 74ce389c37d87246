r"""Conformal prediction on MC dropout predictions: sets and intervals with a coverage guarantee.

Split conformal prediction (Vovk et al. 2005) turns any score into sets that cover the true
label with probability at least :math:`1 - \alpha` on exchangeable data: calibrate a quantile
of the scores of held-out points (:func:`conformal_quantile`, the exact
:math:`\lceil (n + 1)(1 - \alpha) \rceil`-th smallest score), then keep every label whose score
is at most that quantile. :class:`SplitConformalClassifier` works on the MC-mean probabilities
of a :class:`~bayesdrop.ClassificationPrediction` (or any probabilities with the class dimension
last, dense outputs included), with threshold, APS, RAPS and two scores that use the epistemic
uncertainty; :class:`SplitConformalRegressor` gives intervals around the MC predictive mean.
Conformal coverage holds on average over calibration splits and test points drawn from the same
distribution; it does not hold under distribution shift.
"""

from bayesdrop.conformal._classifier import SplitConformalClassifier, conformal_sets
from bayesdrop.conformal._quality import (
    CoverageByGroup,
    SetQuality,
    class_conditional_coverage,
    coverage,
    interval_coverage,
    mean_interval_width,
    mean_set_size,
    set_quality,
    size_stratified_coverage,
)
from bayesdrop.conformal._quantile import (
    conformal_quantile,
    gather_scores,
    min_calibration_size,
    quantile_rank,
)
from bayesdrop.conformal._regression import SplitConformalRegressor, conformal_intervals
from bayesdrop.conformal._scores import conformity_scores

__all__ = [
    "CoverageByGroup",
    "SetQuality",
    "SplitConformalClassifier",
    "SplitConformalRegressor",
    "class_conditional_coverage",
    "conformal_intervals",
    "conformal_quantile",
    "conformal_sets",
    "conformity_scores",
    "coverage",
    "gather_scores",
    "interval_coverage",
    "mean_interval_width",
    "mean_set_size",
    "min_calibration_size",
    "quantile_rank",
    "set_quality",
    "size_stratified_coverage",
]
