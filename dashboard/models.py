"""The model store (imgrec/model_store.py) as the Models page shows it: rows, runs, comparisons.

Which pipeline run made a version is read from the runs' ``summary.json``
(``registered_version`` into the same store); a version registered by hand has no run::

    rows = version_rows(ModelStore("model-store").versions())
    deltas = compare(store.get(3), store.get(5))   # per class, b minus a
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from imgrec import storage
from imgrec.model_store import ModelVersion

SHOWN_METRICS = ("accuracy", "f1_macro", "map", "map50", "top5", "ece", "n")
PER_CLASS_KEYS = ("precision", "recall", "f1", "ap", "ap50", "support")


def scalar(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric top-level metrics (no per-class tables)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def shown_metrics(versions: list[ModelVersion]) -> list[str]:
    """The metric columns worth showing for these versions, in a stable order."""
    present = {k for v in versions for k in scalar(v.metrics)}
    return [k for k in SHOWN_METRICS if k in present]


def gate(version: ModelVersion) -> dict[str, Any]:
    """The gate decision recorded at registration (``passed`` is ``None`` when unknown)."""
    doc = version.metadata.get("gate")
    if not isinstance(doc, dict):
        return {"passed": None, "reasons": []}
    reasons = doc.get("reasons") or []
    return {
        "passed": doc.get("passed") if isinstance(doc.get("passed"), bool) else None,
        "reasons": [str(r) for r in reasons] if isinstance(reasons, list) else [str(reasons)],
        "metric": doc.get("metric"),
    }


def per_class(version: ModelVersion) -> dict[str, dict[str, float]]:
    table = version.metrics.get("per_class")
    if not isinstance(table, dict):
        return {}
    return {str(c): scalar(row) for c, row in table.items() if isinstance(row, dict)}


@dataclass
class ClassDelta:
    name: str
    a: dict[str, float]
    b: dict[str, float]

    def delta(self, key: str) -> float | None:
        if key in self.a and key in self.b:
            return self.b[key] - self.a[key]
        return None


def compare(a: ModelVersion, b: ModelVersion) -> tuple[list[str], list[ClassDelta]]:
    """Per-class metrics of two versions side by side: ``(keys, rows)``; deltas are b - a."""
    pa, pb = per_class(a), per_class(b)
    names = list(pa) + [c for c in pb if c not in pa]
    keys = [k for k in PER_CLASS_KEYS if any(k in r for r in (*pa.values(), *pb.values()))]
    return keys, [ClassDelta(c, pa.get(c, {}), pb.get(c, {})) for c in names]


def runs_by_version(runs: list[Any], store_uri: str) -> dict[int, Any]:
    """``{version: run}`` for the runs that registered into ``store_uri``."""
    target = store_uri if storage.is_s3(store_uri) else os.path.abspath(store_uri)
    out: dict[int, Any] = {}
    for run in reversed(runs):  # oldest first: a later run never re-registers a number
        params = run.summary.get("params") or {}
        if run.registered_version is not None and params.get("store_uri") == target:
            out[run.registered_version] = run
    return out


def provenance(version: ModelVersion) -> dict[str, str]:
    """Where a version came from: its source, dataset and git commit when recorded."""
    meta = version.metadata
    dataset: dict[str, Any] = meta["dataset"] if isinstance(meta.get("dataset"), dict) else {}
    git: dict[str, Any] = meta["git"] if isinstance(meta.get("git"), dict) else {}
    commit = meta.get("git_commit") or meta.get("commit") or git.get("commit")
    return {
        "source": str(meta.get("source", "")),
        "dataset": str(dataset.get("version") or dataset.get("fingerprint") or ""),
        "commit": str(commit or ""),
    }
