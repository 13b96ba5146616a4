"""The prediction log: one JSON record per served prediction, for the drift monitors.

Records are queued by the request handler (a non-blocking append) and written by a background
thread in batches, so logging never sits on a request's hot path. The queue is bounded: when the
store cannot keep up, new records are dropped and counted (``dropped``), never buffered without
limit. Destinations:

* a local folder: appends to ``FOLDER/predictions-YYYYMMDD.jsonl`` (UTC day);
* a local ``*.jsonl`` file: appends to it;
* ``s3://bucket/prefix``: one object per flush, ``prefix/YYYY/MM/DD/HHMMSS-<id>.jsonl``
  (S3 objects cannot be appended to).

The record format (``imgrec.predlog/v2``: classification and detection records; readers keep
reading ``v1``) is documented in docs/prediction-log.md.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from imgrec import storage
from imgrec.serving.background import BackgroundWriter

SCHEMA = "imgrec.predlog/v2"
EMBEDDING_DIMS = 8


@lru_cache(maxsize=8)
def _projection(dim: int) -> np.ndarray:
    # A fixed Gaussian random projection (seed 0): the same summary across runs and versions
    # with the same feature size, as the drift monitors need.
    return np.random.default_rng(0).standard_normal((dim, EMBEDDING_DIMS)) / np.sqrt(dim)


def embedding_summary(embedding: np.ndarray) -> tuple[list[float], float]:
    """``(8 numbers, L2 norm)``: the unit-normalized embedding through a fixed projection."""
    e = np.asarray(embedding, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(e))
    unit = e / norm if norm > 0 else e
    return [round(float(v), 4) for v in unit @ _projection(e.size)], round(norm, 4)


class PredictionLog(BackgroundWriter[dict[str, Any]]):
    """Bounded, batched, background JSONL writer; see the module docstring.

    >>> plog = PredictionLog("logs/predictions")      # doctest: +SKIP
    >>> plog.append({"request_id": "abc", "label": "tabby"})
    True
    """

    def __init__(
        self,
        uri: str,
        *,
        max_queue: int = 10_000,
        max_batch: int = 1000,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.uri = str(uri)
        super().__init__(
            "predlog", max_queue=max_queue, max_batch=max_batch, flush_interval_s=flush_interval_s
        )

    def write_batch(self, batch: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=True, default=str) + "\n" for r in batch)
        now = datetime.now(timezone.utc)
        if storage.is_s3(self.uri):
            key = f"{now:%Y/%m/%d/%H%M%S}-{uuid.uuid4().hex[:12]}.jsonl"
            storage.write_bytes(storage.join(self.uri, key), text.encode())
        else:
            path = Path(self.uri)
            if path.suffix != ".jsonl":
                path = path / f"predictions-{now:%Y%m%d}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(text)
        self.written += len(batch)


def _common(
    *, request_id: str, item: int, model: str, version: str, protocol: str, task: str,
    latency_ms: float, stats: Any,
) -> dict[str, Any]:  # fmt: skip
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "task": task,
        "request_id": request_id,
        "item": item,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "model": model,
        "model_version": version,
        "protocol": protocol,
        "latency_ms": round(latency_ms, 3),
    }
    if stats is not None:
        record.update(
            fingerprint=stats.fingerprint,
            width=stats.width,
            height=stats.height,
            brightness=stats.brightness,
            contrast=stats.contrast,
            sharpness=stats.sharpness,
        )
    return record


def prediction_record(
    *,
    request_id: str,
    item: int,
    model: str,
    version: str,
    stats: Any,
    label: str,
    class_id: int,
    confidence: float,
    embedding: np.ndarray,
    latency_ms: float,
    protocol: str,
) -> dict[str, Any]:
    """One classification record (``task: classify``; fields in docs/prediction-log.md)."""
    summary, norm = embedding_summary(embedding)
    record = _common(
        request_id=request_id, item=item, model=model, version=version, protocol=protocol,
        task="classify", latency_ms=latency_ms, stats=stats,
    )  # fmt: skip
    record.update(
        label=label,
        class_id=class_id,
        confidence=round(confidence, 6),
        embedding=summary,
        embedding_norm=norm,
    )
    return record


def detection_record(
    *,
    request_id: str,
    item: int,
    model: str,
    version: str,
    stats: Any,
    detections: list[dict[str, Any]],
    image_size: tuple[int, int],
    latency_ms: float,
    protocol: str,
) -> dict[str, Any]:
    """One detection record (``task: detect``): the served detections (best first) as
    ``labels``, ``scores`` and ``box_area`` (each box's area / the image's, ``image_size`` =
    the pixels the boxes are in) and their count ``boxes``."""
    record = _common(
        request_id=request_id, item=item, model=model, version=version, protocol=protocol,
        task="detect", latency_ms=latency_ms, stats=stats,
    )  # fmt: skip
    w, h = image_size
    area = float(w * h) or 1.0
    record.update(
        boxes=len(detections),
        labels=[d["label"] for d in detections],
        scores=[round(float(d["score"]), 5) for d in detections],
        box_area=[
            round(max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) / area, 6)
            for b in (d["box"] for d in detections)
        ],
    )
    return record
