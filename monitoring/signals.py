"""Drift signals (two-sample tests of a window against the reference) and one verdict.

Every signal is a test whose p-value is valid for two independent samples of any size: the
two-sample Kolmogorov-Smirnov test for numbers (what Evidently's ``ks`` method computes), a
permutation chi-square test for the predicted labels (Evidently's ``chisquare`` treats the
reference counts as exact expectations, which raises false alarms when the window is not much
smaller than the reference), and for the embedding a K-S test per dimension combined by
Bonferroni. The verdict combines the signals with Holm's step-down procedure, so a window drawn
from the reference's distribution raises a false alarm with probability at most ``alpha``
whatever the dependence between the signals::

    signals = [ks_signal("confidence", "prediction", ref, cur), ...]
    verdict = holm(signals, alpha=0.01)   # marks each signal's threshold and drifted flag
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

MIN_SAMPLES = 30  # fewer values than this in the window (or reference): "window too small"
PERMUTATIONS = 4000  # permutation tests: the smallest p-value is 1 / (PERMUTATIONS + 1)


@dataclass
class Signal:
    """One test: ``p_value`` (or ``None`` when skipped, with ``note`` saying why)."""

    name: str
    kind: str  # prediction | input | embedding | detection
    method: str
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None  # Holm's level for this signal's rank
    drifted: bool | None = None
    n: int = 0  # values in the window
    n_reference: int = 0
    note: str = ""

    @property
    def tested(self) -> bool:
        return self.p_value is not None

    def to_dict(self) -> dict[str, Any]:
        """The ``summary.json`` form (``note`` only when the signal was not tested)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "statistic": _round(self.statistic),
            "p_value": _round(self.p_value),
            "threshold": _round(self.threshold),
            "drifted": self.drifted,
            "n": self.n,
            "n_reference": self.n_reference,
        }
        if self.note:
            out["note"] = self.note
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.6g}")


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The finite values (NaN and inf are counted by the log reader and left out here)."""
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


def _too_small(signal: Signal, minimum: int = MIN_SAMPLES) -> Signal | None:
    if signal.n < minimum or signal.n_reference < minimum:
        which = "window" if signal.n < minimum else "reference"
        signal.note = f"{which} too small (n < {minimum})"
        return signal
    return None


def ks_signal(name: str, kind: str, reference: Any, current: Any) -> Signal:
    """Two-sample K-S test on the finite values of one numeric column."""
    ref, cur = finite(reference), finite(current)
    signal = Signal(name, kind, "ks", n=len(cur), n_reference=len(ref))
    if _too_small(signal):
        return signal
    result = stats.ks_2samp(ref, cur)
    signal.statistic, signal.p_value = float(result.statistic), float(result.pvalue)
    return signal


def chi2_permutation_signal(
    name: str, kind: str, reference: Sequence[str], current: Sequence[str], *, seed: int = 0
) -> Signal:
    """Chi-square statistic of the 2 x K table (reference vs window counts per label), with
    its p-value from ``PERMUTATIONS`` random splits of the pooled labels (exact for any n,
    no expected-count rule needed)."""
    signal = Signal(name, kind, "chi2-permutation", n=len(current), n_reference=len(reference))
    if _too_small(signal):
        return signal
    labels = sorted(set(reference) | set(current))
    index = {label: i for i, label in enumerate(labels)}
    ref_counts = np.bincount([index[v] for v in reference], minlength=len(labels))
    cur_counts = np.bincount([index[v] for v in current], minlength=len(labels))
    observed = _chi2(cur_counts[None, :], ref_counts[None, :])[0]
    signal.statistic = float(observed)
    if len(labels) < 2:
        signal.p_value = 1.0
        return signal
    pooled = ref_counts + cur_counts
    rng = np.random.default_rng(seed)
    sim_cur = rng.multivariate_hypergeometric(pooled, int(cur_counts.sum()), size=PERMUTATIONS)
    sim = _chi2(sim_cur, pooled[None, :] - sim_cur)
    signal.p_value = float((1 + np.count_nonzero(sim >= observed - 1e-9)) / (PERMUTATIONS + 1))
    return signal


def clustered_chi2_signal(
    name: str,
    kind: str,
    reference: Sequence[Sequence[str]],
    current: Sequence[Sequence[str]],
    *,
    seed: int = 0,
) -> Signal:
    """Chi-square of the 2 x K table of label counts when each *image* holds several labels
    (a detector's boxes): the p-value permutes whole images between reference and window
    (``PERMUTATIONS`` random splits), so boxes of one image, which are not independent, move
    together and the test stays exact. ``n`` counts images; images without labels count too."""
    signal = Signal(
        name, kind, "chi2-image-permutation", n=len(current), n_reference=len(reference)
    )
    if _too_small(signal):
        return signal
    labels = sorted({v for image in (*reference, *current) for v in image})
    if len(labels) < 2:
        signal.statistic, signal.p_value = 0.0, 1.0
        if not labels:
            signal.p_value, signal.note = None, "no labels in window or reference"
        return signal
    index = {label: i for i, label in enumerate(labels)}
    per_image = np.zeros((len(reference) + len(current), len(labels)), dtype=np.int64)
    for row, image in enumerate((*reference, *current)):
        for v in image:
            per_image[row, index[v]] += 1
    total, n = per_image.sum(axis=0), len(current)
    observed = _chi2(
        per_image[len(reference) :].sum(axis=0)[None, :],
        per_image[: len(reference)].sum(axis=0)[None, :],
    )[0]
    rng = np.random.default_rng(seed)
    sims = []
    chunk = max(1, 2_000_000 // (len(per_image) + n * len(labels)))
    for start in range(0, PERMUTATIONS, chunk):
        size = min(chunk, PERMUTATIONS - start)
        keys = rng.integers(0, 2**32, size=(size, len(per_image)), dtype=np.uint32)
        pick = np.argpartition(keys, n - 1, axis=1)[:, :n] if n < len(per_image) else None
        cur = per_image[pick].sum(axis=1) if pick is not None else np.tile(total, (size, 1))
        sims.append(_chi2(cur, total[None, :] - cur))
    sim = np.concatenate(sims)
    signal.statistic = float(observed)
    signal.p_value = float((1 + np.count_nonzero(sim >= observed - 1e-9)) / (PERMUTATIONS + 1))
    return signal


def _chi2(cur: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Pearson chi-square of 2 x K tables, one per row of ``cur``/``ref`` (B, K)."""
    table = np.stack([cur, ref], axis=1).astype(np.float64)  # (B, 2, K)
    total = table.sum(axis=(1, 2), keepdims=True)
    expected = table.sum(axis=2, keepdims=True) * table.sum(axis=1, keepdims=True) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (table - expected) ** 2 / expected, 0.0)
    return terms.sum(axis=(1, 2))


