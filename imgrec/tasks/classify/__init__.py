"""Image classification, registered as the ``classify`` task: its whole ``TaskSpec``.

Training, evaluation, prediction and the pipeline steps load lazily so that importing the
task stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from imgrec.tasks import TASKS, TaskSpec
from imgrec.tasks.classify.pipeline import STEPS

HEADLINE_METRICS = ("accuracy", "top5", "f1_macro", "ece")
GATE_METRICS = (
    "accuracy",
    "top5",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "ece",
)


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
    TASKS.add(
        "classify",
        TaskSpec(
            "classify",
            train=_train,
            evaluate=_evaluate,
            predict=_predict,
            pipeline=STEPS,
            headline_metrics=HEADLINE_METRICS,
            gate_metrics=GATE_METRICS,
            lower_is_better=("ece",),
            gate_metric="accuracy",
            per_class_metrics=("recall", "precision", "f1"),
            per_class_metric="recall",
            serves="labels",
            distributed=True,
        ),
    )
