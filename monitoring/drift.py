"""The signals of a model's traffic against its reference, and the verdict.

Signals (docs/monitoring.md). A classifier's:

* prediction: the top-1 label distribution (permutation chi-square), the top-1 confidence
  (K-S) and *low* confidence (one-sided lower-tail test: a class the model never saw) -- the
  deployed model's outputs, which "Failing Loudly" (Rabanser et al., 2019) found the most
  sensitive test for shifted images;
* input: brightness, contrast, sharpness, width, height and aspect ratio (K-S each);
* embedding: the logged 8-number projection of the pre-logits features (K-S per dimension,
  Bonferroni) and the features' norm (K-S).

A detector's: boxes per image (permutation chi-square over the counts), the mean box area and
the mean score per image (K-S), low top scores (lower tail), the boxes' labels (chi-square,
permuting whole images), and the same input statistics.

Weighted Holm over all of them gives one verdict with a false-alarm rate of at most
``alpha``; the weights (``WEIGHTS``) give the model's outputs more of alpha than the input
statistics::

    signals, drift = detect(reference, window.rows, alpha=0.01)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgrec.monitoring.reference import Reference
from imgrec.monitoring.signals import (
    MIN_SAMPLES,
    Signal,
    chi2_permutation_signal,
    clustered_chi2_signal,
    embedding_signal,
    higher_mean_signal,
    holm,
    ks_signal,
)

# (column, kind) of every K-S signal, in report order
KS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("confidence", "prediction"),
    ("brightness", "input"),
    ("contrast", "input"),
    ("sharpness", "input"),
    ("width", "input"),
    ("height", "input"),
    ("aspect", "input"),
    ("embedding_norm", "embedding"),
)
INPUT_KS = tuple(c for c in KS_COLUMNS if c[1] == "input")
# a detector's K-S signals (per image; NaN -- an image without boxes -- left out)
DETECTION_KS: tuple[tuple[str, str], ...] = (
    ("mean_score", "detection"),
    ("mean_box_area", "detection"),
    *INPUT_KS,
)
MAX_COUNT = 10  # boxes per image: counts above are one category "10+"

# Weighted Holm: a signal's share of alpha is its weight over the tested signals' sum. The
# model's outputs get most of it -- a class the model never saw moves only them, by a little
# (BENCHMARKS.md) -- and image statistics that rarely change alone (width, height, aspect)
# the least. Signals not listed weigh 1.
WEIGHTS: dict[str, float] = {
    "low_confidence": 8.0,  # half of alpha when every signal is tested
    "label": 2.0,
    "confidence": 1.0,
    "embedding": 1.5,
    "embedding_norm": 0.75,
    "brightness": 0.75,
    "contrast": 0.75,
    "sharpness": 0.75,
    "width": 0.25,
    "height": 0.25,
    "aspect": 0.25,
    # detectors
    "low_score": 2.0,
    "box_labels": 2.0,
    "boxes": 2.0,
    "mean_score": 1.5,
    "mean_box_area": 1.5,
}


def _numbers(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def surprise(confidences: Sequence[Any]) -> np.ndarray:
    """``-log(confidence)`` of the top-1 predictions (NaN kept: left out by the test)."""
    return -np.log(np.clip(_numbers(confidences), 1e-6, 1.0))


def embeddings(values: Sequence[Any]) -> np.ndarray:
    """``(N, D)`` from a column of embedding lists (rows without one, or of another size than
    the most common, are left out)."""
    vectors = [v for v in values if isinstance(v, (list, tuple)) and v]
    if not vectors:
        return np.zeros((0, 0))
    sizes = [len(v) for v in vectors]
    dims = max(set(sizes), key=sizes.count)
    return np.array([v for v in vectors if len(v) == dims], dtype=np.float64)


def compute_signals(reference: Reference, rows: Sequence[dict[str, Any]]) -> list[Signal]:
    """Every signal of ``rows`` (the window) against ``reference``, not yet judged."""
    task = reference.task
    rows = [r for r in rows if r.get("task", "classify") == task]
    if task == "detect":
        return detection_signals(reference.columns, rows)
    ref = reference.columns
    labels_ref = [str(v) for v in ref["label"]]
    label = chi2_permutation_signal("label", "prediction", labels_ref, [r["label"] for r in rows])
    if len(set(labels_ref)) < 2:
        label.p_value, label.note = None, "reference has one class: label drift not testable"
    surprise_ref = surprise(ref.get("confidence", []))
    surprise_cur = surprise([r.get("confidence") for r in rows])
    low = higher_mean_signal("low_confidence", "prediction", surprise_ref, surprise_cur)
    signals = [label, low]
    for name, kind in KS_COLUMNS:
        window = _numbers([r.get(name) for r in rows])
        signals.append(ks_signal(name, kind, _numbers(ref.get(name, [])), window))
    signals.append(
        embedding_signal(
            "embedding",
            embeddings(ref.get("embedding", [])),
            embeddings([r.get("embedding") for r in rows]),
        )
    )
    return signals


def _count_category(value: Any) -> str:
    n = int(value)
    return f"{MAX_COUNT}+" if n >= MAX_COUNT else str(n)


def detection_signals(ref: dict[str, list[Any]], rows: Sequence[dict[str, Any]]) -> list[Signal]:
    """A detector's signals: boxes per image, box labels, low top score, mean score and box
    area per image, input statistics -- the image is the sampled unit of every test."""
    boxes = chi2_permutation_signal(
        "boxes",
        "detection",
        [_count_category(v) for v in ref["boxes"]],
        [_count_category(r["boxes"]) for r in rows],
    )
    box_labels = clustered_chi2_signal(
        "box_labels", "detection", list(ref["labels"]), [r["labels"] for r in rows]
    )
    # 1 - the top score (an image without boxes: 1): fewer boxes is lower confidence too
    top_ref = 1 - np.nan_to_num(_numbers(ref["max_score"]), nan=0.0)
    top_cur = 1 - np.nan_to_num(_numbers([r["max_score"] for r in rows]), nan=0.0)
    signals = [boxes, box_labels, higher_mean_signal("low_score", "detection", top_ref, top_cur)]
    for name, kind in DETECTION_KS:
        window = _numbers([r.get(name) for r in rows])
        signals.append(ks_signal(name, kind, _numbers(ref.get(name, [])), window))
    return signals


def detect(
    reference: Reference, rows: Sequence[dict[str, Any]], *, alpha: float
) -> tuple[list[Signal], bool | None]:
    """Signals judged by weighted Holm at ``alpha`` (``WEIGHTS``); the verdict is ``None``
    when the window is too small for any test."""
    signals = compute_signals(reference, rows)
    return signals, holm(signals, alpha, WEIGHTS)


def verdict_text(drift: bool | None, n: int) -> str:
    """One line for people: ``drift``, ``no drift`` or why there is no verdict."""
    if drift is None:
        return (
            f"window too small (n < {MIN_SAMPLES}): no verdict"
            if n < MIN_SAMPLES
            else ("no signal could be tested: no verdict")
        )
    return "drift" if drift else "no drift"
