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
from monitoring.logs import SCHEMAS, LogCounts, to_row

REFERENCE_SCHEMA = "imgrec.monitor-reference/v1"
REFERENCE_FILE = "reference.json"
MAX_REFERENCE_IMAGES = 5000
COLUMNS = (
    "label",
    "true_label",
    "confidence",
    "brightness",
    "contrast",
    "sharpness",
    "width",
    "height",
    "aspect",
    "embedding_norm",
    "embedding",
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
        return len(self.doc["columns"]["label"])

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


def _held_out(data: str, split: str, max_images: int, seed: int) -> tuple[list[Any], Any]:
    from imgrec.data.dataset import load_classification_data

    dataset = load_classification_data(data, scan=False)
    if split == "all":
        records = [r for part in dataset.splits.values() for r in part]
    else:
        records = dataset.splits.get(split) or []
    if not records:
        available = ", ".join(s for s, r in dataset.splits.items() if r) or "none"
        raise DatasetError(
            f"split {split!r} of {data} has no images to make the reference from",
            hint=f"pass --split with held-out images (splits with images: {available}; "
            "`all` takes every image of a folder kept out of training)",
        )
    if len(records) > max_images:
        records = random.Random(seed).sample(records, max_images)
    return records, dataset


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
    model directory, ``STORE@V`` or a pretrained name) and return the reference document.
    ``version="auto"``: the version the server logs for ``model``; ``None``: decided later
    (the register step stores the reference beside the version it creates)."""
    from serving.inputs import prepare_image
    from serving.prediction_log import prediction_record
    from serving.protocol import topk
    from serving.runtime import Runtime, load_runtime, resolve_model

    ref = resolve_model(model)
    runtime = load_runtime(ref, backend="onnx")
    if not isinstance(runtime, Runtime):  # a detector: the server logs no records for it yet
        raise ReferenceProfileError(
            f"{model} is not a classifier; references are made for classifiers",
            hint="see docs/monitoring.md for what is monitored",
            code="unsupported_task",
        )
    images, dataset = _held_out(data, split, max_images, seed)
    counts, rows, skipped = LogCounts(), [], 0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        prepared = []
        for image in batch:
            try:
                item = prepare_image(
                    storage.read_bytes(image.path), runtime.pre, draft=runtime.decode_draft
                )
            except ImgrecError:
                item = None
            if item is None or item.error is not None or item.pixels is None:
                skipped += 1
                continue
            prepared.append((image, item))
        if not prepared:
            continue
        logits, embedding = runtime.run(np.stack([item.pixels for _, item in prepared]))  # type: ignore[misc]
        for i, (image, item) in enumerate(prepared):
            ids, scores = topk(logits[i], 1)
            record = prediction_record(
                request_id="reference", item=i, model="reference", version=runtime.version,
                stats=item.stats, label=runtime.classes[int(ids[0])], class_id=int(ids[0]),
                confidence=float(scores[0]), embedding=embedding[i], latency_ms=0.0,
                protocol="reference",
            )  # fmt: skip
            row = to_row(record, counts)
            assert row is not None  # the record builder always sets the required fields
            row["true_label"] = dataset.classes[image.label]
            rows.append(row)
    if len(rows) < 2:
        raise DatasetError(
            f"only {len(rows)} image(s) of split {split!r} of {data} could be used",
            hint="the reference needs held-out images the model can read",
        )
    card = runtime.classifier.card
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
            "task": "classify",
        },
        "data": {
            "source": data,
            "split": split,
            "images": len(rows),
            "skipped": skipped,
            "fingerprint": dataset.fingerprint,
        },
        "columns": {name: [r.get(name) for r in rows] for name in COLUMNS},
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


def store_target(text: str) -> tuple[Any, int] | None:
    """``(ModelStore, version number)`` when ``text`` names a store version
    (``STORE@production``, ``STORE@N`` or a bare store), else ``None``."""
    from imgrec.store import ModelStore

    text = os.fspath(text)
    store_like = "@" in text or storage.exists(storage.join(text, "production.json"))
    if not store_like or storage.exists(storage.join(text, "model.json")):
        return None
    store_uri, _, selector = text.rpartition("@") if "@" in text else (text, "", "")
    store = ModelStore(store_uri)
    if selector in ("", "production"):
        number = store.production_version()
        if number is None:
            raise ReferenceProfileError(
                f"model store {store_uri} has no production version",
                hint=f"name a version: {store_uri}@N",
                code="reference_missing",
            )
    elif selector.isdigit():
        number = int(selector)
    else:
        raise ReferenceProfileError(
            f"unknown version selector {selector!r} in {text!r}",
            hint="use STORE@production or STORE@<number>",
        )
    return store, number


def _store_reference(text: str) -> Reference:
    target = store_target(text)
    assert target is not None
    store, number = target
    store_uri = store.uri
    version = store.get(number)
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
    if store_target(text) is not None:
        return _store_reference(text)
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
    from the manifest's held-out (val) images; models the monitor cannot profile yet (detectors)
    get none, and the note says so."""
    from imgrec.mlops.ingest import manifest_task
    from imgrec.tasks import get_task

    spec = get_task(manifest_task(manifest_dir))
    if spec.pipeline is None:
        return {}, f"No drift reference: task {spec.name!r} has no pipeline steps."
    try:
        doc = build_reference(
            model_dir, spec.pipeline.eval_data(manifest_dir), split="val", version=None
        )
    except ReferenceProfileError as exc:
        if exc.code != "unsupported_task":
            raise
        return {}, f"No drift reference: {exc.message}."
    return (
        {REFERENCE_FILE: reference_bytes(doc)},
        f"Drift reference: {doc['data']['images']} held-out images (`{REFERENCE_FILE}`).",
    )
