"""Task registry: a task (classify, detect, ...) is one :class:`TaskSpec` registration.

The CLI, the pipeline steps, the gate and the servers never branch on task names; they look the
task up here and read what they need from its spec::

    task = get_task("classify")
    result = task.train("data/mnist5k", epochs=5)
    task.gate_metric, task.headline_metrics, task.serves        # "accuracy", (...), "labels"

A task package registers itself when imported (``TASKS.add(name, TaskSpec(...))``). The
built-in ones are imported on first use from ``_BUILTIN``; a task shipped elsewhere registers
through the ``imgrec.tasks`` entry-point group (``name = "package.module"``), found the same
way, in this process and in every pipeline step's. docs/extending.md walks through adding one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from imgrec.registry import Registry

ENTRY_POINT_GROUP = "imgrec.tasks"


@dataclass(frozen=True)
class PipelineSteps:
    """What the pipeline's steps (``imgrec.mlops.steps``) do differently for a task."""

    ingest: Callable[[str, str, float, int], dict[str, Any]]
    """(data URI, manifest folder, val_fraction, seed) -> ``manifest.json`` content."""
    markdown: Callable[[dict[str, Any]], str]
    """``manifest.json`` content -> the ingest step's Markdown summary."""
    validate: Callable[[str, str, Any], dict[str, Any]]
    """(manifest folder, report folder, ValidationThresholds) -> the report dict."""
    preprocess: Callable[..., dict[str, Any]]
    """(manifest folder, out folder, model=, img_size=, epochs=, device=, **overrides)."""
    train_inputs: Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]
    """(preprocess folder, ``train_config.json``) -> (data the trainer reads, its config)."""
    eval_data: Callable[[str], str]
    """manifest folder -> the data ``evaluate`` reads."""


@dataclass(frozen=True)
class TaskSpec:
    """Everything the layers above need to know about a task. Signatures: docs/design.md."""

    name: str
    train: Callable[..., Any]  # (data, **options) -> imgrec.engine.run.TrainResult
    evaluate: Callable[..., dict[str, Any]]  # (model, data, *, split="val") -> metrics dict
    predict: Callable[..., Iterator[dict[str, Any]]]  # (sources, *, model, ...) -> JSON records
    pipeline: PipelineSteps | None = None  # None: the task has no pipeline steps
    recognizes: Callable[[str], bool] = lambda data: False
    """``imgrec train DATA`` without ``--task``: does DATA look like this task's format?"""
    headline_metrics: tuple[str, ...] = ()  # printed by ``imgrec train`` and the pipeline
    gate_metrics: tuple[str, ...] = ()  # scalar ``evaluate`` figures the gate may decide on
    lower_is_better: tuple[str, ...] = ()  # those of ``gate_metrics`` where less is better
    gate_metric: str = ""  # the pipeline gate's default deciding metric
    per_class_metrics: tuple[str, ...] = ()  # ``evaluate``'s ``per_class`` figures
    per_class_metric: str = ""  # the gate's default per-class regression check
    serves: str = "labels"  # the served output kind: "labels" (a classifier head) or "boxes"
    distributed: bool = False  # its ``train`` runs data-parallel under torchrun (--nproc N)


TASKS: Registry[TaskSpec] = Registry("task", list_hint="imgrec train --help")

# The built-in tasks' packages, imported on first use (each registers its TaskSpec).
_BUILTIN = {"classify": "imgrec.tasks.classify", "detect": "imgrec.tasks.detect"}


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def get_task(name: str) -> TaskSpec:
    """Return the task called ``name`` (``classify``, ``detect`` or a plugin's)."""
    if name not in TASKS:
        module = _BUILTIN.get(name) or _entry_points().get(name)
        for found in [module] if module else list(_BUILTIN.values()):  # all: for suggestions
            importlib.import_module(found)
    return TASKS.get(name)


def task_names() -> list[str]:
    """Every task that can be loaded: built in, registered, or offered by an entry point."""
    return sorted({*_BUILTIN, *TASKS.names(), *_entry_points()})


def all_tasks() -> list[TaskSpec]:
    """The spec of every task in :func:`task_names`, loading them."""
    return [get_task(name) for name in task_names()]


def task_for_data(data: str) -> str:
    """The task whose ``recognizes`` accepts ``data``; ``classify`` when none does."""
    for spec in all_tasks():
        if spec.name != "classify" and spec.recognizes(data):
            return spec.name
    return "classify"
