"""Helpers of the monitoring tests (imported by name).

``make_monitored(root)`` writes a colour dataset and a seeded model and builds its reference;
``log_records(reference, n, ...)`` draws ``imgrec.predlog/v1`` records from the reference's own
columns (optionally shifted) and ``write_log(path, records, tail=...)`` writes them as JSONL.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from eval_fixtures import write_color_dataset, write_tiny_model

from imgrec.monitoring.reference import Reference, build_reference, save_reference

CLASSES = ["blue", "green", "red"]
START = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@dataclass
class Monitored:
    model: Path
    data: Path
    reference: Reference


def make_monitored(root: Path) -> Monitored:
    data = write_color_dataset(root / "data", n_train=1, n_val=40)
    model = write_tiny_model(root / "model", CLASSES, seed=4)  # predicts 2 of the 3 classes
    doc = build_reference(str(model), str(data))
    uri = save_reference(doc, str(model / "reference.json"))
    return Monitored(model, data, Reference(doc, doc["model"]["version"], uri))


def stamp(i: int, start: datetime = START, step_s: float = 1.0) -> str:
    return (start + timedelta(seconds=i * step_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log_records(
    reference: Reference,
    n: int,
    *,
    seed: int = 0,
    version: str | None = None,
    brightness: float = 1.0,
    start: datetime = START,
    label: str | None = None,
) -> list[dict[str, Any]]:
    """``n`` v1 records resampled from the reference rows (``brightness`` scales that
    statistic; ``label`` keeps only rows predicted as that label)."""
    cols = reference.columns
    rng = random.Random(seed)
    rows = [i for i in range(reference.n) if label is None or cols["label"][i] == label]
    out = []
    for k in range(n):
        i = rng.choice(rows)
        out.append(
            {
                "schema": "imgrec.predlog/v1",
                "request_id": f"r{k}",
                "item": 0,
                "time": stamp(k, start),
                "model": "imgrec",
                "model_version": version or reference.version,
                "protocol": "v1",
                "label": cols["label"][i],
                "class_id": 0,
                "confidence": cols["confidence"][i],
                "latency_ms": 1.0,
                "fingerprint": "sha256:0",
                "width": cols["width"][i],
                "height": cols["height"][i],
                "brightness": round(cols["brightness"][i] * brightness, 4),
                "contrast": cols["contrast"][i],
                "sharpness": cols["sharpness"][i],
                "embedding": cols["embedding"][i],
                "embedding_norm": cols["embedding_norm"][i],
            }
        )
    return out


def write_log(path: Path, records: list[dict[str, Any]], *, tail: str = "") -> Path:
    """JSONL file of ``records`` then ``tail`` verbatim (e.g. a cut line without newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
        fh.write(tail)
    return path
