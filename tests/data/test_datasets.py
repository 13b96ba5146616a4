"""load_classification_data: formats, splits, bad files, layout errors (BAD-INPUTS 3, 11, 14)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from image_fixtures import BAD_CODES, GOOD_KEYS
from PIL import Image

from imgrec.data.dataset import (
    fingerprint,
    load_classification_data,
    stratified_split,
)
from imgrec.data.formats import DATASET_FORMATS, Entry, detect_format
from imgrec.errors import DatasetError, UnknownNameError


def _png(path: Path, value: int, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (size, size), value).save(path)
    return path


def _folder(root: Path, layout: dict[str, int]) -> Path:
    """``{"train/cat": 3, "val/dog": 1}`` -> that many distinct PNGs per folder."""
    value = 0
    for folder, n in layout.items():
        for i in range(n):
            value += 1
            _png(root / folder / f"{i:03d}.png", value % 256, size=8 + value // 256)
    return root


def test_imagefolder_with_train_and_val(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"train/cat": 3, "train/dog": 2, "val/cat": 1, "val/dog": 1})
    data = load_classification_data(root)
    assert data.format == "imagefolder"
    assert data.classes == ["cat", "dog"]
    assert data.counts() == {"train": 5, "val": 2}
    assert [r.label for r in data.splits["train"]] == [0, 0, 0, 1, 1]
    assert all(Path(r.path).is_file() for r in data.splits["val"])
    assert data.report.counts == {"train": {"cat": 3, "dog": 2}, "val": {"cat": 1, "dog": 1}}
    assert data.fingerprint.startswith("sha256:") and data.fingerprint == data.report.fingerprint


def test_valid_alias_and_test_split(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"train/a": 2, "train/b": 2, "valid/a": 1, "test/b": 1})
    data = load_classification_data(str(root))
    assert data.counts() == {"train": 4, "val": 1, "test": 1}


def test_flat_folders_are_split_stratified_and_seeded(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 10, "b": 20, "c": 5})
    data = load_classification_data(root, val_fraction=0.2, seed=3)
    val = Counter(data.classes[r.label] for r in data.splits["val"])
    assert val == {"a": 2, "b": 4, "c": 1}
    again = load_classification_data(root, val_fraction=0.2, seed=3)
    assert again.splits == data.splits and again.fingerprint == data.fingerprint
    other = load_classification_data(root, val_fraction=0.2, seed=4)
    assert {r.path for r in other.splits["val"]} != {r.path for r in data.splits["val"]}
    assert other.fingerprint != data.fingerprint  # the split is part of the fingerprint
    default = load_classification_data(root)
    assert len(default.splits["val"]) == 7  # default val_fraction 0.2


def test_train_only_folder_is_split(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"train/a": 5, "train/b": 5})
    data = load_classification_data(root, val_fraction=0.4)
    assert data.counts() == {"train": 6, "val": 4}


def test_stratified_split_properties() -> None:
    entries = [Entry(f"p{i}", f"p{i:03d}", "ab"[i % 2], None) for i in range(40)] + [
        Entry("single", "single", "c", None)
    ]
    train, val = stratified_split(entries, 0.25, seed=0)
    assert len(train) + len(val) == len(entries)
    assert not {e.rel for e in train} & {e.rel for e in val}
    assert Counter(e.label for e in val) == {"a": 5, "b": 5}
    assert [e.label for e in train].count("c") == 1  # a single item stays in train
    shuffled = list(reversed(entries))
    assert stratified_split(shuffled, 0.25, seed=0) == (train, val)  # order-independent


def test_fingerprint_changes_with_content_label_and_path(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"train/a": 2, "train/b": 2, "val/a": 1, "val/b": 1})
    first = load_classification_data(root).fingerprint
    assert load_classification_data(root).fingerprint == first
    _png(root / "train/a/000.png", 200)
    changed = load_classification_data(root).fingerprint
    assert changed != first
    (root / "train/a/001.png").rename(root / "train/a/zzz.png")
    assert load_classification_data(root).fingerprint != changed
    rows = [("a.png", "x", "train", "00"), ("b.png", "y", "val", "11")]
    assert fingerprint(rows) == fingerprint(list(reversed(rows)))
    assert fingerprint(rows) != fingerprint([("a.png", "y", "train", "00"), rows[1]])


def test_fingerprint_is_independent_of_the_dataset_location(tmp_path: Path) -> None:
    a = _folder(tmp_path / "one", {"train/a": 2, "train/b": 2, "val/a": 1, "val/b": 1})
    b = _folder(tmp_path / "two place", {"train/a": 2, "train/b": 2, "val/a": 1, "val/b": 1})
    assert load_classification_data(a).fingerprint == load_classification_data(b).fingerprint


def _with_bad_and_tricky(root: Path, write: Callable[[Path], dict[str, Path]]) -> dict[str, Path]:
    """Two classes of plain images plus every bad and good tricky file spread over them."""
    _folder(root, {"train/x": 40, "train/y": 40, "val/x": 5, "val/y": 5})
    files = write(root / "train" / "x")
    return files


def test_bad_files_are_reported_and_skipped_good_tricky_ones_used(
    tmp_path: Path, bad_images: Callable[[Path], dict[str, Path]]
) -> None:
    root = tmp_path / "data with spaces"
    files = _with_bad_and_tricky(root, bad_images)
    before = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in files.items()}
    data = load_classification_data(root)
    bad = {b.path: b for b in data.report.bad}
    assert set(bad) == {str(files[k]) for k in BAD_CODES}
    for key, code in BAD_CODES.items():
        assert bad[str(files[key])].code == code
        assert bad[str(files[key])].reason
    used = {r.path for r in data.splits["train"]}
    assert {str(files[k]) for k in GOOD_KEYS} <= used
    assert data.counts() == {"train": 80 + len(GOOD_KEYS), "val": 10}
    after = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in files.items()}
    assert after == before  # originals never modified
    as_json = json.loads(json.dumps(data.report.to_dict()))
    assert as_json["n_bad"] == len(BAD_CODES)
    assert {b["code"] for b in as_json["bad"]} == set(BAD_CODES.values())


def test_too_many_bad_files_refused_with_report(
    tmp_path: Path, bad_images: Callable[[Path], dict[str, Path]]
) -> None:
    root = tmp_path / "d"
    _folder(root, {"a": 3, "b": 3})
    bad_images(root / "a")
    with pytest.raises(DatasetError, match="max_bad_fraction") as info:
        load_classification_data(root)
    report = info.value.report  # type: ignore[attr-defined]
    assert report.n_bad == len(BAD_CODES)
    data = load_classification_data(root, max_bad_fraction=0.9)
    assert data.report.n_bad == len(BAD_CODES)


def test_scan_false_skips_decoding(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 3, "b": 3})
    (root / "a" / "fake.jpg").write_bytes(b"not an image")
    assert load_classification_data(root, scan=False).report.n_bad == 0
    assert load_classification_data(root).report.n_bad == 1


def test_hidden_files_ignored_non_image_named_jpg_is_bad(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 3, "b": 3})
    (root / "a" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / ".hidden").mkdir()
    _png(root / ".hidden" / "x.png", 1)
    (root / "a" / "notes.txt").write_text("hello")
    (root / "b" / "fake.jpg").write_text("hello")
    data = load_classification_data(root)
    assert data.classes == ["a", "b"]
    assert [b.code for b in data.report.bad] == ["unsupported_media_type"]
    assert data.report.ignored == [str(root / "a" / "notes.txt")]


@pytest.mark.parametrize(
    ("layout", "words"),
    [
        ({}, "no classes"),
        ({"a": 3}, "only one class"),
        ({"train/a": 2, "train/b": 2, "val/a": 1, "val/c": 1}, "'c'.*only in split 'val'"),
        ({"train/a": 2, "train/b": 2, "val/a": 1, "test/z": 1}, "'z'.*only in split 'test'"),
    ],
)
def test_layout_errors_name_the_class_and_split(
    tmp_path: Path, layout: dict[str, int], words: str
) -> None:
    root = _folder(tmp_path / "d", layout)
    root.mkdir(parents=True, exist_ok=True)
    with pytest.raises(DatasetError, match=words):
        load_classification_data(root)


@pytest.mark.parametrize("empty", ["val/b", "train/b", "b"])
def test_empty_class_folder_is_an_error(tmp_path: Path, empty: str) -> None:
    layout = {"a": 2, "c": 2} if "/" not in empty else {"train/a": 2, "train/b": 2, "val/a": 1}
    root = _folder(tmp_path / "d", layout)
    (root / empty).mkdir(parents=True, exist_ok=True)
    for f in (root / empty).glob("*"):
        f.unlink()
    with pytest.raises(DatasetError, match="'b'") as info:
        load_classification_data(root)
    split = empty.split("/")[0] if "/" in empty else "unsplit"
    assert f"split '{split}'" in info.value.message


def test_class_with_only_bad_files_in_train_is_an_error(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"train/a": 4, "train/b": 4, "val/a": 1, "val/b": 1, "val/c": 1})
    (root / "train" / "c").mkdir()
    (root / "train" / "c" / "x.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="'c' has no usable image in split 'train'"):
        load_classification_data(root)


def test_leakage_between_splits_is_reported(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"train/a": 2, "train/b": 2, "val/a": 1, "val/b": 1})
    (root / "val" / "b" / "copy.png").write_bytes((root / "train" / "a" / "000.png").read_bytes())
    report = load_classification_data(root).report
    assert len(report.leakage) == 1
    assert {f["split"] for f in report.leakage[0]["files"]} == {"train", "val"}


def _manifest(root: Path, rows: list[str]) -> Path:
    path = root / "labels.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_csv_manifest_relative_absolute_and_split(tmp_path: Path) -> None:
    root = tmp_path / "csv data"
    for i in range(4):
        _png(root / "imgs" / f"c{i}.png", 10 + i)
        _png(root / "imgs" / f"d{i}.png", 100 + i)
    far = _png(tmp_path / "elsewhere" / "ünï code.png", 250)
    rows = ["path,label,split"]
    rows += [f"imgs/c{i}.png,cat,train" for i in range(3)] + ["imgs/c3.png,cat,val"]
    rows += [f"imgs/d{i}.png,dog,train" for i in range(3)] + ["imgs/d3.png,dog,validation"]
    rows += [f'"{far}",dog,train']
    data = load_classification_data(_manifest(root, rows))
    assert data.format == "csv"
    assert data.classes == ["cat", "dog"]
    assert data.counts() == {"train": 7, "val": 2}
    assert str(far) in {r.path for r in data.splits["train"]}


def test_csv_without_split_is_split_by_fraction(tmp_path: Path) -> None:
    for i in range(10):
        _png(tmp_path / f"{i}.png", i)
    rows = [f"{i}.png,{'even' if i % 2 == 0 else 'odd'}" for i in range(10)]
    data = load_classification_data(_manifest(tmp_path, rows), val_fraction=0.2)
    assert data.counts() == {"train": 8, "val": 2}


def test_csv_missing_file_is_reported(tmp_path: Path) -> None:
    for i in range(6):
        _png(tmp_path / f"{i}.png", i)
    rows = [f"{i}.png,{i % 2}" for i in range(6)] + ["gone.png,1"]
    report = load_classification_data(_manifest(tmp_path, rows), max_bad_fraction=0.5).report
    assert [(Path(b.path).name, b.code) for b in report.bad] == [("gone.png", "not_found")]


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("a.png", "line 2: expected 2 or 3 columns"),
        ("a.png,x,holdout", "unknown split 'holdout'"),
        (",x", "line 2: empty path"),
    ],
)
def test_csv_errors_name_the_line(tmp_path: Path, row: str, words: str) -> None:
    with pytest.raises(DatasetError, match=words):
        load_classification_data(_manifest(tmp_path, ["b.png,y", row]))


def test_format_detection_and_registry(tmp_path: Path) -> None:
    assert set(DATASET_FORMATS.names()) >= {"imagefolder", "csv"}
    root = _folder(tmp_path / "d", {"a": 1, "b": 1})
    assert detect_format(str(root)).name == "imagefolder"
    assert detect_format(str(_manifest(tmp_path, ["d/a/000.png,a"]))).name == "csv"
    with pytest.raises(UnknownNameError, match="did you mean 'csv'"):
        load_classification_data(root, format="cvs")
    with pytest.raises(DatasetError, match="does not exist"):
        load_classification_data(tmp_path / "missing")
    with pytest.raises(DatasetError, match="val_fraction"):
        load_classification_data(root, val_fraction=1.5)


def test_report_write_roundtrip(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 5, "b": 5})
    data = load_classification_data(root)
    data.report.write(str(tmp_path / "out" / "report.json"))
    loaded = json.loads((tmp_path / "out" / "report.json").read_text())
    assert loaded["classes"] == ["a", "b"]
    assert loaded["fingerprint"] == data.fingerprint
    assert loaded["counts"]["val"] == {"a": 1, "b": 1}


def test_cli_report_lists_bad_files(
    tmp_path: Path, bad_images: Callable[[Path], dict[str, Path]]
) -> None:
    from typer.testing import CliRunner

    import imgrec.cli.data  # noqa: F401  (registers the commands)
    from imgrec.cli.app import app

    root = tmp_path / "d"
    _folder(root, {"a": 3, "b": 3})
    bad_images(root / "a")
    result = CliRunner().invoke(app, ["data", "report", str(root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n_bad"] == len(BAD_CODES)
    assert report["counts"]["train"]["b"] + report["counts"]["val"]["b"] == 3
    table = CliRunner().invoke(app, ["data", "report", str(root)])
    assert table.exit_code == 0 and "image_too_large" in table.output


def test_images_are_loadable_as_training_inputs(tmp_path: Path) -> None:
    from imgrec.data.images import load_image

    root = _folder(tmp_path / "d", {"a": 2, "b": 2})
    data = load_classification_data(root, val_fraction=0.5)
    arrays = [np.asarray(load_image(r.path)) for r in data.splits["train"]]
    assert all(a.shape == (8, 8, 3) for a in arrays)
