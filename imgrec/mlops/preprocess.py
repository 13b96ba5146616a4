"""Preprocess: fix the training recipe and shrink every image to the training geometry, once.

The trainer decodes each training image once per run (into its in-memory uint8 cache, or once
per epoch from files for large datasets) and resizes it with the model's eval geometry
(``imgrec.data.transforms.resize_ops``). For photos much larger than the training size, the
decode and the resize dominate that step. This step does the expensive part ahead of time:

* it resolves the recipe exactly as ``imgrec.train`` would (architecture, image size, epochs
  ... from the original images), and writes it to ``train_config.json`` so the train step
  cannot pick a different one from the shrunken images;
* every image larger than the geometry's resize target is decoded with the robust loader,
  resized with the *same* Resize op the trainer uses (only the resize: the center crop stays
  with the trainer) and stored as a lossless PNG named by its content hash. The trainer's
  resize + crop of the stored image is then an exact crop, and equals what it computes from
  the original in one resample up to one grey level on under 1% of pixels (tested); smaller
  images are referenced unchanged;
* ``data.csv`` (``path,label,split``; stored images relative to the CSV) is what train reads.

::

    result = preprocess(read_manifest("runs/ingest"), "runs/preprocess", model="auto")
    result.config["img_size"], result.stats["resized"]
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from imgrec import storage
from imgrec.data.shards import SHARD_SAMPLES, Sample, write_shards
from imgrec.errors import DatasetError
from imgrec.mlops.ingest import TRAIN_CSV, DatasetManifest

CONFIG_JSON = "train_config.json"
STATS_JSON = "preprocess.json"
# Decided per run by the device the train step uses, not here.
_DEVICE_KEYS = ("device", "amp", "channels_last")


@dataclass
class PreprocessResult:
    """Where the preprocessed data is, the resolved training config, and what was done."""

    out_dir: str
    data_csv: str
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def resolve_recipe(
    train_paths: list[str], *, device: str = "cpu", **overrides: Any
) -> tuple[dict[str, Any], list[str]]:
    """The training config ``imgrec.train`` would resolve for these images (minus device keys).

    ``overrides`` are TrainConfig keys; ``None``, ``0`` and ``"auto"`` mean "let the recipe
    choose" (so pipeline parameters can use them as defaults).
    """
    from imgrec.config import load_config
    from imgrec.tasks.classify.recipe import inspect_images, resolve

    explicit = {k: v for k, v in overrides.items() if v not in (None, 0, "", "auto")}
    cfg = load_config(None, overrides=explicit)
    stats = inspect_images(train_paths)
    resolved, notes = resolve(cfg, stats, "cuda" if device == "cuda" else "cpu")
    values = resolved.to_dict()
    values["image_stats"] = dataclasses.asdict(stats)
    for key in _DEVICE_KEYS:
        values.pop(key, None)
    return values, notes


def _target(width: int, height: int, pre: Any) -> bool:
    """True when the trainer's Resize would shrink this image (so storing it smaller pays)."""
    if pre.crop == "none":
        return width * height > pre.input_size * pre.input_size
    return min(width, height) > pre.resize_size


def _shrink(path: str, pre: Any) -> bytes:
    """Decode, apply the trainer's Resize op only, encode as PNG."""
    from imgrec.data.images import load_image
    from imgrec.data.transforms import resize_op

    image = load_image(path)
    resized = resize_op(pre)(image)  # the Resize; the crop stays in training
    buf = io.BytesIO()
    resized.save(buf, format="PNG", compress_level=1)  # fast to write, lossless
    return buf.getvalue()


def _sample(row: dict[str, Any], classes: list[str], pre: Any, shrink: bool) -> Sample:
    path = row["path"]
    read = (lambda: _shrink(path, pre)) if shrink else (lambda: storage.read_bytes(path))
    return Sample(read=read, label=classes.index(str(row["label"])), split=row["split"])


