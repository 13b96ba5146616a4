"""Expected calibration error (ECE) and the data behind a reliability diagram.

Confidence of a prediction is the probability the model gave to the class it predicted.
Confidences are grouped into ``n_bins`` (default 15, as in Guo et al. 2017, "On Calibration of
Modern Neural Networks") equal-width bins over ``(0, 1]``; bin ``b`` holds confidences in
``(b / n_bins, (b + 1) / n_bins]``. ECE is the support-weighted mean gap between accuracy and
mean confidence over the bins::

    ECE = sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|

Example::

    >>> import numpy as np
    >>> expected_calibration_error(np.array([0.9, 0.6]), np.array([True, False]))
    0.35
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BINS = 15


@dataclass(frozen=True)
class ReliabilityData:
    """Per-bin statistics for a reliability diagram (arrays of length ``n_bins``).

    ``accuracy`` and ``confidence`` are 0 for empty bins; check ``count``.
    """

    edges: np.ndarray  # (n_bins + 1,) bin edges from 0 to 1
    count: np.ndarray  # (n_bins,) predictions per bin
    accuracy: np.ndarray  # (n_bins,) share correct per bin
    confidence: np.ndarray  # (n_bins,) mean confidence per bin

    @property
    def ece(self) -> float:
        """Expected calibration error from these bins."""
        n = self.count.sum()
        if n == 0:
            return 0.0
        gaps = np.abs(self.accuracy - self.confidence)
        return float(np.sum(self.count / n * gaps))


def reliability_data(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS
) -> ReliabilityData:
    """Bin ``confidence`` (values in [0, 1]) with ``correct`` (bools) into equal-width bins.

    A confidence of exactly 0 goes to the first bin (it has no right-open bin otherwise).
    """
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    hit = np.asarray(correct, dtype=bool).reshape(-1)
    if conf.shape != hit.shape:
        raise ValueError(f"confidence {conf.shape} and correct {hit.shape} differ in length")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if conf.size and (np.nanmin(conf) < 0 or np.nanmax(conf) > 1 or np.isnan(conf).any()):
        raise ValueError("confidences must lie in [0, 1] (pass probabilities, not logits)")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins (lo, hi]: searchsorted(side="left") on the inner edges gives that
    index = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(index, minlength=n_bins).astype(np.int64)
    conf_sum = np.bincount(index, weights=conf, minlength=n_bins)
    hit_sum = np.bincount(index, weights=hit.astype(np.float64), minlength=n_bins)
    safe = np.maximum(count, 1)
    return ReliabilityData(
        edges=edges,
        count=count,
        accuracy=np.where(count > 0, hit_sum / safe, 0.0),
        confidence=np.where(count > 0, conf_sum / safe, 0.0),
    )


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS
) -> float:
    """ECE of predictions with the given ``confidence`` and ``correct`` flags (see module doc)."""
    return reliability_data(confidence, correct, n_bins).ece
