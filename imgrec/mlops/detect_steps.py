"""The pipeline's detection steps: a detection manifest (ingest) and the pass-through preprocess.

A detection dataset (COCO folder, YOLO ``data.yaml`` or VOC folder; the format is detected by
:mod:`imgrec.data.detection`) becomes a manifest folder with ``manifest.csv`` (one row per
image: ``path``, ``split``, ``sha256``, ``width``, ``height``, ``n_boxes``, ``labels`` (the box
class names joined by ``;``), ``readable``, ``error``), ``label_issues.json`` (what the reader
found: BAD-INPUTS rows 12-14, with file and line) and ``manifest.json`` (``task: detect``, the
source, the classes and the ``fingerprint``)::

    manifest = ingest_detection("data/digits-detect")
    manifest.write("runs/ingest")
    manifest.fingerprint        # sha256 of (split, content hash, boxes, labels) of every image

The manifest is read with leakage checks off, so an image in both train and val stays in
both splits here and the validate step reports it (the trainer's reader would silently drop
the val copy). Train and evaluate read the source dataset itself (detection data are local
folders); the train step checks that it still has the fingerprint that was validated.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from imgrec import storage
from imgrec.errors import DatasetError

DETECTION_MANIFEST_FORMAT = "imgrec.detection-manifest/v1"
DETECTION_COLUMNS = (
    "path",
    "split",
    "sha256",
    "width",
    "height",
    "n_boxes",
    "labels",
    "readable",
    "error",
)
LABEL_ISSUES = "label_issues.json"


@dataclass
class DetectionManifest:
    """Per-image rows of a detection dataset, the reader's label issues and the source."""

    rows: list[dict[str, Any]]
    source: str
    classes: list[str]
    layout: str = ""
    created: str = ""
    issues: dict[str, Any] = field(default_factory=dict)
    boxes_digest: dict[str, str] = field(default_factory=dict)  # path -> digest of its boxes

    @property
    def fingerprint(self) -> str:
        """``sha256:`` of sorted (split, content hash, boxes digest) triples plus the classes."""
        lines = sorted(
            f"{r['split']}\t{r['sha256']}\t{self.boxes_digest.get(r['path'], '')}"
            for r in self.rows
        )
        lines.append("classes\t" + "\t".join(self.classes))
        return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()

    @property
    def version(self) -> str:
        """A short content version (the first 12 hex digits of the fingerprint)."""
        return self.fingerprint.split(":", 1)[1][:12]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {class: number of boxes}}`` over readable images (zero-filled)."""
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            per = out.setdefault(r["split"], dict.fromkeys(self.classes, 0))
            for name in filter(None, str(r["labels"]).split(";")):
                per[name] = per.get(name, 0) + 1
        return out

    def meta(self) -> dict[str, Any]:
        """The ``manifest.json`` content."""
        return {
            "format": DETECTION_MANIFEST_FORMAT,
            "task": "detect",
            "source": self.source,
            "layout": self.layout,
            "created": self.created,
            "fingerprint": self.fingerprint,
            "version": self.version,
            "classes": self.classes,
            "counts": self.counts(),
            "images": {s: sum(r["split"] == s for r in self.rows) for s in self.splits()},
            "n_images": len(self.rows),
            "n_unreadable": sum(not r["readable"] for r in self.rows),
            "n_boxes": sum(int(r["n_boxes"]) for r in self.rows),
            "n_label_issues": int(self.issues.get("n_issues", 0)),
            "boxes_digest": self.boxes_digest,
            "notes": [],
        }

    def splits(self) -> list[str]:
        return sorted({r["split"] for r in self.rows})

    def to_dataframe(self) -> Any:
        """The rows as a ``pandas.DataFrame`` with the detection manifest columns."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(DETECTION_COLUMNS))

    def write(self, out_dir: str) -> dict[str, str]:
        """Write ``manifest.csv``, ``manifest.json`` and ``label_issues.json``."""
        from imgrec.mlops.ingest import MANIFEST_CSV, MANIFEST_META

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(DETECTION_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: r[k] for k in DETECTION_COLUMNS} for r in self.rows)
        paths = {
            "manifest": storage.join(out_dir, MANIFEST_CSV),
            "meta": storage.join(out_dir, MANIFEST_META),
            "issues": storage.join(out_dir, LABEL_ISSUES),
        }
        storage.write_text(paths["manifest"], buf.getvalue())
        storage.write_text(paths["issues"], json.dumps(self.issues, indent=1, default=str))
        storage.write_text(paths["meta"], json.dumps(self.meta(), indent=1))
        return paths


