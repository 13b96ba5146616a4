"""Reference profiles: what the monitor compares live traffic against.

A reference is the prediction log the server *would* have written for held-out images: each
image goes through the server's own decode, statistics and preprocessing
(:func:`serving.inputs.prepare_image`), its ONNX backend and its record builder
(:func:`serving.prediction_log.prediction_record`), so reference and traffic differ only by
the traffic. It is stored as one JSON document (``imgrec.monitor-reference/v1``) with the
model's identity and a sha256 of its content::

    doc = build_reference("runs/mnist/model", "data/mnist5k", split="val")
    save_reference(doc, "ref.json")
    ref = resolve_reference("model-store@production")   # versions/N/reference.json

The register step stores one beside every version it registers (``STORE/versions/N/
reference.json``, listed in the version's ``COMPLETE`` marker); ``imgrec monitor reference``
makes one for any model, or attaches it to an existing store version.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from imgrec import storage
from imgrec.errors import DatasetError, ImgrecError, ReferenceProfileError
from imgrec.monitoring.logs import SCHEMAS, LogCounts, to_row

REFERENCE_SCHEMA = "imgrec.monitor-reference/v1"
REFERENCE_FILE = "reference.json"
MAX_REFERENCE_IMAGES = 5000
INPUT_COLUMNS = ("brightness", "contrast", "sharpness", "width", "height", "aspect")
COLUMNS = ("label", "true_label", "confidence", *INPUT_COLUMNS, "embedding_norm", "embedding")
DETECTION_COLUMNS = (
    "labels",
    "scores",
    "box_area",
    "boxes",
    "mean_score",
    "max_score",
    "mean_box_area",
    "top_label",
    *INPUT_COLUMNS,
)


@dataclass
class Reference:
    """A loaded, checked reference: the document, the model version its traffic is logged
    under (``None`` when unknown), and where it came from."""

    doc: dict[str, Any]
    version: str | None
    uri: str

    @property
    def columns(self) -> dict[str, list[Any]]:
        return dict(self.doc["columns"])

    @property
    def n(self) -> int:
        return len(next(iter(self.doc["columns"].values()), []))

    @property
    def task(self) -> str:
        """``classify`` or ``detect`` (which signals apply)."""
        return str(self.doc.get("model", {}).get("task", "classify"))

    def describe(self) -> dict[str, Any]:
        """What ``summary.json["reference"]`` says about it."""
        model = self.doc.get("model", {})
        return {
            "uri": self.uri,
            "model_version": self.version,
            "model_created": model.get("created"),
            "architecture": model.get("architecture"),
            "n": self.n,
            "data": self.doc.get("data", {}),
        }


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=True).encode()).hexdigest()


def _held_out(
    data: str, split: str, max_images: int, seed: int, task: str
) -> tuple[list[tuple[str, str | None]], str]:
    """``[(image path, true label or None)]`` of the held-out ``split`` and the data's
    fingerprint (a classification folder/CSV, or a detection dataset for detectors)."""
    parts: dict[str, list[tuple[str, str | None]]]
    if task == "detect":
        from imgrec.data.detection import load_detection_data

        det = load_detection_data(data, check_leakage=False)
        parts = {name: [(r.path, None) for r in recs] for name, recs in det.splits.items()}
        fingerprint = det.fingerprint()
    else:
        from imgrec.data.dataset import load_classification_data

        dataset = load_classification_data(data, scan=False)
        parts = {
            name: [(r.path, dataset.classes[r.label]) for r in recs]
            for name, recs in dataset.splits.items()
        }
        fingerprint = dataset.fingerprint
    if split == "all":
        records: list[tuple[str, str | None]] = [r for part in parts.values() for r in part]
    else:
        records = parts.get(split) or []
    if not records:
        available = ", ".join(s for s, r in parts.items() if r) or "none"
        raise DatasetError(
            f"split {split!r} of {data} has no images to make the reference from",
            hint=f"pass --split with held-out images (splits with images: {available}; "
            "`all` takes every image of a folder kept out of training)",
        )
    if len(records) > max_images:
        records = random.Random(seed).sample(records, max_images)
    return records, fingerprint


def _profile_rows(
    runtime: Any, batch: list[tuple[str, str | None]], counts: LogCounts
) -> tuple[list[dict[str, Any]], int]:
    """The log rows the server would write for ``batch`` (and how many images it could not
    read), through its own decode, statistics, preprocessing, model and record builders."""
    from imgrec.serving.detection import detection_log_record
    from imgrec.serving.inputs import prepare_image
    from imgrec.serving.prediction_log import prediction_record
    from imgrec.serving.protocol import Work, topk

    prepared, skipped = [], 0
    for path, truth in batch:
        try:
            item = prepare_image(storage.read_bytes(path), runtime.pre, draft=runtime.decode_draft)
        except ImgrecError:
            item = None
        if item is None or item.error is not None or item.pixels is None:
            skipped += 1
            continue
        prepared.append((truth, item))
    if not prepared:
        return [], skipped
    outputs = runtime.run(np.stack([item.pixels for _, item in prepared]))  # type: ignore[misc]
    if runtime.task == "detect":
        work = Work("reference", [None] * len(prepared), request_id="reference")
        work.items, work.outputs = [item for _, item in prepared], list(outputs)
        records = [
            detection_log_record(work, runtime, i, "reference", 0.0) for i in range(len(prepared))
        ]
    else:
        logits, embedding = outputs
        records = []
        for i, (_, item) in enumerate(prepared):
            ids, scores = topk(logits[i], 1)
            records.append(prediction_record(
                request_id="reference", item=i, model="reference", version=runtime.version,
                stats=item.stats, label=runtime.classes[int(ids[0])], class_id=int(ids[0]),
                confidence=float(scores[0]), embedding=embedding[i], latency_ms=0.0,
                protocol="reference",
            ))  # fmt: skip
    rows = []
    for (truth, _), record in zip(prepared, records, strict=True):
        row = to_row(record, counts)
        assert row is not None  # the record builders always set the required fields
        if truth is not None:
            row["true_label"] = truth
        rows.append(row)
    return rows, skipped


def build_reference(
    model: str,
    data: str,
    *,
    split: str = "val",
    max_images: int = MAX_REFERENCE_IMAGES,
    batch_size: int = 64,
    seed: int = 0,
    version: str | None = "auto",
) -> dict[str, Any]:
    """Run the held-out ``split`` of ``data`` through the server's path for ``model`` (a
    model directory, ``STORE@V`` or a pretrained name; a classifier or a detector) and return
    the reference document. ``version="auto"``: the version the server logs for ``model``;
    ``None``: decided later (the register step stores the reference beside the version it
    creates)."""
    from imgrec.serving.served_model import load_runtime, resolve_model

    runtime = load_runtime(resolve_model(model), backend="onnx")
    task = "detect" if runtime.task == "detect" else "classify"
    images, fingerprint = _held_out(data, split, max_images, seed, task)
    counts, rows, skipped = LogCounts(), [], 0
    for start in range(0, len(images), batch_size):
        got, bad = _profile_rows(runtime, images[start : start + batch_size], counts)
        rows += got
        skipped += bad
    if len(rows) < 2:
        raise DatasetError(
            f"only {len(rows)} image(s) of split {split!r} of {data} could be used",
            hint="the reference needs held-out images the model can read",
        )
    card = runtime.card if task == "detect" else runtime.classifier.card
    doc: dict[str, Any] = {
        "schema": REFERENCE_SCHEMA,
        "created": _now(),
        "log_schema": SCHEMAS[-1],
        "model": {
            "uri": model,
            "version": runtime.version if version == "auto" else version,
            "created": card.created,
            "architecture": card.architecture,
            "classes": list(runtime.classes),
            "task": task,
        },
        "data": {
            "source": data,
            "split": split,
            "images": len(rows),
            "skipped": skipped,
            "fingerprint": fingerprint,
        },
        "columns": {
            name: [r.get(name) for r in rows]
            for name in (DETECTION_COLUMNS if task == "detect" else COLUMNS)
        },
    }
    doc["sha256"] = _digest(doc)
    return doc


def reference_bytes(doc: dict[str, Any]) -> bytes:
    """The stored form (compact JSON; NaN kept as JSON's ``NaN``)."""
    return json.dumps(doc, separators=(",", ":")).encode()


def save_reference(doc: dict[str, Any], uri: str) -> str:
    """Write ``doc`` to ``uri`` (a file, local or ``s3://``); returns ``uri``."""
    storage.write_bytes(uri, reference_bytes(doc))
    return uri


def parse_reference(data: bytes, uri: str) -> dict[str, Any]:
    """Check and decode a stored reference; ``invalid_reference`` when it is not one."""
    fix = "make it again: `imgrec monitor reference MODEL DATA --out REF`"
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ReferenceProfileError(f"reference {uri} is not valid JSON ({exc})", hint=fix) from exc
    if not isinstance(doc, dict) or doc.get("schema") != REFERENCE_SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ReferenceProfileError(
            f"{uri} is not a monitoring reference (schema {found!r}, expected "
            f"{REFERENCE_SCHEMA!r})",
            hint=fix,
        )
    if doc.get("sha256") != _digest(doc):
        raise ReferenceProfileError(
            f"reference {uri} is corrupt: its content does not match its sha256", hint=fix
        )
    return doc


def _card_of(model_uri: str) -> dict[str, Any]:
    return json.loads(storage.read_text(storage.join(model_uri, "model.json")))


def check_model(doc: dict[str, Any], card: dict[str, Any], where: str, fix: str) -> None:
    """Refuse a reference made for another model than ``card`` (row 35)."""
    model = doc.get("model", {})
    same = model.get("architecture") == card.get("architecture") and list(
        model.get("classes", [])
    ) == list(card.get("classes", []))
    if same and model.get("version") != "pretrained":
        same = model.get("created") == card.get("created")
    if not same:
        raise ReferenceProfileError(
            f"the reference at {where} was made for another model ({model.get('architecture')} "
            f"created {model.get('created')}, not {card.get('architecture')} created "
            f"{card.get('created')})",
            hint=fix,
            code="reference_mismatch",
        )


def store_version(text: str) -> tuple[Any, Any] | None:
    """``(ModelStore, ModelVersion)`` when ``text`` names a store version (``STORE@production``,
    ``STORE@N`` or a bare store: :func:`imgrec.model_store.resolve_store_ref`), else ``None``; a
    missing version or production pointer is ``reference_missing``."""
    from imgrec.errors import NotFoundError
    from imgrec.model_store import ModelStore, resolve_store_ref

    text = os.fspath(text)
    if storage.exists(storage.join(text, "model.json")):
        return None  # a model directory
    try:
        version = resolve_store_ref(text)
    except NotFoundError as exc:
        raise ReferenceProfileError(exc.message, hint=exc.hint, code="reference_missing") from exc
    if version is None:
        return None
    return ModelStore(text.rpartition("@")[0] if "@" in text else text), version


def _store_reference(store: Any, version: Any) -> Reference:
    store_uri, number = store.uri, version.version
    uri = storage.join(version.uri, REFERENCE_FILE)
    fix = f"make it: `imgrec monitor reference {store_uri}@{number} DATA`"
    if not storage.exists(uri):
        raise ReferenceProfileError(
            f"model version {number} in {store_uri} has no monitoring reference ({uri})",
            hint=fix,
            code="reference_missing",
        )
    doc = parse_reference(storage.read_bytes(uri), uri)
    check_model(doc, _card_of(version.model_uri), f"{store_uri}@{number}", fix)
    return Reference(doc, str(number), uri)


def resolve_reference(text: str) -> Reference:
    """``STORE@production`` / ``STORE@N`` / a bare store, a reference file, or a model
    directory holding ``reference.json`` -> a checked :class:`Reference`."""
    text = os.fspath(text)
    target = store_version(text)
    if target is not None:
        return _store_reference(*target)
    if storage.exists(storage.join(text, "model.json")):
        uri = storage.join(text, REFERENCE_FILE)
        fix = f"make it: `imgrec monitor reference {text} DATA --out {uri}`"
        if not storage.exists(uri):
            raise ReferenceProfileError(
                f"model {text} has no monitoring reference ({uri})",
                hint=fix,
                code="reference_missing",
            )
        doc = parse_reference(storage.read_bytes(uri), uri)
        check_model(doc, _card_of(text), text, fix)
        return Reference(doc, doc.get("model", {}).get("version"), uri)
    if not storage.exists(text) or (not storage.is_s3(text) and Path(text).is_dir()):
        raise ReferenceProfileError(
            f"reference {text} does not exist",
            hint="pass STORE@production, a reference file or a model directory; make one "
            "with `imgrec monitor reference MODEL DATA --out REF`",
            code="reference_missing",
        )
    doc = parse_reference(storage.read_bytes(text), text)
    return Reference(doc, doc.get("model", {}).get("version"), text)


def pipeline_reference(model_dir: str, manifest_dir: str) -> tuple[dict[str, bytes], str]:
    """What the register step stores beside a new version: ``({"reference.json": ...}, note)``
    from the manifest's held-out (val) images (classifiers and detectors)."""
    from imgrec.mlops.ingest import manifest_task
    from imgrec.tasks import get_task

    spec = get_task(manifest_task(manifest_dir))
    if spec.pipeline is None:
        return {}, f"No drift reference: task {spec.name!r} has no pipeline steps."
    doc = build_reference(
        model_dir, spec.pipeline.eval_data(manifest_dir), split="val", version=None
    )
    return (
        {REFERENCE_FILE: reference_bytes(doc)},
        f"Drift reference: {doc['data']['images']} held-out images (`{REFERENCE_FILE}`).",
    )
