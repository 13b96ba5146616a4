"""Classification metrics computed with numpy, equal to scikit-learn's on the same predictions.

The figures follow scikit-learn's definitions with every class listed (``labels=range(C)``)
and ``zero_division=0``: a class never predicted has precision 0, a class absent from the
truth has recall 0 (and support 0), and both still count in the macro averages. Weighted
averages weigh each class by its support. ``top5`` is top-k accuracy with ``k = min(5, C)``
(timm's convention), so with five classes or fewer it is 1.0 by definition; ties in the
scores are broken as scikit-learn's ``top_k_accuracy_score`` does (higher class index first).

Example::

    >>> m = classification_metrics([0, 1, 1], [0, 1, 0], classes=["cat", "dog"])
    >>> m["accuracy"], m["per_class"]["dog"]["recall"]
    (0.6666666666666666, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgrec.evaluation.calibration import DEFAULT_BINS, expected_calibration_error

METRIC_KEYS = (
    "accuracy",
    "top5",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "ece",
    "classes",
    "confusion_matrix",
    "per_class",
    "n",
)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``(C, C)`` with rows = true class and columns = predicted class."""
    index = y_true.astype(np.int64) * n_classes + y_pred.astype(np.int64)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise division where a zero denominator gives 0 (scikit-learn's zero_division=0)."""
    num = numerator.astype(np.float64)
    den = denominator.astype(np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the ``k`` highest scores.

    Ties are ordered as in scikit-learn (stable ascending sort, reversed).
    """
    order = np.argsort(probs, axis=1, kind="mergesort")[:, ::-1][:, :k]  # (N, k)
    return float(np.mean((order == y_true[:, None]).any(axis=1)))


def _check_labels(name: str, values: np.ndarray, n_classes: int) -> np.ndarray:
    arr = np.asarray(values).reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.mod(arr, 1) == 0):
            raise ValueError(f"{name} must hold integer class indices, got {arr.dtype}")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        bad = arr[(arr < 0) | (arr >= n_classes)][0]
        raise ValueError(f"{name} holds class index {bad}, outside 0..{n_classes - 1}")
    return arr.astype(np.int64)


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    probs: np.ndarray | None = None,
    *,
    classes: Sequence[str],
    n_bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """All evaluation figures for integer labels ``y_true`` / ``y_pred`` over ``classes``.

    ``probs`` (``(N, C)`` probabilities) gives ``top5`` and ``ece``; without it both are
    ``None``. ECE uses the probability of the predicted class as the confidence
    (see ``imgrec.evaluation.calibration``). Returns a JSON-able dict with the keys of
    ``METRIC_KEYS`` (the ``imgrec evaluate --json`` contract).
    """
    names = [str(c) for c in classes]
    n_classes = len(names)
    if n_classes == 0:
        raise ValueError("classes must not be empty")
    if len(set(names)) != n_classes:
        raise ValueError("class names must be unique")
    truth = _check_labels("y_true", np.asarray(y_true), n_classes)
    pred = _check_labels("y_pred", np.asarray(y_pred), n_classes)
    if truth.shape != pred.shape:
        raise ValueError(f"y_true has {truth.size} labels but y_pred has {pred.size}")
    if truth.size == 0:
        raise ValueError("no predictions to evaluate (empty y_true)")

    cm = confusion_matrix(truth, pred, n_classes)
    tp = np.diag(cm)
    pred_sum = cm.sum(axis=0)
    true_sum = cm.sum(axis=1)
    precision = _divide(tp, pred_sum)
    recall = _divide(tp, true_sum)
    f1 = _divide(2.0 * tp, true_sum + pred_sum)  # = 2PR/(P+R), as scikit-learn computes it

    top5: float | None = None
    ece: float | None = None
    if probs is not None:
        scores = np.asarray(probs, dtype=np.float64)
        if scores.shape != (truth.size, n_classes):
            expected = (truth.size, n_classes)
            raise ValueError(f"probs must have shape {expected}, got {scores.shape}")
        top5 = top_k_accuracy(truth, scores, min(5, n_classes))
        confidence = np.clip(scores[np.arange(truth.size), pred], 0.0, 1.0)
        ece = expected_calibration_error(confidence, truth == pred, n_bins)

    return {
        "accuracy": float(np.mean(truth == pred)),
        "top5": top5,
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "precision_weighted": float(np.average(precision, weights=true_sum)),
        "recall_weighted": float(np.average(recall, weights=true_sum)),
        "f1_weighted": float(np.average(f1, weights=true_sum)),
        "ece": ece,
        "classes": names,
        "confusion_matrix": cm.tolist(),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(true_sum[i]),
            }
            for i, name in enumerate(names)
        },
        "n": int(truth.size),
    }