def read_detection_manifest(uri: str) -> DetectionManifest:
    """Read a manifest folder written by :meth:`DetectionManifest.write`."""
    from imgrec.mlops.ingest import MANIFEST_CSV, MANIFEST_META

    meta = json.loads(storage.read_text(storage.join(uri, MANIFEST_META)))
    if meta.get("format") != DETECTION_MANIFEST_FORMAT:
        raise DatasetError(
            f"{uri} is not a detection manifest (format {meta.get('format')!r})",
            hint="create it with the pipeline's ingest step and task=detect",
        )
    rows = []
    for r in csv.DictReader(io.StringIO(storage.read_text(storage.join(uri, MANIFEST_CSV)))):
        rows.append(
            {
                **r,
                "width": int(r["width"] or 0),
                "height": int(r["height"] or 0),
                "n_boxes": int(r["n_boxes"] or 0),
                "readable": r["readable"] == "True",
            }
        )
    issues_uri = storage.join(uri, LABEL_ISSUES)
    issues = json.loads(storage.read_text(issues_uri)) if storage.exists(issues_uri) else {}
    return DetectionManifest(
        rows=rows,
        source=str(meta["source"]),
        classes=list(meta["classes"]),
        layout=str(meta.get("layout", "")),
        created=str(meta.get("created", "")),
        issues=issues,
        boxes_digest=dict(meta.get("boxes_digest", {})),
    )


def _boxes_digest(record: Any, classes: list[str]) -> str:
    text = ";".join(
        f"{classes[int(c)]}:" + ",".join(f"{v:.2f}" for v in box)
        for box, c in zip(record.boxes.tolist(), record.labels.tolist(), strict=True)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ingest_detection(source: str, *, verify: bool = True, workers: int = 8) -> DetectionManifest:
    """Read the detection dataset at ``source`` and inspect every image (hash, size, decode)."""
    from imgrec.data.detection import load_detection_data
    from imgrec.mlops.ingest import inspect_image

    if storage.is_s3(source):
        raise DatasetError(
            f"detection data must be a local folder, got {source!r}",
            hint="copy the dataset to a local path (s3:// is not supported for detection yet)",
        )
    source = os.path.abspath(source)
    data = load_detection_data(source, check_leakage=False)
    records = [(split, r) for split in sorted(data.splits) for r in data.splits[split]]
    if not records:
        raise DatasetError(f"{source} holds no labelled images", hint="check the annotations")

    def one(item: tuple[str, Any]) -> dict[str, Any]:
        split, r = item
        try:
            with open(r.path, "rb") as fh:
                info = inspect_image(fh.read(), verify=verify)
        except OSError as exc:
            info = {**inspect_image(b"", verify=False), "error": f"missing_image: {exc}"}
            info["readable"] = False
        if not info["readable"]:
            info.update(width=r.width, height=r.height)
        return {
            "path": os.path.abspath(r.path),
            "split": split,
            "sha256": info["sha256"],
            "width": info["width"],
            "height": info["height"],
            "n_boxes": len(r.boxes),
            "labels": ";".join(data.classes[int(c)] for c in r.labels.tolist()),
            "readable": info["readable"],
            "error": info["error"],
        }

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(pool.map(one, records))
    digests = {os.path.abspath(r.path): _boxes_digest(r, data.classes) for _, r in records}
    rows.sort(key=lambda row: (row["split"], row["path"]))
    return DetectionManifest(
        rows=rows,
        source=source,
        classes=list(data.classes),
        layout=data.format,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        issues=data.report.to_dict(),
        boxes_digest=digests,
    )


def detection_markdown(meta: dict[str, Any]) -> str:
    """A short Markdown table of a detection manifest: boxes per split and class."""
    from imgrec.mlops.ingest import class_count_table

    lines = [
        f"## Detection dataset `{meta['version']}`",
        "",
        f"Source `{meta['source']}` ({meta['layout']}), {meta['n_images']} images "
        f"({', '.join(f'{s}: {n}' for s, n in meta['images'].items())}), {meta['n_boxes']} "
        f"boxes, {meta['n_unreadable']} unreadable, {meta['n_label_issues']} label issues. "
        f"Fingerprint `{meta['fingerprint']}`.",
        "",
        *class_count_table(meta, "class (boxes)"),
    ]
    return "\n".join(lines) + "\n"


def preprocess_detection(
    manifest: DetectionManifest,
    out_dir: str,
    *,
    model: str = "auto",
    img_size: int = 0,
    epochs: int = 0,
    **overrides: Any,
) -> dict[str, Any]:
    """Resolve the detection training config; images pass through unchanged.

    Detection training reads the source dataset (boxes live in its annotation files) and its
    default recipe caches the frozen backbone features itself, so storing shrunken copies here
    would only cost time. Writes ``train_config.json`` (``task``, ``data``, ``fingerprint`` and
    the resolved ``DetectConfig``) and returns the stats the Markdown summary shows.
    """
    from imgrec.mlops.preprocess import CONFIG_JSON
    from imgrec.tasks.detect.recipe import make_config

    explicit = {"model": model, "img_size": img_size, "epochs": epochs, **overrides}
    cfg = make_config(None, **{k: v for k, v in explicit.items() if v not in (None, 0, "", "auto")})
    config = cfg.to_dict()
    payload = {
        "task": "detect",
        "data": manifest.source,
        "fingerprint": manifest.fingerprint,
        "config": config,
    }
    storage.write_text(storage.join(out_dir, CONFIG_JSON), json.dumps(payload, indent=1))
    readable = [r for r in manifest.rows if r["readable"]]
    return {
        "task": "detect",
        "images": len(readable),
        "resized": 0,
        "kept": len(readable),
        "config": {**config, "model": config["model"]},
        "notes": ["detection: images pass through unchanged (the trainer caches features)"],
    }
