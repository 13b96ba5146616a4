"""Helpers of the dashboard tests: model stores, prediction logs and drift reports written
the way the real tools write them (imported by name: ``conftest`` is ambiguous)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from pipeline_helpers import make_model_dir

from imgrec.model_store import ModelStore

EVIL = '<img src=x onerror="document.title=1">'


def per_class(classes: list[str], recalls: list[float]) -> dict[str, Any]:
    return {
        c: {"precision": 0.9, "recall": r, "f1": round(2 * 0.9 * r / (0.9 + r), 6), "support": 10}
        for c, r in zip(classes, recalls, strict=True)
    }


def make_store(root: Path, recalls: list[list[float]], classes: list[str] | None = None) -> str:
    """A real store with one version per row of ``recalls`` (per-class recall), the last one
    in production; metadata shaped like the pipeline's register step."""
    classes = classes or ["cat", "dog", EVIL]
    store = ModelStore(root / "store")
    model = make_model_dir(root / "model")
    for i, row in enumerate(recalls):
        accuracy = sum(row) / len(row)
        store.register(
            model,
            metadata={
                "metrics": {
                    "accuracy": accuracy,
                    "f1_macro": accuracy - 0.01,
                    "n": 30,
                    "classes": classes,
                    "per_class": per_class(classes, row),
                },
                "gate": {"passed": True, "reasons": [f"accuracy {accuracy:.4f} {EVIL}"],
                         "metric": "accuracy"},
                "dataset": {"version": f"data{i}"},
            },
        )  # fmt: skip
    return store.uri


def log_record(when: datetime, **kw: Any) -> dict[str, Any]:
    rec = {
        "schema": "imgrec.predlog/v1", "request_id": "r", "item": 0,
        "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "model": "imgrec", "model_version": "1",
        "protocol": "v2", "label": "cat", "class_id": 0, "confidence": 0.9, "latency_ms": 30.0,
    }  # fmt: skip
    rec.update(kw)
    return rec


def write_log(path: Path, records: list[dict[str, Any]], mode: str = "a") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode, encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")


def write_drift_report(
    root: Path, name: str, end: datetime, signals: list[dict[str, Any]], html: bool = True
) -> Path:
    """``root/name/summary.json`` (+ report.html) in the schema of ``imgrec monitor report``."""
    folder = root / name
    folder.mkdir(parents=True)
    summary = {
        "drift": any(s["drifted"] for s in signals),
        "window": {"n": 200, "start": (end - timedelta(hours=1)).isoformat(),
                   "end": end.isoformat()},
        "model_version": "1",
        "reference": "store@production",
        "signals": signals,
        "alpha": 0.01,
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    if html:
        (folder / "report.html").write_text("<!doctype html><html><body>report</body></html>")
    return folder


def hours_ago(n: float) -> datetime:
    return datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc) - timedelta(hours=n)
