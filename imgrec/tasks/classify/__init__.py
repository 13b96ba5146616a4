"""Image classification: ``train``, ``evaluate``, ``predict`` registered as the ``classify`` task.

Evaluation and prediction load lazily so that importing the task stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from imgrec.tasks import TASKS, TaskSpec


def _train(data: Any, **options: Any) -> Any:
    from imgrec.tasks.classify.train import train

    return train(data, **options)


def _evaluate(model: Any, data: Any, **options: Any) -> dict[str, Any]:
    from imgrec.tasks.classify.evaluate import evaluate

    return evaluate(model, data, **options)


def _predict(sources: Any, **options: Any) -> Iterator[dict[str, Any]]:
    from imgrec.tasks.classify.predict import predict

    return predict(sources, **options)  # type: ignore[no-any-return]


if "classify" not in TASKS:
    TASKS.add("classify", TaskSpec("classify", train=_train, evaluate=_evaluate, predict=_predict))
