"""Task registry: each task (classify, detect) provides train / evaluate / predict.

The CLI and the pipeline never branch on task names; they look the task up here::

    task = get_task("classify")
    result = task.train("data/mnist5k", epochs=5)

A task package registers itself when imported; ``get_task`` imports it on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from imgrec.registry import Registry


@dataclass(frozen=True)
class TaskSpec:
    """What a task offers. Signatures are documented in docs/design.md."""

    name: str
    train: Callable[..., Any]  # (data, **options) -> TrainResult
    evaluate: Callable[..., dict[str, Any]]  # (model, data, *, split="val") -> metrics dict
    predict: Callable[..., Iterator[dict[str, Any]]]  # (sources, *, model, ...) -> JSON records


TASKS: Registry[TaskSpec] = Registry("task", list_hint="imgrec train --help")

# Packages that register a task when imported.
_TASK_PACKAGES = {"classify": "imgrec.tasks.classify", "detect": "imgrec.tasks.detect"}


def get_task(name: str) -> TaskSpec:
    """Return the task called ``name`` (``classify`` or ``detect``)."""
    if name not in TASKS and name in _TASK_PACKAGES:
        importlib.import_module(_TASK_PACKAGES[name])
    return TASKS.get(name)


def task_names() -> list[str]:
    return sorted(_TASK_PACKAGES)
