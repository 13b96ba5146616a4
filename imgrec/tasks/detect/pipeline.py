"""The detection task's pipeline steps (``TaskSpec.pipeline``): the dataset's own splits are
kept, the detection suite validates boxes, preprocessing passes the images through."""

from __future__ import annotations

from typing import Any

from imgrec.tasks import PipelineSteps


def ingest(data: str, out_dir: str, val_fraction: float, seed: int) -> dict[str, Any]:
    from imgrec.mlops.detect_steps import ingest_detection

    manifest = ingest_detection(data)  # splits come from the dataset's own files
    manifest.write(out_dir)
    return manifest.meta()


def markdown(meta: dict[str, Any]) -> str:
    from imgrec.mlops.detect_steps import detection_markdown

    return detection_markdown(meta)


def validate(manifest_dir: str, out_dir: str, thresholds: Any) -> dict[str, Any]:
    from imgrec.mlops.detect_steps import read_detection_manifest
    from imgrec.mlops.validate_detect import validate_detection_manifest

    manifest = read_detection_manifest(manifest_dir)
    return validate_detection_manifest(manifest, thresholds, out_dir=out_dir).to_dict()


def preprocess(
    manifest_dir: str, out_dir: str, *, device: str = "cpu", workers: int = 2, **options: Any
) -> dict[str, Any]:
    from imgrec.mlops.detect_steps import preprocess_detection, read_detection_manifest

    return preprocess_detection(read_detection_manifest(manifest_dir), out_dir, **options)


def train_inputs(data_dir: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from imgrec.errors import DatasetError
    from imgrec.mlops.detect_steps import ingest_detection

    now = ingest_detection(payload["data"], verify=False).fingerprint
    if now != payload["fingerprint"]:
        raise DatasetError(
            f"{payload['data']} changed after it was validated ({payload['fingerprint']} -> {now})",
            hint="run the pipeline again so the new data are ingested and validated",
        )
    return str(payload["data"]), dict(payload["config"])


def eval_data(manifest_dir: str) -> str:
    from imgrec.mlops.detect_steps import read_detection_manifest

    return read_detection_manifest(manifest_dir).source


STEPS = PipelineSteps(
    ingest=ingest,
    markdown=markdown,
    validate=validate,
    preprocess=preprocess,
    train_inputs=train_inputs,
    eval_data=eval_data,
)
