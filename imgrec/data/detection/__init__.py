"""Object-detection datasets: COCO JSON, YOLO txt (Ultralytics ``data.yaml``) and Pascal VOC XML.

One module per format registers a ``DetectionFormat`` (detect / read / write) in
``DETECTION_FORMATS``; nothing here branches on format names::

    data = load_detection_data("data/digits-detect")        # format detected
    data.classes, data.counts(), data.report.to_dict()
    convert("data/digits-detect", "out/voc", to="voc")       # -> the DetectionReport of the read

What readers do about bad labels (BAD-INPUTS rows 12-14; every case is listed in the report with
its file and line, or its ids):

* wrong column count, a non-number, an unknown class id, a malformed COCO/VOC box: the image is
  skipped (a partial label set would teach the detector that objects are background);
* coordinates outside the image (YOLO values > 1 or < 0, COCO/VOC boxes past the border): the
  box is clipped to the image; a box with no area left is dropped;
* zero-area boxes: dropped; duplicate COCO image or annotation ids: the later one is dropped;
  annotations of a missing image entry, images whose file is missing or unreadable: skipped;
* the same image (same bytes) in train and val: reported as ``leakage`` and removed from val.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgrec.data.detection.common import file_digest
from imgrec.data.detection.types import (
    ACTION_REMOVED_FROM_VAL,
    DetectionData,
    DetectionRecord,
    DetectionReport,
    LabelIssue,
)
from imgrec.errors import DatasetError
from imgrec.registry import Registry

__all__ = [
    "DETECTION_FORMATS",
    "DetectionData",
    "DetectionFormat",
    "DetectionRecord",
    "DetectionReport",
    "LabelIssue",
    "convert",
    "detect_format",
    "find_leakage",
    "is_detection_data",
    "load_detection_data",
]


@dataclass(frozen=True)
class DetectionFormat:
    """A dataset layout: ``detect(root)`` recognises it, ``read``/``write`` do the I/O."""

    name: str
    detect: Callable[[Path], bool]
    read: Callable[[Path], DetectionData]
    write: Callable[[DetectionData, Path], None]
    description: str = ""


DETECTION_FORMATS: Registry[DetectionFormat] = Registry(
    "detection format", list_hint="imgrec data convert --help"
)
# Importing a format module registers it; a new format adds one module and one name here.
_FORMAT_MODULES = ("coco", "yolo", "voc")
for _module in _FORMAT_MODULES:
    importlib.import_module(f"imgrec.data.detection.{_module}")


def detect_format(uri: str | Path) -> str | None:
    """The name of the detection format at ``uri`` (a folder or a YOLO ``data.yaml``), or None."""
    root = Path(uri)
    if not root.exists():
        return None
    for name, fmt in DETECTION_FORMATS.items():
        if fmt.detect(root):
            return name
    return None


def is_detection_data(uri: str | Path) -> bool:
    """True when ``uri`` looks like a COCO, YOLO or VOC dataset (used by ``imgrec train``)."""
    return detect_format(uri) is not None


def load_detection_data(
    uri: str | Path, *, format: str | None = None, check_leakage: bool = True
) -> DetectionData:
    """Read a detection dataset, its format detected unless ``format`` names one.

    Example::

        data = load_detection_data("data/digits-detect/data.yaml")
        train = data.split("train")   # list[DetectionRecord], boxes in oriented-image pixels
    """
    root = Path(uri)
    if not root.exists():
        raise DatasetError(
            f"detection dataset {str(uri)!r} does not exist",
            hint="pass a COCO folder (annotations/*.json), a YOLO data.yaml or a VOC folder",
        )
    name = format or detect_format(root)
    if name is None:
        raise DatasetError(
            f"{str(uri)!r} is not a detection dataset this version can read",
            hint="expected a COCO folder with annotations/{train,val}.json, a YOLO data.yaml "
            "(or a folder holding one), or a VOC folder with Annotations/ and JPEGImages/",
        )
    data = DETECTION_FORMATS.get(name).read(root)
    data.uri, data.format = str(uri), name
    if not data.classes:
        raise DatasetError(f"detection dataset {str(uri)!r} declares no classes", hint="add names")
    if check_leakage:
        find_leakage(data)
    return data


def find_leakage(data: DetectionData, *, remove: bool = True) -> list[LabelIssue]:
    """Report images whose bytes appear in train and in val/test (BAD-INPUTS row 14).

    The copies outside train are removed when ``remove`` (validation should never see a
    training image); the report lists each pair.
    """
    train = data.splits.get("train", [])
    digests: dict[str, DetectionRecord] = {}
    for record in train:
        try:
            digests.setdefault(file_digest(record.path), record)
        except OSError:
            continue
    found: list[LabelIssue] = []
    for split, records in data.splits.items():
        if split == "train":
            continue
        kept = []
        for record in records:
            try:
                twin = digests.get(file_digest(record.path))
            except OSError:
                twin = None
            if twin is None:
                kept.append(record)
                continue
            issue = LabelIssue(
                "leakage",
                record.path,
                f"{split} image is identical to train image {twin.path!r}",
                ACTION_REMOVED_FROM_VAL if remove else "reported",
            )
            data.report.issues.append(issue)
            found.append(issue)
            if not remove:
                kept.append(record)
        data.splits[split] = kept
    return found


def convert(
    src: str | Path, dest: str | Path, *, to: str, format: str | None = None
) -> DetectionReport:
    """Convert the dataset at ``src`` into format ``to`` at ``dest``; returns the read's report.

    Images are copied unchanged (EXIF included), so boxes keep referring to the oriented image.
    Images the reader skipped (see the module docstring) are not written.
    """
    writer = DETECTION_FORMATS.get(to)
    data = load_detection_data(src, format=format, check_leakage=False)
    dest_path = Path(dest)
    if dest_path.exists() and any(dest_path.iterdir()):
        raise DatasetError(
            f"destination {str(dest)!r} is not empty", hint="choose a new or empty folder"
        )
    dest_path.mkdir(parents=True, exist_ok=True)
    writer.write(data, dest_path)
    return data.report


def boxes_summary(records: list[DetectionRecord]) -> dict[str, float]:
    """Counts and box-size statistics for a split (used in reports)."""
    n_boxes = int(sum(len(r.boxes) for r in records))
    if n_boxes == 0:
        return {"images": len(records), "boxes": 0}
    boxes = np.concatenate([r.boxes for r in records if len(r.boxes)])
    sides = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    return {
        "images": len(records),
        "boxes": n_boxes,
        "box_side_min": float(sides.min()),
        "box_side_median": float(np.median(sides)),
        "box_side_max": float(sides.max()),
    }
