"""The prediction log writer: batched JSONL to a local folder and to S3 (moto server)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgrec.serving.inputs import image_stats
from imgrec.serving.prediction_log import (
    SCHEMA,
    PredictionLog,
    embedding_summary,
    prediction_record,
)


def _record(i: int) -> dict:
    from PIL import Image

    img = Image.new("RGB", (40, 30), (200, 100, 50))
    return prediction_record(
        request_id=f"r{i}", item=0, model="imgrec", version="3",
        stats=image_stats(b"bytes", img), label="tabby", class_id=281, confidence=0.9,
        embedding=np.arange(16, dtype=np.float32), latency_ms=12.5, protocol="v1",
    )  # fmt: skip


def test_local_folder_gets_jsonl(tmp_path: Path) -> None:
    log = PredictionLog(str(tmp_path / "logs"), flush_interval_s=0.05)
    for i in range(25):
        assert log.append(_record(i))
    log.close()
    [path] = list((tmp_path / "logs").glob("predictions-*.jsonl"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(25)]
    first = rows[0]
    assert first["schema"] == SCHEMA and (first["width"], first["height"]) == (40, 30)
    assert first["contrast"] == 0.0 and first["sharpness"] == 0.0  # a flat image
    assert log.written == 25 and log.dropped == 0


def test_embedding_summary_is_fixed_and_scale_free() -> None:
    e = np.random.default_rng(1).standard_normal(1280)
    a, norm = embedding_summary(e)
    b, norm2 = embedding_summary(3 * e)
    assert a == b and len(a) == 8 and norm2 == pytest.approx(3 * norm, rel=1e-3)


@pytest.mark.s3
def test_s3_prefix_gets_one_object_per_flush(make_bucket) -> None:  # type: ignore[no-untyped-def]
    from imgrec import storage

    bucket = make_bucket()
    log = PredictionLog(f"s3://{bucket}/predlog", flush_interval_s=0.05)
    for i in range(10):
        log.append(_record(i))
    log.close()
    keys = storage.list_files(f"s3://{bucket}/predlog", suffixes=[".jsonl"])
    rows = [json.loads(line) for k in keys for line in storage.read_text(k).splitlines()]
    assert sorted(r["request_id"] for r in rows) == sorted(f"r{i}" for i in range(10))
    assert log.failed_writes == 0
