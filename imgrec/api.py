"""The Python API, mirroring the CLI: every call finds the task like the command does.

``train`` takes the task from ``task=`` or from the data (a YOLO ``data.yaml`` is detection);
``evaluate`` and ``predict`` take it from the model card, so a detector's ``predict`` accepts
the detector options the CLI offers (``score_threshold``/``--conf``, ``iou_threshold``/
``--iou``, ``max_detections``/``--max-det``)::

    import imgrec

    imgrec.train("data/digits-detect/data.yaml", epochs=10, out="runs/d")   # detection
    for record in imgrec.predict(["street.jpg"], model="runs/d/model", score_threshold=0.5):
        print(record["detections"])
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgrec.tasks import TaskSpec, get_task, task_for_data

DEFAULT_MODEL = "efficientnet_lite0"


def task_of_model(model: Any) -> TaskSpec:
    """The ``TaskSpec`` of MODEL: the card's ``task`` for a model directory (local or
    ``s3://``); a pretrained name or a loaded classifier is ``classify``."""
    from imgrec import storage
    from imgrec.models.card import read_card

    if not isinstance(model, (str, os.PathLike)):
        return get_task(str(getattr(getattr(model, "card", None), "task", "classify")))
    text = os.fspath(model)
    is_dir = storage.is_s3(text) or Path(text).exists() or "/" in text or os.sep in text
    return get_task(read_card(text).task if is_dir else "classify")


def train(data: Any, *, task: str | None = None, **options: Any) -> Any:
    """Train on ``data``; returns an ``imgrec.engine.run.TrainResult``. See ``imgrec train``."""
    spec = get_task(task or (task_for_data(os.fspath(data)) if _is_path(data) else "classify"))
    return spec.train(data, **options)


def evaluate(model: Any, data: Any, **options: Any) -> dict[str, Any]:
    """Metrics of ``model`` on ``data`` (the ``imgrec evaluate --json`` dict)."""
    return task_of_model(model).evaluate(model, data, **options)


def predict(
    sources: Any, *, model: Any = DEFAULT_MODEL, **options: Any
) -> Iterator[dict[str, Any]]:
    """One JSON-able record per image (``imgrec predict --json`` lines), in source order."""
    return task_of_model(model).predict(sources, model=model, **options)


def _is_path(data: Any) -> bool:
    return isinstance(data, (str, os.PathLike))
