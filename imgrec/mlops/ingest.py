"""Ingest: a dataset (local folder, ``s3://`` prefix or CSV manifest) -> a versioned manifest.

The manifest has one row per listed image with the columns of ``MANIFEST_COLUMNS``: ``path``,
``label``, ``split``, ``sha256``, ``width``, ``height``, ``mode``, ``bytes``, plus ``readable``
and ``error`` (the ``imgrec.data.images`` error code and reason when a file cannot be used).
Its ``fingerprint`` hashes the (split, label, content hash) of every row, so the same images
with the same labels and splits always get the same version, wherever they are stored::

    manifest = ingest("data/mnist5k")                 # or "s3://bucket/digits", "list.csv"
    manifest.fingerprint                              # "sha256:4f1c..."
    manifest.write("runs/ingest")                     # manifest.csv, manifest.json, data.csv

Width, height and mode come from the image header; with ``verify=True`` (the default) every
file is also fully decoded by ``imgrec.data.images.decode_image`` so truncated files are caught
here rather than mid-epoch. Images without a split are split per class with a seeded shuffle.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from imgrec import storage
from imgrec.errors import DatasetError, ImageError, ImgrecError

MANIFEST_COLUMNS = (
    "path",
    "label",
    "split",
    "sha256",
    "width",
    "height",
    "mode",
    "bytes",
    "readable",
    "error",
)
MANIFEST_FORMAT = "imgrec.manifest/v1"
MANIFEST_CSV = "manifest.csv"
MANIFEST_META = "manifest.json"
TRAIN_CSV = "data.csv"  # path,label,split of the readable rows: what the trainer reads


@dataclass
class DatasetManifest:
    """Rows (dicts keyed by ``MANIFEST_COLUMNS``) plus where they came from."""

    rows: list[dict[str, Any]]
    source: str
    layout: str = ""
    created: str = ""
    notes: list[str] = field(default_factory=list)
    declared_classes: list[str] = field(default_factory=list)  # class folders, even empty ones

    @property
    def fingerprint(self) -> str:
        """``sha256:`` of the sorted (split, label, content hash) triples."""
        lines = sorted(f"{r['split']}\t{r['label']}\t{r['sha256']}" for r in self.rows)
        return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()

    @property
    def version(self) -> str:
        """A short content version (the first 12 hex digits of the fingerprint)."""
        return self.fingerprint.split(":", 1)[1][:12]

    @property
    def classes(self) -> list[str]:
        """Every class: labels of the rows plus classes declared by the layout."""
        return sorted({str(r["label"]) for r in self.rows} | set(self.declared_classes))

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {label: n}}`` over all rows."""
        out: dict[str, dict[str, int]] = {}
        for (split, label), n in sorted(
            Counter((r["split"], r["label"]) for r in self.rows).items()
        ):
            out.setdefault(split, {})[label] = n
        return out

    def meta(self) -> dict[str, Any]:
        """The ``manifest.json`` content."""
        bad = [r for r in self.rows if not r["readable"]]
        return {
            "format": MANIFEST_FORMAT,
            "source": self.source,
            "layout": self.layout,
            "created": self.created,
            "fingerprint": self.fingerprint,
            "version": self.version,
            "classes": self.classes,
            "declared_classes": self.declared_classes,
            "counts": self.counts(),
            "n_images": len(self.rows),
            "n_unreadable": len(bad),
            "notes": self.notes,
        }

    def to_dataframe(self) -> Any:
        """The rows as a ``pandas.DataFrame`` with the manifest columns."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(MANIFEST_COLUMNS))

    def write(self, out_dir: str) -> dict[str, str]:
        """Write ``manifest.csv``, ``manifest.json`` and ``data.csv``; returns their URIs."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        train = io.StringIO()
        tw = csv.writer(train, lineterminator="\n")
        tw.writerow(["path", "label", "split"])
        tw.writerows((r["path"], r["label"], r["split"]) for r in self.rows if r["readable"])
        paths = {
            "manifest": storage.join(out_dir, MANIFEST_CSV),
            "meta": storage.join(out_dir, MANIFEST_META),
            "data": storage.join(out_dir, TRAIN_CSV),
        }
        storage.write_text(paths["manifest"], buf.getvalue())
        storage.write_text(paths["data"], train.getvalue())
        storage.write_text(paths["meta"], json.dumps(self.meta(), indent=1))
        return paths


def _absolute(path: str) -> str:
    # Later steps may run in another working directory: keep local paths absolute.
    return path if storage.is_s3(path) else os.path.abspath(path)


def read_manifest(uri: str) -> DatasetManifest:
    """Read a manifest written by :meth:`DatasetManifest.write` (a folder or its ``.csv``)."""
    csv_uri = uri if uri.lower().endswith(".csv") else storage.join(uri, MANIFEST_CSV)
    meta_uri = storage.join(storage.parent(csv_uri), MANIFEST_META)
    text = storage.read_text(csv_uri)
    reader = csv.DictReader(io.StringIO(text))
    missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or [])
    if missing:
        raise DatasetError(
            f"{csv_uri} is not an imgrec manifest: missing columns {sorted(missing)}",
            hint="create it with `imgrec.mlops.ingest`",
        )
    rows = []
    for r in reader:
        rows.append(
            {
                **r,
                "width": int(r["width"] or 0),
                "height": int(r["height"] or 0),
                "bytes": int(r["bytes"] or 0),
                "readable": r["readable"] == "True",
            }
        )
    meta = json.loads(storage.read_text(meta_uri)) if storage.exists(meta_uri) else {}
    return DatasetManifest(
        rows=rows,
        source=str(meta.get("source", csv_uri)),
        layout=str(meta.get("layout", "")),
        created=str(meta.get("created", "")),
        notes=list(meta.get("notes", [])),
        declared_classes=list(meta.get("declared_classes", [])),
    )


