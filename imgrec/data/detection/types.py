"""Detection datasets in memory: one record per image, boxes in pixels of the oriented image.

Every reader (COCO, YOLO, VOC) produces a ``DetectionData``; every writer consumes one. Boxes are
``[x1, y1, x2, y2]`` floats in pixels of the image *after* its EXIF orientation is applied
(BAD-INPUTS row 7), so the same numbers are right for training, evaluation and drawing.

Problems found while reading (BAD-INPUTS rows 12-14) are collected in a ``DetectionReport``: each
``LabelIssue`` names the file, the line or the id, what was wrong and what was done about it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgrec.errors import DatasetError

# What a reader does about a problem; documented in docs and listed in the report.
ACTION_SKIP_IMAGE = "image_skipped"  # the image's labels cannot be trusted: not used at all
ACTION_DROP_BOX = "box_dropped"  # only that box is ignored
ACTION_CLIP_BOX = "box_clipped"  # box clipped to the image bounds and kept
ACTION_DROP_DUPLICATE = "duplicate_dropped"  # the later entry with a repeated id is ignored
ACTION_REMOVED_FROM_VAL = "removed_from_val"  # an image also present in train (leakage)
ACTION_NONE = "reported"


@dataclass(frozen=True)
class LabelIssue:
    """One problem in a label file: where (file + line, or ids), what, and what was done."""

    code: str  # stable: wrong_columns, bad_number, coords_out_of_range, unknown_class, ...
    file: str
    message: str
    action: str
    line: int | None = None
    image_id: Any = None
    annotation_id: Any = None


@dataclass
class DetectionReport:
    """Problems found while reading a detection dataset, for ``data_report.json``."""

    issues: list[LabelIssue] = field(default_factory=list)

    def add(self, code: str, file: str | Path, message: str, action: str, **where: Any) -> None:
        self.issues.append(LabelIssue(code, str(file), message, action, **where))

    def codes(self) -> dict[str, int]:
        """How many issues of each code were found."""
        out: dict[str, int] = {}
        for issue in self.issues:
            out[issue.code] = out.get(issue.code, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_issues": len(self.issues),
            "counts": self.codes(),
            "issues": [{k: v for k, v in asdict(i).items() if v is not None} for i in self.issues],
        }

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=str))


@dataclass
class DetectionRecord:
    """One image and its boxes (``(N, 4)`` float32 xyxy pixels) and class indices (``(N,)``)."""

    path: str
    width: int
    height: int
    boxes: Any  # array-like in, (N, 4) float32 array after __post_init__
    labels: Any  # array-like in, (N,) int64 array after __post_init__
    image_id: int = 0
    file_name: str = ""  # the name the source format used, kept for writers and messages

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.boxes) != len(self.labels):
            raise ValueError("boxes and labels differ in length")
        if not self.file_name:
            self.file_name = Path(self.path).name


@dataclass
class DetectionData:
    """A detection dataset: class names, records per split, the report and where it came from."""

    classes: list[str]
    splits: dict[str, list[DetectionRecord]]
    report: DetectionReport = field(default_factory=DetectionReport)
    uri: str = ""
    format: str = ""

    def split(self, name: str) -> list[DetectionRecord]:
        """The records of split ``name``; a missing split raises ``DatasetError``."""
        if name not in self.splits:
            raise DatasetError(
                f"detection dataset {self.uri!r} has no {name!r} split",
                hint=f"splits present: {', '.join(sorted(self.splits)) or 'none'}",
            )
        return self.splits[name]

    def counts(self) -> dict[str, int]:
        return {name: len(records) for name, records in self.splits.items()}

    def fingerprint(self) -> str:
        """``sha256:...`` over the classes and every split's paths, boxes and labels.

        ``--resume`` compares it with the checkpoint's to refuse data that changed meanwhile.
        """
        digest = hashlib.sha256(json.dumps(self.classes).encode())
        for name in sorted(self.splits):
            for record in self.splits[name]:
                digest.update(f"{name}\0{record.path}\0".encode())
                digest.update(record.boxes.tobytes())
                digest.update(record.labels.tobytes())
        return f"sha256:{digest.hexdigest()}"


def clip_box(
    box: np.ndarray | list[float], width: int, height: int
) -> tuple[np.ndarray, bool, bool]:
    """Clip ``box`` (xyxy) to the image; returns (clipped, was_out_of_bounds, has_area)."""
    b = np.asarray(box, dtype=np.float64)
    clipped = np.array(
        [
            min(max(b[0], 0.0), width),
            min(max(b[1], 0.0), height),
            min(max(b[2], 0.0), width),
            min(max(b[3], 0.0), height),
        ]
    )
    out = bool(np.any(np.abs(clipped - b) > 1e-6))
    has_area = bool(clipped[2] - clipped[0] > 0 and clipped[3] - clipped[1] > 0)
    return clipped.astype(np.float32), out, has_area
