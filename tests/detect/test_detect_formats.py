"""COCO / YOLO / VOC readers and writers: round trips, format detection, validation (rows 12-14)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from imgrec.data.detection import convert, detect_format, load_detection_data
from imgrec.data.detection.common import oriented_size
from imgrec.errors import DatasetError


def _image(path: Path, size=(64, 48), value=0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 40, 90)).save(path)


def _yolo(root: Path, labels: dict[str, str], split="train", names=("cat", "dog")) -> Path:
    for i, (stem, text) in enumerate(labels.items()):
        _image(
            root / "images" / split / f"{stem}.png", value=i * 20 + (100 if split == "val" else 0)
        )
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split / f"{stem}.txt").write_text(text)
    doc = {"train": "images/train", "val": "images/val", "names": list(names)}
    (root / "data.yaml").write_text(yaml.safe_dump(doc))
    return root / "data.yaml"


@pytest.fixture()
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "yolo set"  # a space in the path on purpose
    _yolo(
        root,
        {"a": "0 0.5 0.5 0.25 0.5\n1 0.2 0.3 0.1 0.2\n", "b": "", "c": "1 0.75 0.25 0.5 0.5\n"},
    )
    _yolo(root, {"v": "0 0.5 0.5 0.5 0.5\n"}, split="val")
    return root


def _same(a, b) -> None:
    assert a.classes == b.classes
    for split in a.splits:
        ra, rb = (
            sorted(a.splits[split], key=lambda r: r.file_name),
            sorted(b.splits[split], key=lambda r: r.file_name),
        )
        assert [r.file_name for r in ra] == [r.file_name for r in rb]
        for x, y in zip(ra, rb, strict=True):
            assert (x.width, x.height) == (y.width, y.height)
            np.testing.assert_allclose(x.boxes, y.boxes, atol=1e-3)
            assert x.labels.tolist() == y.labels.tolist()


@pytest.mark.parametrize("chain", [("coco", "voc", "yolo"), ("voc", "coco", "yolo")])
def test_round_trip_through_every_format(sample: Path, tmp_path: Path, chain) -> None:
    original = load_detection_data(sample)
    assert original.format == "yolo" and original.report.issues == []
    assert original.counts() == {"train": 3, "val": 1}
    src = sample
    for i, fmt in enumerate(chain):
        dest = tmp_path / f"step{i}-{fmt}"
        convert(src, dest, to=fmt)
        assert detect_format(dest) == fmt
        _same(original, load_detection_data(dest))
        src = dest


def test_yolo_boxes_in_pixels(sample: Path) -> None:
    record = next(r for r in load_detection_data(sample).split("train") if r.file_name == "a.png")
    np.testing.assert_allclose(record.boxes[0], [24, 12, 40, 36])  # 64x48 image
    assert record.labels.tolist() == [0, 1]


def test_yolo_bad_lines_listed_with_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    _yolo(
        root,
        {
            "cols": "0 0.5 0.5 0.2\n",
            "nan": "0 0.5 zz 0.2 0.2\n",
            "cls": "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n",
            "clip": "0 0.9 0.5 0.4 0.2\n",
            "neg": "1 -0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n",
            "zero": "0 0.5 0.5 0.0 0.2\n",
            "ok": "1 0.5 0.5 0.2 0.2\n",
        },
    )
    data = load_detection_data(root)
    issues = {(Path(i.file).stem, i.code): i for i in data.report.issues}
    assert issues[("cols", "wrong_columns")].line == 1
    assert issues[("cols", "wrong_columns")].action == "image_skipped"
    assert issues[("nan", "bad_number")].line == 1
    assert issues[("cls", "unknown_class")].line == 2
    assert issues[("clip", "coords_out_of_range")].action == "box_clipped"
    assert issues[("neg", "coords_out_of_range")].action == "box_dropped"  # nothing left inside
    assert issues[("zero", "zero_area_box")].line == 1
    kept = {r.file_name: r for r in data.split("train")}
    assert set(kept) == {"clip.png", "neg.png", "zero.png", "ok.png"}
    np.testing.assert_allclose(
        kept["clip.png"].boxes[0], [0.7 * 64, 0.4 * 48, 64, 0.6 * 48], atol=1e-4
    )
    assert len(kept["neg.png"].boxes) == 1 and len(kept["zero.png"].boxes) == 0


def _coco(
    root: Path, images, annotations, categories=({"id": 3, "name": "cat"}, {"id": 9, "name": "dog"})
) -> None:
    for entry in images:
        if not entry.get("_missing"):
            _image(root / "images" / "train" / entry["file_name"])
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    doc = {
        "images": [{k: v for k, v in e.items() if k != "_missing"} for e in images],
        "annotations": list(annotations),
        "categories": list(categories),
    }
    (root / "annotations" / "train.json").write_text(json.dumps(doc))


def test_coco_problems_listed_with_ids(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    images = [
        {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
        {"id": 1, "file_name": "dup.png", "width": 64, "height": 48},
        {"id": 2, "file_name": "gone.png", "width": 64, "height": 48, "_missing": True},
        {"id": 3, "file_name": "c.png", "width": 64, "height": 48},
    ]
    anns = [
        {"id": 10, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 10]},
        {"id": 10, "image_id": 1, "category_id": 9, "bbox": [5, 5, 10, 10]},  # duplicate id
        {"id": 11, "image_id": 1, "category_id": 9, "bbox": [50, 40, 30, 30]},  # leaves the image
        {"id": 12, "image_id": 1, "category_id": 9, "bbox": [5, 5, 0, 10]},  # zero area
        {"id": 13, "image_id": 99, "category_id": 3, "bbox": [1, 1, 5, 5]},  # no such image
        {"id": 14, "image_id": 3, "category_id": 42, "bbox": [1, 1, 5, 5]},  # unknown category
        {"id": 15, "image_id": 2, "category_id": 3, "bbox": [1, 1, 5, 5]},
    ]
    _coco(root, images, anns)
    data = load_detection_data(root)
    codes = {(i.code, i.image_id, i.annotation_id) for i in data.report.issues}
    assert ("duplicate_image_id", 1, None) in codes
    assert ("duplicate_annotation_id", None, 10) in codes
    assert ("box_out_of_bounds", 1, 11) in codes
    assert ("zero_area_box", 1, 12) in codes
    assert ("missing_image", 99, 13) in codes
    assert ("unknown_class", 3, 14) in codes
    assert ("missing_image", 2, None) in codes
    assert data.classes == ["cat", "dog"]  # categories sorted by id, any ids
    (record,) = data.split("train")
    np.testing.assert_allclose(record.boxes, [[1, 2, 11, 12], [50, 40, 64, 48]])
    assert record.labels.tolist() == [0, 1]


def test_leakage_between_train_and_val_is_reported(sample: Path) -> None:
    shutil.copyfile(sample / "images" / "train" / "a.png", sample / "images" / "val" / "copy.png")
    data = load_detection_data(sample)
    (leak,) = [i for i in data.report.issues if i.code == "leakage"]
    assert leak.file.endswith("copy.png") and "a.png" in leak.message
    assert [r.file_name for r in data.split("val")] == ["v.png"]


def test_voc_unknown_class_and_bad_xml(tmp_path: Path, sample: Path) -> None:
    dest = tmp_path / "voc"
    convert(sample, dest, to="voc")
    xml = dest / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<name>dog</name>", "<name>cow</name>"))
    (dest / "Annotations" / "c.xml").write_text("<annotation><object>")
    data = load_detection_data(dest)
    codes = {(Path(i.file).name, i.code) for i in data.report.issues}
    assert ("a.xml", "unknown_class") in codes and ("c.xml", "bad_xml") in codes
    assert [r.file_name for r in data.split("train")] == ["b.png"]


def test_not_a_dataset_and_non_empty_destination(tmp_path: Path, sample: Path) -> None:
    with pytest.raises(DatasetError, match="not a detection dataset"):
        load_detection_data(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        convert(sample, tmp_path / "full", to="coco")


def test_oriented_size_swaps_for_rotating_exif(tmp_path: Path) -> None:
    for orientation, expected in ((1, (40, 20)), (3, (40, 20)), (6, (20, 40)), (8, (20, 40))):
        path = tmp_path / f"o{orientation}.jpg"
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.new("RGB", (40, 20)).save(path, exif=exif)
        assert oriented_size(path) == expected
