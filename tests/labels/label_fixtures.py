"""Helpers of the label tests: captured images, a tiny model in a store, Label Studio exports
shaped exactly like its documented JSON export (https://labelstud.io/guide/task_format)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgrec.data.captures import capture_key, fingerprint

CLASSES = ["0", "1", "2"]


def png(seed: int, size: int = 20) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def write_captures(root: Path, n: int) -> list[str]:
    """``n`` captured images under ``root`` (the serve --capture layout); their fingerprints."""
    fps = []
    for i in range(n):
        data = png(i)
        fp = fingerprint(data)
        target = root / capture_key(fp, data)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        fps.append(fp)
    return fps


def store_with_model(root: Path) -> str:
    """A model store whose production version is a tiny untrained small_resnet on CLASSES."""
    import torch

    from imgrec.model_store import ModelStore
    from imgrec.models.architectures import build_model
    from imgrec.models.card import ModelCard, Preprocessing, save_model_dir

    torch.manual_seed(0)
    kw = {"stem_width": 8, "widths": [8, 16], "depths": [1, 1]}
    card = ModelCard(
        architecture="small_resnet",
        arch_kwargs=kw,
        classes=list(CLASSES),
        preprocessing=Preprocessing(
            input_size=20, resize_size=20, mean=(0.5,) * 3, std=(0.25,) * 3
        ),
    )
    model_dir = save_model_dir(build_model("small_resnet", 3, **kw), card, root / "model")
    ModelStore(str(root / "store")).register(model_dir, metadata={})
    return str(root / "store")


def annotation(result: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {
        "id": kw.pop("id", 1),
        "completed_by": 1,
        "result": result,
        "was_cancelled": kw.pop("was_cancelled", False),
        "ground_truth": kw.pop("ground_truth", False),
        "created_at": kw.pop("created_at", "2026-11-30T10:00:00.000000Z"),
        "updated_at": kw.pop("updated_at", "2026-11-30T10:00:00.000000Z"),
        "lead_time": 2.5,
        "task": kw.pop("task", 1),
    }


def choice(label: str) -> dict[str, Any]:
    return {
        "id": "abc123",
        "type": "choices",
        "value": {"choices": [label]},
        "origin": "manual",
        "to_name": "image",
        "from_name": "label",
    }


def rectangle(x: float, y: float, w: float, h: float, label: str) -> dict[str, Any]:
    return {
        "id": "r1",
        "type": "rectanglelabels",
        "value": {
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "rotation": 0,
            "rectanglelabels": [label],
        },
        "origin": "manual",
        "to_name": "image",
        "from_name": "box",
        "image_rotation": 0,
        "original_width": 20,
        "original_height": 20,
    }


def export_task(task_id: int, fp: str, annotations: list[dict[str, Any]]) -> dict[str, Any]:
    digits = fp.split(":")[1]
    return {
        "id": task_id,
        "annotations": annotations,
        "file_upload": None,
        "drafts": [],
        "predictions": [],
        "data": {"image": f"/data/local-files/?d={digits[:2]}/{digits}.png", "fingerprint": fp},
        "meta": {},
        "created_at": "2026-11-30T09:00:00.000000Z",
        "updated_at": "2026-11-30T10:00:00.000000Z",
        "inner_id": task_id,
        "total_annotations": len(annotations),
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 1,
        "updated_by": 1,
        "comment_authors": [],
    }
