"""The prediction log: one JSON record per served prediction, for the drift monitors.

Records are queued by the request handler (a non-blocking append) and written by a background
thread in batches, so logging never sits on a request's hot path. The queue is bounded: when the
store cannot keep up, new records are dropped and counted (``dropped``), never buffered without
limit. Destinations:

* a local folder: appends to ``FOLDER/predictions-YYYYMMDD.jsonl`` (UTC day);
* a local ``*.jsonl`` file: appends to it;
* ``s3://bucket/prefix``: one object per flush, ``prefix/YYYY/MM/DD/HHMMSS-<id>.jsonl``
  (S3 objects cannot be appended to).

The record format (``imgrec.predlog/v1``) is documented in docs/prediction-log.md.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from imgrec import storage

SCHEMA = "imgrec.predlog/v1"
EMBEDDING_DIMS = 8
log = logging.getLogger("imgrec.serving")


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


class PredictionLog:
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
        self.max_batch = max_batch
        self.flush_interval_s = flush_interval_s
        self.dropped = 0
        self.written = 0
        self.failed_writes = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._work, name="imgrec-predlog", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> bool:
        """Queue ``record``; returns False (and counts a drop) when the queue is full."""
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued and stop the writer thread."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _work(self) -> None:
        done = False
        while not done:
            batch: list[dict[str, Any]] = []
            deadline = time.monotonic() + self.flush_interval_s
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                batch.append(item)
            if batch:
                self._write(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=True, default=str) + "\n" for r in batch)
        now = datetime.now(timezone.utc)
        try:
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
        except Exception:  # never let logging take the server down; count and go on
            self.failed_writes += 1
            log.exception("prediction log write of %d records to %s failed", len(batch), self.uri)


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
    """One ``imgrec.predlog/v1`` record (fields documented in docs/prediction-log.md)."""
    summary, norm = embedding_summary(embedding)
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "request_id": request_id,
        "item": item,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "model": model,
        "model_version": version,
        "protocol": protocol,
        "label": label,
        "class_id": class_id,
        "confidence": round(confidence, 6),
        "latency_ms": round(latency_ms, 3),
        "embedding": summary,
        "embedding_norm": norm,
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