def embedding_signal(name: str, reference: np.ndarray, current: np.ndarray) -> Signal:
    """K-S per embedding dimension, combined by Bonferroni: ``p = min(1, D * min p_d)``; the
    statistic is the largest K-S distance."""
    signal = Signal(name, "embedding", "ks-per-dim-bonferroni")
    signal.n, signal.n_reference = len(current), len(reference)
    if reference.ndim != 2 or current.ndim != 2 or reference.shape[1] != current.shape[1]:
        signal.note = "embedding sizes of window and reference differ"
        return signal
    if _too_small(signal):
        return signal
    results = [stats.ks_2samp(reference[:, d], current[:, d]) for d in range(reference.shape[1])]
    dims = len(results)
    signal.statistic = max(float(r.statistic) for r in results)
    signal.p_value = min(1.0, dims * min(float(r.pvalue) for r in results))
    return signal


def higher_mean_signal(
    name: str, kind: str, reference: Any, current: Any, *, seed: int = 0
) -> Signal:
    """One-sided test: is the window's mean of a per-image score *higher* than the
    reference's? The p-value comes from ``PERMUTATIONS`` random splits of the pooled values,
    so it is exact for any n and any score distribution. The monitor's score is the
    "surprise" of the top-1 prediction, ``-log(confidence)``: a class the model never saw
    shows as a few images with a large one (BENCHMARKS.md: the strongest of the per-image
    scores tried -- tail counts, ranks, entropy, margin, energy, distances in the embedding)."""
    ref, cur = finite(reference), finite(current)
    signal = Signal(name, kind, "mean-permutation-one-sided", n=len(cur), n_reference=len(ref))
    if _too_small(signal):
        return signal
    pooled = np.concatenate([ref, cur])
    total, n = len(pooled), len(cur)
    observed = float(cur.mean() - ref.mean())
    # a split's window sum is the pooled sum less its reference part: draw the smaller side
    m, window_side = (n, True) if n <= total - n else (total - n, False)
    rng = np.random.default_rng(seed)
    pooled_sum, sims = float(pooled.sum()), []
    chunk = max(1, 4_000_000 // total)
    for start in range(0, PERMUTATIONS, chunk):
        size = min(chunk, PERMUTATIONS - start)
        # a uniformly random m-subset per split: the m smallest of random 32-bit keys (ties,
        # ~1e-4 per split, are far below the p-value's Monte Carlo error)
        keys = rng.integers(0, 2**32, size=(size, total), dtype=np.uint32)
        pick = np.argpartition(keys, m - 1, axis=1)[:, :m]
        side = pooled[pick].sum(axis=1)
        cur_sum = side if window_side else pooled_sum - side
        sims.append(cur_sum / n - (pooled_sum - cur_sum) / (total - n))
    sim = np.concatenate(sims)
    signal.statistic = observed
    signal.p_value = float((1 + np.count_nonzero(sim >= observed - 1e-12)) / (PERMUTATIONS + 1))
    return signal


def holm(
    signals: list[Signal], alpha: float, weights: dict[str, float] | None = None
) -> bool | None:
    """Holm's step-down over the tested signals, weighted when ``weights`` (by signal name;
    others weigh 1) are given: the signals are taken in order of ``p / w``, and the one at
    each step is rejected when ``p <= alpha * w / (sum of w of the signals not yet
    rejected)`` (Holm 1979). Sets each one's ``threshold`` and ``drifted``; returns the
    verdict, or ``None`` when nothing could be tested. The family-wise false-alarm rate is at
    most ``alpha`` under any dependence, whatever the weights; a weight says which signals get
    more of alpha (docs/monitoring.md)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    weight = {s.name: (weights or {}).get(s.name, 1.0) for s in signals}
    tested = sorted(
        (s for s in signals if s.tested and weight[s.name] > 0),
        key=lambda s: (s.p_value or 0.0) / weight[s.name],
    )
    remaining = sum(weight[s.name] for s in tested)
    rejecting = True
    for signal in tested:
        signal.threshold = alpha * weight[signal.name] / remaining
        assert signal.p_value is not None
        rejecting = rejecting and signal.p_value <= signal.threshold
        signal.drifted = rejecting
        remaining -= weight[signal.name]
    if not tested:
        return None
    return any(s.drifted for s in tested)


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
