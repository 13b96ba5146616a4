"""The classification task's pipeline steps (``TaskSpec.pipeline``): ingest to a CSV
manifest, the Great Expectations suite, image shrinking with the resolved recipe."""

from __future__ import annotations

from typing import Any

from imgrec import storage
from imgrec.tasks import PipelineSteps


def ingest(data: str, out_dir: str, val_fraction: float, seed: int) -> dict[str, Any]:
    from imgrec.mlops.ingest import ingest as ingest_images

    manifest = ingest_images(data, val_fraction=val_fraction, seed=seed)
    manifest.write(out_dir)
    return manifest.meta()


def markdown(meta: dict[str, Any]) -> str:
    from imgrec.mlops.ingest import ingest_markdown

    return ingest_markdown(meta)


def validate(manifest_dir: str, out_dir: str, thresholds: Any) -> dict[str, Any]:
    from imgrec.mlops.ingest import read_manifest
    from imgrec.mlops.validate import validate_manifest

    return validate_manifest(read_manifest(manifest_dir), thresholds, out_dir=out_dir).to_dict()


def preprocess(manifest_dir: str, out_dir: str, **options: Any) -> dict[str, Any]:
    from imgrec.mlops.ingest import read_manifest
    from imgrec.mlops.new_data import epoch_rows
    from imgrec.mlops.preprocess import preprocess as shrink

    def epoch(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
        return epoch_rows(rows, manifest_dir)

    result = shrink(read_manifest(manifest_dir), out_dir, epoch=epoch, **options)
    return {**result.stats, "config": result.config, "notes": result.notes}


def train_inputs(data_dir: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from imgrec.mlops.ingest import TRAIN_CSV

    payload = dict(payload)
    shards = payload.pop("shards", None)  # written by preprocess with shards=...: streamed
    return (shards or storage.join(data_dir, TRAIN_CSV)), payload


def eval_data(manifest_dir: str) -> str:
    from imgrec.mlops.ingest import TRAIN_CSV

    return storage.join(manifest_dir, TRAIN_CSV)


STEPS = PipelineSteps(
    ingest=ingest,
    markdown=markdown,
    validate=validate,
    preprocess=preprocess,
    train_inputs=train_inputs,
    eval_data=eval_data,
)
