"""Object detection: ``train``, ``evaluate``, ``predict`` registered as the ``detect`` task.

Data: COCO folders, YOLO ``data.yaml`` or VOC folders (``imgrec.data.detection``); models:
``imgrec.models.detectors``; metrics: ``imgrec.evaluation.detection`` (COCO mAP). The heavy
modules load on first use so that importing the task stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from imgrec.tasks import TASKS, TaskSpec


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
    TASKS.add("detect", TaskSpec("detect", train=_train, evaluate=_evaluate, predict=_predict))