def preprocess(
    manifest: DatasetManifest,
    out_dir: str,
    *,
    model: str = "auto",
    img_size: int = 0,
    epochs: int = 0,
    device: str = "cpu",
    workers: int = 2,
    shards: str = "",
    shard_samples: int = SHARD_SAMPLES,
    epoch: Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], str]] | None = None,
    **overrides: Any,
) -> PreprocessResult:
    """Resolve the recipe, write shrunken images and ``data.csv`` to ``out_dir``.

    ``shards`` (a folder or ``s3://`` prefix; ``auto``: ``out_dir/shards``) writes the
    images as WebDataset tar shards of ``shard_samples`` images there instead (see
    :mod:`imgrec.data.shards`), for datasets too big for one disk: the train step then
    streams them (``train_config.json`` names them) and nothing is copied one by one.
    ``epoch`` maps the readable rows to the rows the trainer reads (``data.csv`` or the
    shards) and a note, e.g. the new data's training mix
    (:func:`imgrec.mlops.new_data.epoch_rows`)."""
    from imgrec.models import ARCHITECTURES

    started = time.perf_counter()
    rows = [r for r in manifest.rows if r["readable"]]
    train_paths = [r["path"] for r in rows if r["split"] == "train"]
    if not train_paths:
        raise DatasetError(
            f"{manifest.source} has no readable training images", hint="check the data"
        )
    config, notes = resolve_recipe(
        train_paths, device=device, model=model, img_size=img_size, epochs=epochs, **overrides
    )
    image_stats = config.pop("image_stats")
    listed, mix_note = epoch(rows) if epoch is not None else (rows, "")
    if mix_note:
        notes.append(mix_note)
    pre = ARCHITECTURES.get(config["model"]).default_preprocessing(config["img_size"])
    todo = {r["sha256"]: r["path"] for r in rows if _target(r["width"], r["height"], pre)}
    if shards:
        where = storage.join(out_dir, "shards") if shards == "auto" else shards
        index = write_shards(
            [_sample(r, manifest.classes, pre, r["sha256"] in todo) for r in listed], where,
            classes=manifest.classes, shard_samples=shard_samples,
            fingerprint=manifest.fingerprint, image_stats=image_stats, workers=workers,
        )  # fmt: skip
        config["shards"] = where
        shard_counts = {split: len(v) for split, v in index.splits.items()}
        notes.append(f"wrote shards {shard_counts} of <= {shard_samples} images to {where}")
        todo = {}  # the shards hold the shrunken images
    names = {sha: f"images/{sha[:2]}/{sha[:24]}.png" for sha in todo}

    def one(sha: str) -> tuple[int, int]:
        data = _shrink(todo[sha], pre)
        storage.write_bytes(storage.join(out_dir, *names[sha].split("/")), data)
        return len(data), 1

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        written = list(pool.map(one, sorted(todo)))  # none with shards
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "split"])
    for r in listed:
        w.writerow([names.get(r["sha256"], r["path"]), r["label"], r["split"]])
    data_csv = storage.join(out_dir, TRAIN_CSV)
    storage.write_text(data_csv, buf.getvalue())
    stats = {
        "images": len(rows),
        "resized": len(todo),
        "kept": len(rows) - sum(1 for r in rows if r["sha256"] in todo),
        "epoch_images": sum(r["split"] == "train" for r in listed),
        "bytes_before": sum(int(r["bytes"]) for r in rows if r["sha256"] in todo),
        "bytes_after": sum(n for n, _ in written),
        "geometry": {
            "input_size": pre.input_size,
            "resize_size": pre.resize_size,
            "crop": pre.crop,
            "interpolation": pre.interpolation,
        },
        "seconds": round(time.perf_counter() - started, 3),
        "fingerprint": manifest.fingerprint,
    }
    if shards:
        stats["shards"] = config["shards"]
    storage.write_text(storage.join(out_dir, CONFIG_JSON), json.dumps(config, indent=1))
    storage.write_text(
        storage.join(out_dir, STATS_JSON), json.dumps({**stats, "notes": notes}, indent=1)
    )
    return PreprocessResult(out_dir, data_csv, config, notes, stats)
