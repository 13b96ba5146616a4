"""YOLO txt in the Ultralytics layout: a ``data.yaml`` naming split folders and the classes.

::

    data.yaml            # train: images/train, val: images/val, names: {0: cat, 1: dog} (or a list)
    images/train/a.jpg   # labels/train/a.txt: one "class cx cy w h" line per box, normalized 0..1
    labels/train/a.txt   # no label file = an image with no objects

Paths in ``data.yaml`` are relative to its ``path`` key, which itself is relative to the YAML's
folder (absent: the YAML's folder). A split may be a folder, a ``.txt`` list of images, or a list.
Each image's label file is found by replacing the last ``images`` folder with ``labels``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from imgrec.data.detection import DETECTION_FORMATS, DetectionFormat
from imgrec.data.detection.common import UniqueNames, list_images, oriented_size
from imgrec.data.detection.types import (
    ACTION_CLIP_BOX,
    ACTION_DROP_BOX,
    ACTION_SKIP_IMAGE,
    DetectionData,
    DetectionRecord,
    DetectionReport,
    clip_box,
)
from imgrec.errors import DatasetError

SPLITS = ("train", "val", "test")


def yaml_path(root: Path) -> Path | None:
    """The ``data.yaml`` at ``root`` (a YAML file, or a folder holding ``data.yaml``)."""
    if root.is_file() and root.suffix in (".yaml", ".yml"):
        return root
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (root / name).is_file():
            return root / name
    return None


def detect(root: Path) -> bool:
    path = yaml_path(root)
    if path is None:
        return False
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and "train" in doc and "names" in doc


def _names(doc: dict[str, Any], file: Path) -> list[str]:
    names = doc.get("names")
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except ValueError:
            raise DatasetError(
                f"{file}: 'names' keys must be class ids", hint="names: {0: cat, 1: dog}"
            ) from None
        if ids != list(range(len(ids))):
            raise DatasetError(
                f"{file}: class ids {ids} are not 0..{len(ids) - 1}",
                hint="number classes from 0 without gaps",
            )
        return [str(names[k] if k in names else names[str(k)]) for k in ids]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise DatasetError(
        f"{file}: 'names' must be a list or an id -> name mapping", hint="names: [cat, dog]"
    )


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder becomes ``labels``, suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _split_images(base: Path, spec: Any) -> list[Path]:
    specs = spec if isinstance(spec, list) else [spec]
    images: list[Path] = []
    for item in specs:
        path = (base / str(item)) if not Path(str(item)).is_absolute() else Path(str(item))
        if path.is_dir():
            images.extend(list_images(path))
        elif path.suffix == ".txt" and path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    p = Path(line.strip())
                    images.append(p if p.is_absolute() else (path.parent / p))
        else:
            images.append(path)  # reported as missing below
    return images


def parse_label_file(
    file: Path, width: int, height: int, n_classes: int, report: DetectionReport
) -> tuple[np.ndarray, np.ndarray] | None:
    """Boxes (xyxy pixels) and labels of one label file; ``None``: skip the image."""
    boxes, labels, ok = [], [], True
    for n, raw in enumerate(file.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        cols = line.split()
        if len(cols) != 5:
            report.add(
                "wrong_columns",
                file,
                f"{len(cols)} columns, expected 5 (class cx cy w h)",
                ACTION_SKIP_IMAGE,
                line=n,
            )
            ok = False
            continue
        try:
            cls_f = float(cols[0])
            cx, cy, w, h = (float(c) for c in cols[1:])
            if not all(np.isfinite([cls_f, cx, cy, w, h])):
                raise ValueError
        except ValueError:
            report.add(
                "bad_number", file, f"{line!r:.60} is not numeric", ACTION_SKIP_IMAGE, line=n
            )
            ok = False
            continue
        if cls_f != int(cls_f) or not 0 <= int(cls_f) < n_classes:
            report.add(
                "unknown_class",
                file,
                f"class id {cols[0]} not in 0..{n_classes - 1}",
                ACTION_SKIP_IMAGE,
                line=n,
            )
            ok = False
            continue
        if w <= 0 or h <= 0:
            report.add(
                "zero_area_box", file, f"box {cols[1:]} has no area", ACTION_DROP_BOX, line=n
            )
            continue
        xyxy = [
            (cx - w / 2) * width,
            (cy - h / 2) * height,
            (cx + w / 2) * width,
            (cy + h / 2) * height,
        ]
        box, _, has_area = clip_box(xyxy, width, height)
        if (
            any(v < 0 or v > 1 for v in (cx, cy, w, h))
            or cx - w / 2 < -1e-6
            or cx + w / 2 > 1 + 1e-6
            or cy - h / 2 < -1e-6
            or cy + h / 2 > 1 + 1e-6
        ):
            action = ACTION_CLIP_BOX if has_area else ACTION_DROP_BOX
            report.add("coords_out_of_range", file, f"box {cols[1:]} leaves 0..1", action, line=n)
        if has_area:
            boxes.append(box.tolist())
            labels.append(int(cls_f))
    if not ok:
        return None
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


def _read_split(
    images: list[Path], n_classes: int, report: DetectionReport, start_id: int
) -> list[DetectionRecord]:
    records = []
    for i, image in enumerate(images):
        size = oriented_size(image) if image.is_file() else None
        if size is None:
            code = "missing_image" if not image.is_file() else "unreadable_image"
            report.add(code, image, "image file not found or unreadable", ACTION_SKIP_IMAGE)
            continue
        labels_file = label_path(image)
        parsed: tuple[np.ndarray, np.ndarray] | None = (
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.int64),
        )
        if labels_file.is_file():
            parsed = parse_label_file(labels_file, size[0], size[1], n_classes, report)
        if parsed is not None:
            records.append(
                DetectionRecord(
                    str(image), size[0], size[1], parsed[0], parsed[1], start_id + i, image.name
                )
            )
    return records


def read(root: Path) -> DetectionData:
    """Read the splits named in ``data.yaml``."""
    file = yaml_path(root)
    if file is None:
        raise DatasetError(
            f"no data.yaml at {root}", hint="YOLO layout needs data.yaml with train/val/names"
        )
    doc = yaml.safe_load(file.read_text())
    classes = _names(doc, file)
    base = Path(str(doc["path"])) if doc.get("path") else file.parent
    if not base.is_absolute():
        base = file.parent / base
    report = DetectionReport()
    splits = {}
    for k, split in enumerate(SPLITS):
        if doc.get(split):
            splits[split] = _read_split(
                _split_images(base, doc[split]), len(classes), report, k * 10_000_000
            )
    return DetectionData(classes, splits, report)


def format_label_lines(record: DetectionRecord) -> list[str]:
    """``class cx cy w h`` lines (normalized, 6 decimals) for one record."""
    lines = []
    for (x1, y1, x2, y2), label in zip(record.boxes.tolist(), record.labels.tolist(), strict=True):
        cx, cy = (x1 + x2) / 2 / record.width, (y1 + y2) / 2 / record.height
        w, h = (x2 - x1) / record.width, (y2 - y1) / record.height
        lines.append(f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def write(data: DetectionData, dest: Path) -> None:
    """Write ``images/<split>/``, ``labels/<split>/`` and ``data.yaml`` (paths relative to it)."""
    doc: dict[str, Any] = {}
    for split, records in data.splits.items():
        (dest / "images" / split).mkdir(parents=True, exist_ok=True)
        (dest / "labels" / split).mkdir(parents=True, exist_ok=True)
        used = UniqueNames()
        for record in records:
            name = used.take(record.file_name, split)
            shutil.copyfile(record.path, dest / "images" / split / name)
            lines = format_label_lines(record)
            (dest / "labels" / split / Path(name).with_suffix(".txt")).write_text(
                "".join(f"{x}\n" for x in lines)
            )
        doc[split] = f"images/{split}"
    doc["nc"] = len(data.classes)
    doc["names"] = dict(enumerate(data.classes))
    (dest / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


DETECTION_FORMATS.add(
    "yolo",
    DetectionFormat("yolo", detect, read, write, "YOLO txt, Ultralytics layout with data.yaml"),
)
