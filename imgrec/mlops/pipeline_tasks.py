"""What differs per task in the pipeline: one ``PipelineTask`` per task, in a registry.

The steps in :mod:`imgrec.mlops.steps` look the task up here (from the ``task`` parameter at
ingest, then from the manifest's ``manifest.json``) and never branch on task names::

    PIPELINE_TASKS.get("detect").gate_metric          # "map"
    manifest_task("runs/ingest")                      # "classify" or "detect"

Training, evaluation and prediction themselves come from :func:`imgrec.tasks.get_task`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imgrec import storage
from imgrec.errors import ConfigError
from imgrec.registry import Registry


@dataclass(frozen=True)
class PipelineTask:
    """The pipeline's per-task pieces."""

    name: str
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
    """manifest folder -> the data ``get_task(name).evaluate`` reads."""
    gate_metric: str
    per_class_metric: str


PIPELINE_TASKS: Registry[PipelineTask] = Registry(
    "pipeline task", list_hint="imgrec pipeline params"
)


def manifest_task(manifest_dir: str) -> str:
    """The task a manifest folder was ingested for (``classify`` when not recorded)."""
    from imgrec.mlops.ingest import MANIFEST_META

    meta_uri = storage.join(manifest_dir, MANIFEST_META)
    if not storage.exists(meta_uri):
        return "classify"
    return str(json.loads(storage.read_text(meta_uri)).get("task", "classify"))


def parse_overrides(text: str) -> dict[str, Any]:
    """``"max_seconds=30, batch_size=4"`` -> ``{"max_seconds": 30, "batch_size": 4}``.

    Values are read as YAML scalars (numbers, booleans, strings); the trainer's config rejects
    unknown keys with suggestions.
    """
    import yaml

    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(
                f"bad training override {part!r}", hint="use key=value pairs, e.g. max_seconds=60"
            )
        out[key.strip()] = yaml.safe_load(value.strip()) if value.strip() else None
    return out


# --- classify -------------------------------------------------------------------------------
def _classify_ingest(data: str, out_dir: str, val_fraction: float, seed: int) -> dict[str, Any]:
    from imgrec.mlops.ingest import ingest

    manifest = ingest(data, val_fraction=val_fraction, seed=seed)
    manifest.write(out_dir)
    return {**manifest.meta(), "task": "classify"}


def _classify_markdown(meta: dict[str, Any]) -> str:
    from imgrec.mlops.steps import ingest_markdown

    return ingest_markdown(meta)


def _classify_validate(manifest_dir: str, out_dir: str, thresholds: Any) -> dict[str, Any]:
    from imgrec.mlops.ingest import read_manifest
    from imgrec.mlops.validate import validate_manifest

    return validate_manifest(read_manifest(manifest_dir), thresholds, out_dir=out_dir).to_dict()


def _classify_preprocess(manifest_dir: str, out_dir: str, **options: Any) -> dict[str, Any]:
    from imgrec.mlops.ingest import read_manifest
    from imgrec.mlops.preprocess import preprocess

    result = preprocess(read_manifest(manifest_dir), out_dir, **options)
    return {**result.stats, "config": result.config, "notes": result.notes}


def _classify_train_inputs(data_dir: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from imgrec.mlops.ingest import TRAIN_CSV

    return storage.join(data_dir, TRAIN_CSV), payload


def _classify_eval_data(manifest_dir: str) -> str:
    from imgrec.mlops.ingest import TRAIN_CSV

    return storage.join(manifest_dir, TRAIN_CSV)


# --- detect ---------------------------------------------------------------------------------
def _detect_ingest(data: str, out_dir: str, val_fraction: float, seed: int) -> dict[str, Any]:
    from imgrec.mlops.detection import ingest_detection

    manifest = ingest_detection(data)  # splits come from the dataset's own files
    manifest.write(out_dir)
    return manifest.meta()


def _detect_markdown(meta: dict[str, Any]) -> str:
    from imgrec.mlops.detection import detection_markdown

    return detection_markdown(meta)


def _detect_validate(manifest_dir: str, out_dir: str, thresholds: Any) -> dict[str, Any]:
    from imgrec.mlops.detection import read_detection_manifest
    from imgrec.mlops.validate_detect import validate_detection_manifest

    manifest = read_detection_manifest(manifest_dir)
    return validate_detection_manifest(manifest, thresholds, out_dir=out_dir).to_dict()


def _detect_preprocess(
    manifest_dir: str, out_dir: str, *, device: str = "cpu", workers: int = 2, **options: Any
) -> dict[str, Any]:
    from imgrec.mlops.detection import preprocess_detection, read_detection_manifest

    return preprocess_detection(read_detection_manifest(manifest_dir), out_dir, **options)


def _detect_train_inputs(data_dir: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from imgrec.errors import DatasetError
    from imgrec.mlops.detection import ingest_detection

    now = ingest_detection(payload["data"], verify=False).fingerprint
    if now != payload["fingerprint"]:
        raise DatasetError(
            f"{payload['data']} changed after it was validated ({payload['fingerprint']} -> {now})",
            hint="run the pipeline again so the new data are ingested and validated",
        )
    return str(payload["data"]), dict(payload["config"])


def _detect_eval_data(manifest_dir: str) -> str:
    from imgrec.mlops.detection import read_detection_manifest

    return read_detection_manifest(manifest_dir).source


PIPELINE_TASKS.add(
    "classify",
    PipelineTask(
        "classify",
        ingest=_classify_ingest,
        markdown=_classify_markdown,
        validate=_classify_validate,
        preprocess=_classify_preprocess,
        train_inputs=_classify_train_inputs,
        eval_data=_classify_eval_data,
        gate_metric="accuracy",
        per_class_metric="recall",
    ),
)
PIPELINE_TASKS.add(
    "detect",
    PipelineTask(
        "detect",
        ingest=_detect_ingest,
        markdown=_detect_markdown,
        validate=_detect_validate,
        preprocess=_detect_preprocess,
        train_inputs=_detect_train_inputs,
        eval_data=_detect_eval_data,
        gate_metric="map",
        per_class_metric="ap",
    ),
)
