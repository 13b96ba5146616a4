"""Captured images -> Label Studio tasks with the model's predictions, least certain first.

::

    summary = export_tasks("captures/", "model-store@production", "labels/tasks.json")
    # labels/tasks.json (import into a project), labels/label_config.xml (its interface)

Certainty (the prediction's ``score``, which Label Studio's Data Manager sorts by): a
classifier's top-1 probability; a detector's mean box score (no box: 0). Tasks are written in
increasing certainty, so annotators who take them in order label the most informative images
first (uncertainty sampling).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

from imgrec import storage
from imgrec.data.captures import captured_images
from imgrec.errors import LabelError
from imgrec.labels.labelstudio import choice_result, label_config, rectangle_result

LOCAL_FILES_URL = "/data/local-files/?d="


def _image_url(path: str, url_prefix: str | None, root: str) -> str:
    """What Label Studio loads: ``url_prefix`` + the path under the capture folder; by
    default an ``s3://`` URI as is (a connected S3 source storage resolves it), a local file
    as Label Studio's local-files URL relative to ``root`` (its document root)."""
    rel = path[len(root.rstrip("/")) + 1 :] if path.startswith(root) else os.path.basename(path)
    if url_prefix is not None:
        return url_prefix + rel.replace(os.sep, "/")
    if storage.is_s3(path):
        return path
    return LOCAL_FILES_URL + os.path.relpath(path, root).replace(os.sep, "/")


def _oriented_size(path: str) -> tuple[int, int]:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(storage.read_bytes(path))) as im:
        return ImageOps.exif_transpose(im).size


def _prediction(record: dict[str, Any], path: str, version: str) -> dict[str, Any]:
    if "detections" in record:
        width, height = _oriented_size(path)
        dets = record["detections"]
        result = [
            rectangle_result(d["box"], d["label"], d["score"], width, height, i)
            for i, d in enumerate(dets)
        ]
        score = sum(d["score"] for d in dets) / len(dets) if dets else 0.0
    else:
        top = record["predictions"][0]
        result, score = [choice_result(top["label"], top["score"])], float(top["score"])
    return {"model_version": version, "score": round(score, 6), "result": result}


def export_tasks(
    capture: str,
    model: str,
    out: str,
    *,
    limit: int | None = None,
    url_prefix: str | None = None,
    document_root: str | None = None,
) -> dict[str, Any]:
    """Predict every captured image and write Label Studio tasks to ``out`` (plus
    ``label_config.xml`` beside it). Returns ``{"tasks", "failed", "out", "config",
    "task"}``. ``limit`` keeps the least certain ``limit`` images."""
    from imgrec.model_store import resolve_store_ref
    from imgrec.models.card import read_card
    from imgrec.tasks import get_task

    stored = resolve_store_ref(model)
    model_dir = stored.model_uri if stored is not None else model
    version = str(stored.version) if stored is not None else os.path.basename(model_dir)
    card = read_card(model_dir)
    images = captured_images(capture)
    if not images:
        raise LabelError(f"no captured images under {capture}", hint="serve with --capture first")
    by_path = {path: fp for fp, path in images.items()}
    root = document_root or (capture if storage.is_s3(capture) else os.path.abspath(capture))
    tasks: list[dict[str, Any]] = []
    failed = 0
    for record in get_task(card.task).predict(list(by_path), model=model_dir, top_k=1):
        if "error" in record:
            failed += 1
            continue
        path = str(record["source"])
        local = path if storage.is_s3(path) else os.path.abspath(path)
        prediction = _prediction(record, path, version)
        tasks.append(
            {
                "data": {
                    "image": _image_url(local, url_prefix, root),
                    "fingerprint": by_path[path],
                },
                "predictions": [prediction],
            }
        )
    tasks.sort(key=lambda t: (t["predictions"][0]["score"], t["data"]["fingerprint"]))
    if limit is not None:
        tasks = tasks[:limit]
    storage.write_text(out, json.dumps(tasks, indent=1))
    config = storage.join(storage.parent(out), "label_config.xml")
    storage.write_text(config, label_config(list(card.classes), card.task))
    return {"tasks": len(tasks), "failed": failed, "out": out, "config": config, "task": card.task}
