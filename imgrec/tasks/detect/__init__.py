"""Object detection, registered as the ``detect`` task: its whole ``TaskSpec``.

Data: COCO folders, YOLO ``data.yaml`` or VOC folders (``imgrec.data.detection``); models:
``imgrec.models.detectors``; metrics: ``imgrec.evaluation.detection`` (COCO mAP). The heavy
modules load on first use so that importing the task stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgrec.tasks import TASKS, TaskSpec
from imgrec.tasks.detect.pipeline import STEPS

HEADLINE_METRICS = ("map", "map50", "map75", "precision", "recall")
# Files that mark a detection dataset: a YOLO data.yaml, COCO annotations/, VOC Annotations/.
DATA_MARKERS = ("data.yaml", "annotations", "Annotations")


def recognizes(data: str) -> bool:
    """A YOLO ``*.yaml``, or a folder holding ``data.yaml``, ``annotations/`` (COCO) or
    ``Annotations/`` (VOC)."""
    path = Path(data)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return True
    return path.is_dir() and any((path / marker).exists() for marker in DATA_MARKERS)


def _train(data: Any, **options: Any) -> Any:
    from imgrec.tasks.detect.train import train

    return train(data, **options)


def _evaluate(model: Any, data: Any, **options: Any) -> dict[str, Any]:
    from imgrec.tasks.detect.evaluate import evaluate

    return evaluate(model, data, **options)


def _predict(sources: Any, **options: Any) -> Iterator[dict[str, Any]]:
    from imgrec.tasks.detect.predict import predict

    return predict(sources, **options)


if "detect" not in TASKS:
    TASKS.add(
        "detect",
        TaskSpec(
            "detect",
            train=_train,
            evaluate=_evaluate,
            predict=_predict,
            pipeline=STEPS,
            recognizes=recognizes,
            headline_metrics=HEADLINE_METRICS,
            gate_metrics=("map", "map50", "map75", "precision", "recall", "f1"),
            gate_metric="map",
            per_class_metrics=("ap", "ap50", "precision", "recall"),
            per_class_metric="ap",
            serves="boxes",
            distributed=True,
        ),
    )
