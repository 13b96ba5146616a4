"""COCO JSON: ``ROOT/annotations/{train,val[,test]}.json``, images in ``ROOT/images/<split>/``.

Also accepted: ``annotations/instances_train2017.json`` style names, and images found beside
``images/``, ``<split>/`` or ``<split>2017/``. Category ids may be any integers (COCO's 1..90 with
gaps); classes are the categories sorted by id. Crowd annotations (``iscrowd: 1``) are ignored.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from imgrec.data.detection import DETECTION_FORMATS, DetectionFormat
from imgrec.data.detection.common import UniqueNames, oriented_size
from imgrec.data.detection.types import (
    ACTION_CLIP_BOX,
    ACTION_DROP_BOX,
    ACTION_DROP_DUPLICATE,
    ACTION_SKIP_IMAGE,
    DetectionData,
    DetectionRecord,
    DetectionReport,
    clip_box,
)
from imgrec.errors import DatasetError

SPLITS = ("train", "val", "test")
_INSTANCES = re.compile(r"^(?:instances_)?(train|val|test)(?:\d{4})?$")


def annotation_files(root: Path) -> dict[str, Path]:
    """``{split: json path}`` found under ``root/annotations``."""
    folder = root / "annotations"
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        match = _INSTANCES.match(path.stem)
        if match and match.group(1) not in found:
            found[match.group(1)] = path
    return found


def detect(root: Path) -> bool:
    return root.is_dir() and "train" in annotation_files(root)


def _image_path(root: Path, split: str, file_name: str) -> Path:
    for folder in (root / "images" / split, root / "images", root / split, root / f"{split}2017"):
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return root / "images" / split / file_name


def _categories(doc: dict[str, Any], file: Path) -> dict[int, str]:
    try:
        return {int(c["id"]): str(c["name"]) for c in doc.get("categories", [])}
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(
            f"{file}: malformed 'categories' ({exc})", hint="each needs id and name"
        ) from None


def _load_json(file: Path) -> dict[str, Any]:
    try:
        doc = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(
            f"cannot read COCO file {file}: {exc}", hint="fix or regenerate the JSON"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DatasetError(
            f"{file} is not COCO detection JSON", hint="it needs 'images' and 'annotations' lists"
        )
    return doc


def _read_images(
    doc: dict[str, Any], root: Path, split: str, file: Path, report: DetectionReport
) -> dict[int, DetectionRecord]:
    images: dict[int, DetectionRecord] = {}
    for entry in doc["images"]:
        try:
            image_id, file_name = int(entry["id"]), str(entry["file_name"])
        except (KeyError, TypeError, ValueError):
            report.add(
                "bad_image_entry",
                file,
                f"image entry {entry!r:.80} lacks id/file_name",
                ACTION_SKIP_IMAGE,
            )
            continue
        if image_id in images:
            report.add(
                "duplicate_image_id",
                file,
                f"image id {image_id} appears again",
                ACTION_DROP_DUPLICATE,
                image_id=image_id,
            )
            continue
        path = _image_path(root, split, file_name)
        size = oriented_size(path) if path.is_file() else None
        if size is None:
            code = "missing_image" if not path.is_file() else "unreadable_image"
            report.add(
                code,
                file,
                f"image {file_name!r} not found or unreadable at {path}",
                ACTION_SKIP_IMAGE,
                image_id=image_id,
            )
            images[image_id] = DetectionRecord(
                str(path), 0, 0, np.zeros((0, 4)), [], image_id, file_name
            )
            images[image_id].width = -1  # marks a skipped image; annotations still consume ids
            continue
        declared = (entry.get("width"), entry.get("height"))
        if all(isinstance(v, int) for v in declared) and declared != size:
            report.add(
                "size_mismatch",
                file,
                f"image {file_name!r} declares {declared}, is {size}",
                "reported",
                image_id=image_id,
            )
        images[image_id] = DetectionRecord(
            str(path), size[0], size[1], np.zeros((0, 4)), [], image_id, file_name
        )
    return images


def _read_split(
    root: Path, split: str, file: Path, cat_index: dict[int, int], report: DetectionReport
) -> list[DetectionRecord]:
    doc = _load_json(file)
    images = _read_images(doc, root, split, file, report)
    boxes: dict[int, list[list[float]]] = {i: [] for i in images}
    labels: dict[int, list[int]] = {i: [] for i in images}
    bad: set[int] = set()
    seen_ann: set[Any] = set()
    for ann in doc.get("annotations", []):
        ann_id = ann.get("id")
        if ann_id is not None and ann_id in seen_ann:
            report.add(
                "duplicate_annotation_id",
                file,
                f"annotation id {ann_id} appears again",
                ACTION_DROP_DUPLICATE,
                annotation_id=ann_id,
            )
            continue
        seen_ann.add(ann_id)
        image_id = ann.get("image_id")
        record = images.get(image_id) if isinstance(image_id, int) else None
        if record is None:
            report.add(
                "missing_image",
                file,
                f"annotation refers to image id {image_id!r}, which is not in 'images'",
                ACTION_DROP_BOX,
                image_id=image_id,
                annotation_id=ann_id,
            )
            continue
        if record.width < 0 or ann.get("iscrowd", 0):
            continue
        bbox, category = ann.get("bbox"), ann.get("category_id")
        if category not in cat_index:
            report.add(
                "unknown_class",
                file,
                f"category_id {category!r} is not in 'categories'",
                ACTION_SKIP_IMAGE,
                image_id=image_id,
                annotation_id=ann_id,
            )
            bad.add(image_id)
            continue
        try:
            x, y, w, h = (float(v) for v in bbox)
            if not all(np.isfinite([x, y, w, h])):
                raise ValueError("not finite")
        except (TypeError, ValueError):
            report.add(
                "bad_box",
                file,
                f"bbox {bbox!r:.60} is not four finite numbers",
                ACTION_SKIP_IMAGE,
                image_id=image_id,
                annotation_id=ann_id,
            )
            bad.add(image_id)
            continue
        if w <= 0 or h <= 0:
            report.add(
                "zero_area_box",
                file,
                f"bbox {bbox} has no area",
                ACTION_DROP_BOX,
                image_id=image_id,
                annotation_id=ann_id,
            )
            continue
        box, out, has_area = clip_box([x, y, x + w, y + h], record.width, record.height)
        if out:
            action = ACTION_CLIP_BOX if has_area else ACTION_DROP_BOX
            report.add(
                "box_out_of_bounds",
                file,
                f"bbox {bbox} leaves the {record.width}x{record.height} image",
                action,
                image_id=image_id,
                annotation_id=ann_id,
            )
        if has_area:
            boxes[image_id].append(box.tolist())
            labels[image_id].append(cat_index[category])
    records = []
    for image_id, record in images.items():
        if record.width < 0 or image_id in bad:
            continue
        record.boxes, record.labels = (
            np.asarray(boxes[image_id], np.float32).reshape(-1, 4),
            np.asarray(labels[image_id], np.int64),
        )
        records.append(record)
    return records


def read(root: Path) -> DetectionData:
    """Read every split found under ``root/annotations``."""
    files = annotation_files(root)
    if "train" not in files:
        raise DatasetError(
            f"{root} has no annotations/train.json",
            hint="COCO layout: annotations/{train,val}.json",
        )
    categories = _categories(_load_json(files["train"]), files["train"])
    if not categories:
        raise DatasetError(
            f"{files['train']} declares no categories", hint="add a 'categories' list"
        )
    cat_ids = sorted(categories)
    cat_index = {cid: i for i, cid in enumerate(cat_ids)}
    report = DetectionReport()
    splits = {
        split: _read_split(root, split, file, cat_index, report) for split, file in files.items()
    }
    return DetectionData([categories[c] for c in cat_ids], splits, report)


def to_coco_dict(
    records: list[DetectionRecord], classes: list[str], file_names: list[str] | None = None
) -> dict[str, Any]:
    """A COCO detection document for ``records`` (category id = class index + 1, image id kept)."""
    images, annotations = [], []
    ann_id = 1
    for i, record in enumerate(records):
        name = file_names[i] if file_names else record.file_name
        images.append(
            {
                "id": int(record.image_id),
                "file_name": name,
                "width": record.width,
                "height": record.height,
            }
        )
        for box, label in zip(record.boxes.tolist(), record.labels.tolist(), strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": int(record.image_id),
                    "category_id": int(label) + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            ann_id += 1
    categories = [
        {"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(classes)
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def write(data: DetectionData, dest: Path) -> None:
    """Write ``dest/annotations/<split>.json`` and copy images into ``dest/images/<split>/``."""
    (dest / "annotations").mkdir(parents=True, exist_ok=True)
    for split, records in data.splits.items():
        folder = dest / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        names, used = [], UniqueNames()
        for record in records:
            name = used.take(record.file_name, split)
            shutil.copyfile(record.path, folder / name)
            names.append(name)
        renumbered = [_with_id(r, i + 1) for i, r in enumerate(records)]
        doc = to_coco_dict(renumbered, data.classes, names)
        (dest / "annotations" / f"{split}.json").write_text(json.dumps(doc))


def _with_id(record: DetectionRecord, image_id: int) -> DetectionRecord:
    return DetectionRecord(
        record.path,
        record.width,
        record.height,
        record.boxes,
        record.labels,
        image_id,
        record.file_name,
    )


DETECTION_FORMATS.add(
    "coco",
    DetectionFormat(
        "coco", detect, read, write, "COCO JSON: annotations/{train,val}.json + images/<split>/"
    ),
)
