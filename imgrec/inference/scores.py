"""Logits -> the top-k labels' softmax scores, in NumPy: what ``imgrec predict`` prints and the
servers answer (one implementation, no torch).

The softmax is computed in float64 from the float32 logits and the scores are rounded to
float32 (the precision the network computes in). It differs from ``torch.softmax`` in float32
by about one float32 ulp (torch's vectorized ``exp`` is an approximation); the top-k order
is by score, ties by class index::

    scores, ids = top_k_softmax(logits, 5)      # (B, 5) float32, (B, 5) int64, best first
"""

from __future__ import annotations

import numpy as np


def top_k_softmax(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, class_ids)`` of the ``k`` most probable classes of each row of ``logits``
    ``(B, C)``, best first: softmax probabilities as float32 ``(B, k')`` with
    ``k' = min(k, C)``, and their class indices ``(B, k')``."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"expected logits (B, C), got shape {z.shape}")
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probs = e / e.sum(axis=1, keepdims=True)
    ids = np.argsort(-probs, axis=1, kind="stable")[:, : max(0, min(int(k), z.shape[1]))]
    return np.take_along_axis(probs, ids, axis=1).astype(np.float32), ids
