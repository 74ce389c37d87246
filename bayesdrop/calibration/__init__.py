"""Calibration of classifiers and regressors: metrics, streaming metrics, recalibration, plots
and reports. Needs no :mod:`bayesdrop.nn`: it works on predictions of any model."""

from bayesdrop.calibration._binning import (
    BinStatistics,
    bin_statistics,
    equal_mass_edges,
    equal_width_edges,
)
from bayesdrop.calibration._display import ClasswiseReliabilityDisplay, ReliabilityDisplay
from bayesdrop.calibration._inputs import PROBS_SUM_ATOL, Points, as_points
from bayesdrop.calibration._metrics import (
    ClassificationMetrics,
    accuracy,
    brier_score,
    calibration_error_from_statistics,
    classification_metrics,
    classwise_calibration_error,
    expected_calibration_error,
    negative_log_likelihood,
)
from bayesdrop.calibration._recalibration import (
    BetaCalibration,
    HistogramBinning,
    IsotonicCalibration,
    TemperatureScaling,
)
from bayesdrop.calibration._regression import (
    RegressionCalibrationCurve,
    expected_normalized_calibration_error,
    gaussian_crps,
    gaussian_negative_log_likelihood,
    picp,
    quantile_calibration_error,
    regression_calibration_curve,
)
from bayesdrop.calibration._regression_report import RegressionReport
from bayesdrop.calibration._report import CalibrationReport
from bayesdrop.calibration._score_displays import (
    RegressionCalibrationDisplay,
    RejectionCurveDisplay,
    UncertaintyHistogramDisplay,
)
from bayesdrop.calibration._streaming import (
    Accuracy,
    BrierScore,
    CalibrationError,
    CalibrationMetrics,
    NegativeLogLikelihood,
    StreamingMetric,
)
from bayesdrop.calibration._uncertainty_quality import (
    DetectionScores,
    RejectionCurve,
    accuracy_rejection_curve,
    detection_scores,
    misclassification_detection,
    ood_detection,
)

__all__ = [
    "PROBS_SUM_ATOL",
    "Accuracy",
    "BetaCalibration",
    "BinStatistics",
    "BrierScore",
    "CalibrationError",
    "CalibrationMetrics",
    "CalibrationReport",
    "ClassificationMetrics",
    "ClasswiseReliabilityDisplay",
    "DetectionScores",
    "HistogramBinning",
    "IsotonicCalibration",
    "NegativeLogLikelihood",
    "Points",
    "RegressionCalibrationCurve",
    "RegressionCalibrationDisplay",
    "RegressionReport",
    "RejectionCurve",
    "RejectionCurveDisplay",
    "ReliabilityDisplay",
    "StreamingMetric",
    "TemperatureScaling",
    "UncertaintyHistogramDisplay",
    "accuracy",
    "accuracy_rejection_curve",
    "as_points",
    "bin_statistics",
    "brier_score",
    "calibration_error_from_statistics",
    "classification_metrics",
    "classwise_calibration_error",
    "detection_scores",
    "equal_mass_edges",
    "equal_width_edges",
    "expected_calibration_error",
    "expected_normalized_calibration_error",
    "gaussian_crps",
    "gaussian_negative_log_likelihood",
    "misclassification_detection",
    "negative_log_likelihood",
    "ood_detection",
    "picp",
    "quantile_calibration_error",
    "regression_calibration_curve",
]

from bayesdrop.calibration._conformal_quality import (
    ConformalIntervalQuality,
    ConformalSetQuality,
)
from bayesdrop.calibration._matrix_scaling import DirichletCalibration, VectorScaling
from bayesdrop.calibration._regression_recalibration import (
    IsotonicCDFRecalibration,
    VarianceScaling,
)

__all__ += [
    "ConformalIntervalQuality",
    "ConformalSetQuality",
    "DirichletCalibration",
    "IsotonicCDFRecalibration",
    "VarianceScaling",
    "VectorScaling",
]
