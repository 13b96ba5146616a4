"""Evaluation: metrics equal to scikit-learn's, calibration (ECE), pictures and an HTML report.

* ``classification_metrics(y_true, y_pred, probs, classes=...)``: the ``imgrec evaluate`` dict
* ``expected_calibration_error`` / ``reliability_data`` (15 equal-width bins)
* ``imgrec.evaluation.plots`` (matplotlib, Agg) and ``imgrec.evaluation.report`` (one HTML page)
"""

from __future__ import annotations

from imgrec.evaluation.calibration import (
    DEFAULT_BINS,
    ReliabilityData,
    expected_calibration_error,
    reliability_data,
)
from imgrec.evaluation.metrics import METRIC_KEYS, classification_metrics, confusion_matrix

__all__ = [
    "DEFAULT_BINS",
    "METRIC_KEYS",
    "ReliabilityData",
    "classification_metrics",
    "confusion_matrix",
    "expected_calibration_error",
    "reliability_data",
]
