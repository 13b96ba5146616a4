"""Pascal VOC XML: ``Annotations/<id>.xml``, ``JPEGImages/<file>``, ``ImageSets/Main/<split>.txt``.

Boxes are read as written (``xmin ymin xmax ymax`` in pixels, no 1-based shift) so a round trip
is exact. Classes come from ``classes.txt`` (one name per line) when present, otherwise the sorted
names found in the XML files. Without ``ImageSets/Main`` every annotation is in ``train``.
Problems are reported with the XML file and the object's position (``annotation_id``: 1-based).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from imgrec.data.detection import DETECTION_FORMATS, DetectionFormat
from imgrec.data.detection.common import UniqueNames, oriented_size
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


def detect(root: Path) -> bool:
    return root.is_dir() and (root / "Annotations").is_dir() and (root / "JPEGImages").is_dir()


def _parse(
    xml_file: Path, report: DetectionReport
) -> tuple[str, list[tuple[str, list[float], int]]] | None:
    try:
        tree = ET.parse(xml_file)
    except (ET.ParseError, OSError) as exc:
        report.add("bad_xml", xml_file, f"cannot parse: {exc}", ACTION_SKIP_IMAGE)
        return None
    root = tree.getroot()
    filename = (root.findtext("filename") or "").strip() or f"{xml_file.stem}.jpg"
    objects = []
    for k, obj in enumerate(root.iter("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        bnd = obj.find("bndbox")
        try:
            if bnd is None or not name:
                raise ValueError("no name or bndbox")
            coords = [float(bnd.findtext(tag) or "nan") for tag in ("xmin", "ymin", "xmax", "ymax")]
            if not all(np.isfinite(coords)):
                raise ValueError("coordinates missing or not numbers")
        except ValueError as exc:
            report.add(
                "bad_box", xml_file, f"object {k}: {exc}", ACTION_SKIP_IMAGE, annotation_id=k
            )
            return None
        objects.append((name, coords, k))
    return filename, objects


def _classes(
    root: Path, parsed: dict[str, tuple[str, list[tuple[str, list[float], int]]]]
) -> list[str]:
    listed = root / "classes.txt"
    if listed.is_file():
        return [line.strip() for line in listed.read_text().splitlines() if line.strip()]
    return sorted({name for _, objects in parsed.values() for name, _, _ in objects})


def _split_ids(root: Path, all_ids: list[str]) -> dict[str, list[str]]:
    main = root / "ImageSets" / "Main"
    splits = {}
    for split in SPLITS:
        listing = main / f"{split}.txt"
        if listing.is_file():
            splits[split] = [
                line.split()[0] for line in listing.read_text().splitlines() if line.strip()
            ]
    return splits or {"train": all_ids}


def _record(
    root: Path,
    stem: str,
    item: tuple[str, list[tuple[str, list[float], int]]],
    index: dict[str, int],
    report: DetectionReport,
    image_id: int,
) -> DetectionRecord | None:
    xml_file = root / "Annotations" / f"{stem}.xml"
    filename, objects = item
    path = root / "JPEGImages" / filename
    size = oriented_size(path) if path.is_file() else None
    if size is None:
        report.add(
            "missing_image",
            xml_file,
            f"image {filename!r} not found or unreadable",
            ACTION_SKIP_IMAGE,
        )
        return None
    boxes, labels = [], []
    for name, coords, k in objects:
        if name not in index:
            report.add(
                "unknown_class",
                xml_file,
                f"object {k}: class {name!r} not in classes.txt",
                ACTION_SKIP_IMAGE,
                annotation_id=k,
            )
            return None
        if coords[2] <= coords[0] or coords[3] <= coords[1]:
            report.add(
                "zero_area_box",
                xml_file,
                f"object {k}: box {coords} has no area",
                ACTION_DROP_BOX,
                annotation_id=k,
            )
            continue
        box, out, has_area = clip_box(coords, *size)
        if out:
            action = ACTION_CLIP_BOX if has_area else ACTION_DROP_BOX
            report.add(
                "box_out_of_bounds",
                xml_file,
                f"object {k}: box {coords} leaves the {size[0]}x{size[1]} image",
                action,
                annotation_id=k,
            )
        if has_area:
            boxes.append(box.tolist())
            labels.append(index[name])
    return DetectionRecord(
        str(path),
        size[0],
        size[1],
        np.asarray(boxes, np.float32).reshape(-1, 4),
        labels,
        image_id,
        filename,
    )


def read(root: Path) -> DetectionData:
    """Read all annotations, then assign them to the splits listed in ``ImageSets/Main``."""
    report = DetectionReport()
    parsed = {}
    for xml_file in sorted((root / "Annotations").glob("*.xml")):
        item = _parse(xml_file, report)
        if item is not None:
            parsed[xml_file.stem] = item
    classes = _classes(root, parsed)
    if not classes:
        raise DatasetError(
            f"no classes found in {root}", hint="add classes.txt or objects to the XML files"
        )
    index = {name: i for i, name in enumerate(classes)}
    splits: dict[str, list[DetectionRecord]] = {}
    order = {stem: i + 1 for i, stem in enumerate(sorted(parsed))}
    for split, ids in _split_ids(root, sorted(parsed)).items():
        records = []
        for stem in ids:
            if stem not in parsed:
                if not (root / "Annotations" / f"{stem}.xml").is_file():
                    report.add(
                        "missing_annotation",
                        root / "ImageSets" / "Main" / f"{split}.txt",
                        f"id {stem!r} has no XML file",
                        ACTION_SKIP_IMAGE,
                        image_id=stem,
                    )
                continue
            record = _record(root, stem, parsed[stem], index, report, order[stem])
            if record is not None:
                records.append(record)
        splits[split] = records
    return DetectionData(classes, splits, report)


def _xml(record: DetectionRecord, name: str, classes: list[str]) -> str:
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "JPEGImages"
    ET.SubElement(ann, "filename").text = name
    size = ET.SubElement(ann, "size")
    for tag, value in (("width", record.width), ("height", record.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    for box, label in zip(record.boxes.tolist(), record.labels.tolist(), strict=True):
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = classes[label]
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            ET.SubElement(bnd, tag).text = repr(float(value))
    ET.indent(ann)
    return ET.tostring(ann, encoding="unicode")


def write(data: DetectionData, dest: Path) -> None:
    """Write ``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``, ``classes.txt``."""
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (dest / folder).mkdir(parents=True, exist_ok=True)
    used = UniqueNames()  # one flat image folder for all splits: names must not collide
    for split, records in data.splits.items():
        ids = []
        for record in records:
            name = used.take(record.file_name, split)
            shutil.copyfile(record.path, dest / "JPEGImages" / name)
            (dest / "Annotations" / f"{Path(name).stem}.xml").write_text(
                _xml(record, name, data.classes)
            )
            ids.append(Path(name).stem)
        (dest / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    (dest / "classes.txt").write_text("".join(f"{c}\n" for c in data.classes))


DETECTION_FORMATS.add(
    "voc",
    DetectionFormat(
        "voc", detect, read, write, "Pascal VOC XML: Annotations/, JPEGImages/, ImageSets/Main/"
    ),
)
