"""The signals of a classifier's traffic against its reference, and the verdict.

Signals (docs/monitoring.md):

* prediction: the top-1 label distribution (permutation chi-square) and the top-1 confidence
  (K-S) -- the deployed model's outputs, which "Failing Loudly" (Rabanser et al., 2019) found
  the most sensitive test for shifted images;
* input: brightness, contrast, sharpness, width, height and aspect ratio (K-S each);
* embedding: the logged 8-number projection of the pre-logits features (K-S per dimension,
  Bonferroni) and the features' norm (K-S).

Holm's procedure over all of them gives one verdict with a false-alarm rate of at most
``alpha``::

    signals, drift = detect(reference, window.rows, alpha=0.01)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monitoring.reference import Reference
from monitoring.signals import (
    MIN_SAMPLES,
    Signal,
    chi2_permutation_signal,
    embedding_signal,
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


def _numbers(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


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
    ref = reference.columns
    labels_ref = [str(v) for v in ref["label"]]
    label = chi2_permutation_signal("label", "prediction", labels_ref, [r["label"] for r in rows])
    if len(set(labels_ref)) < 2:
        label.p_value, label.note = None, "reference has one class: label drift not testable"
    signals = [label]
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


def detect(
    reference: Reference, rows: Sequence[dict[str, Any]], *, alpha: float
) -> tuple[list[Signal], bool | None]:
    """Signals judged by Holm at ``alpha``; the verdict is ``None`` when the window is too
    small for any test."""
    signals = compute_signals(reference, rows)
    return signals, holm(signals, alpha)


def verdict_text(drift: bool | None, n: int) -> str:
    """One line for people: ``drift``, ``no drift`` or why there is no verdict."""
    if drift is None:
        return (
            f"window too small (n < {MIN_SAMPLES}): no verdict"
            if n < MIN_SAMPLES
            else ("no signal could be tested: no verdict")
        )
    return "drift" if drift else "no drift"