def inspect_image(data: bytes, *, verify: bool = True) -> dict[str, Any]:
    """Content hash, header size/mode and readability of one image's bytes.

    Returns the manifest fields ``sha256, width, height, mode, bytes, readable, error``.
    """
    from PIL import Image

    from imgrec.data.images import decode_image, sniff_format

    info: dict[str, Any] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": 0,
        "height": 0,
        "mode": "",
        "bytes": len(data),
        "readable": True,
        "error": "",
    }
    try:
        sniff_format(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # size limits are decode_image's job below
            with Image.open(io.BytesIO(data)) as im:  # parses the header only
                info["width"], info["height"] = im.size
                info["mode"] = im.mode
        if verify:
            decode_image(data).close()
    except ImageError as exc:
        info.update(readable=False, error=f"{exc.code}: {exc.message}")
    except Exception as exc:  # Pillow's header parser on garbage: same meaning as corrupt
        info.update(readable=False, error=f"corrupt_image: {exc}")
    return info


def _assign_splits(entries: list[Any], val_fraction: float, seed: int) -> list[str]:
    """The split of every entry, by the trainer's rule: with no val split of its own, train
    (or unsplit) images are split per class with ``imgrec.data.dataset.stratified_split``."""
    from imgrec.data.dataset import stratified_split

    has_val = any(e.split == "val" for e in entries)
    movable = [e for e in entries if e.split is None or (not has_val and e.split == "train")]
    _, val = stratified_split(movable, val_fraction, seed)
    val_ids = {id(e) for e in val}
    moving = {id(e) for e in movable}
    return [
        ("val" if id(e) in val_ids else "train") if id(e) in moving else str(e.split)
        for e in entries
    ]


def ingest(
    source: str,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    verify: bool = True,
    workers: int = 8,
) -> DatasetManifest:
    """List, hash and inspect every image of ``source``; see the module docstring."""
    from imgrec.data.formats import detect_format

    if not 0.0 <= val_fraction < 1.0:
        raise ImgrecError(
            f"val_fraction must be in [0, 1), got {val_fraction}",
            hint="e.g. 0.2",
            code="invalid_config",
        )
    source = str(source)
    if not storage.exists(source):
        raise DatasetError(f"{source} does not exist", hint="check the data path or s3:// URI")
    fmt = detect_format(source)
    listing = fmt.read(source)
    entries = listing.entries
    if not entries:
        raise DatasetError(f"{source} holds no images", hint="check the folder layout")
    splits = _assign_splits(entries, val_fraction, seed)

    def one(i: int) -> dict[str, Any]:
        e = entries[i]
        try:
            data = storage.read_bytes(e.path)
        except ImgrecError as exc:
            return {
                **inspect_image(b"", verify=False),
                "readable": False,
                "error": f"{exc.code}: {exc.message}",
            }
        return inspect_image(data, verify=verify)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        infos = list(pool.map(one, range(len(entries))))
    rows = [
        {"path": _absolute(e.path), "label": e.label, "split": s, **info}
        for e, s, info in zip(entries, splits, infos, strict=True)
    ]
    rows.sort(key=lambda r: (r["split"], r["label"], r["path"]))
    notes = list(listing.notes)
    if listing.ignored:
        notes.append(f"{len(listing.ignored)} files ignored (not images by name)")
    return DatasetManifest(
        rows=rows,
        source=source,
        layout=fmt.name,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes=notes,
        declared_classes=sorted({c for names in listing.declared.values() for c in names}),
    )


def class_count_table(meta: dict[str, Any], header: str) -> list[str]:
    """Markdown rows: one per class of ``meta["classes"]``, a column per split of
    ``meta["counts"]`` (``{split: {class: n}}``); ``header`` names the first column."""
    counts: dict[str, dict[str, int]] = meta["counts"]
    splits = sorted(counts)
    lines = [f"| {header} | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for c in meta["classes"]:
        lines.append(f"| {c} | " + " | ".join(str(counts[s].get(c, 0)) for s in splits) + " |")
    return lines


def ingest_markdown(meta: dict[str, Any]) -> str:
    """A short Markdown table of the manifest: counts per split and class."""
    lines = [
        f"## Dataset `{meta['version']}`",
        "",
        f"Source `{meta['source']}` ({meta['layout']}), {meta['n_images']} images, "
        f"{meta['n_unreadable']} unreadable. Fingerprint `{meta['fingerprint']}`.",
        "",
        *class_count_table(meta, "class"),
    ]
    return "\n".join(lines) + "\n"


def manifest_task(manifest_dir: str) -> str:
    """The task a manifest folder was ingested for (``classify`` when not recorded)."""
    meta_uri = storage.join(manifest_dir, MANIFEST_META)
    if not storage.exists(meta_uri):
        return "classify"
    return str(json.loads(storage.read_text(meta_uri)).get("task", "classify"))
