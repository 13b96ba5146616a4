"""Ingest (local, CSV, s3://) and the Great Expectations validation suite."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import make_imagefolder

from imgrec import storage
from imgrec.errors import ValidationFailedError
from imgrec.mlops.ingest import MANIFEST_COLUMNS, ingest, read_manifest
from imgrec.mlops.validate import ValidationThresholds, validate_manifest


def test_ingest_manifest_columns_and_fingerprint(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "data dir", n_train=4, n_val=2, size=14)
    m = ingest(str(data))
    assert len(m.rows) == 12 and m.classes == ["circle", "square"]
    row = m.rows[0]
    assert list(row) == list(MANIFEST_COLUMNS)
    raw = Path(row["path"]).read_bytes()
    assert row["sha256"] == hashlib.sha256(raw).hexdigest() and row["bytes"] == len(raw)
    assert (row["width"], row["height"], row["mode"], row["readable"]) == (14, 14, "L", True)
    assert m.counts() == {"train": {"circle": 4, "square": 4}, "val": {"circle": 2, "square": 2}}
    paths = m.write(str(tmp_path / "out"))
    again = read_manifest(str(tmp_path / "out"))
    assert again.rows == m.rows and again.fingerprint == m.fingerprint
    assert json.loads(Path(paths["meta"]).read_text())["fingerprint"] == m.fingerprint
    # The fingerprint is about content, labels and splits, not where the files are.
    shutil.copytree(data, tmp_path / "copy")
    assert ingest(str(tmp_path / "copy")).fingerprint == m.fingerprint
    (tmp_path / "copy" / "val" / "circle" / "val_circle_0.png").rename(
        tmp_path / "copy" / "train" / "circle" / "moved.png"
    )
    assert ingest(str(tmp_path / "copy")).fingerprint != m.fingerprint


def test_ingest_csv_manifest_and_flat_split(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "d", n_train=5, n_val=0)
    csv = tmp_path / "d" / "list.csv"
    files = sorted((data / "train").rglob("*.png"))
    csv.write_text(
        "path,label\n" + "".join(f"{p.relative_to(data)},{p.parent.name}\n" for p in files)
    )
    m = ingest(str(csv), val_fraction=0.2, seed=0)
    assert {k: sum(v.values()) for k, v in m.counts().items()} == {"train": 8, "val": 2}
    assert m.fingerprint == ingest(str(csv), val_fraction=0.2, seed=0).fingerprint
    assert m.fingerprint != ingest(str(csv), val_fraction=0.2, seed=1).fingerprint


@pytest.mark.s3
def test_ingest_from_s3(s3_bucket: str, tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "d", n_train=3, n_val=2)
    for f in sorted(data.rglob("*.png")):
        storage.write_bytes(f"{s3_bucket}/digits/{f.relative_to(data).as_posix()}", f.read_bytes())
    storage.write_bytes(f"{s3_bucket}/digits/train/circle/empty.png", b"")
    m = ingest(f"{s3_bucket}/digits")
    assert all(r["path"].startswith(f"{s3_bucket}/digits/") for r in m.rows)
    assert ingest(str(data)).fingerprint != m.fingerprint  # the extra (bad) file
    bad = [r for r in m.rows if not r["readable"]]
    assert [r["error"].split(":")[0] for r in bad] == ["empty_file"]
    m.write(f"{s3_bucket}/manifests/{m.version}")
    assert read_manifest(f"{s3_bucket}/manifests/{m.version}").rows == m.rows


def _validate(data: Path, out: Path, **thresholds: Any) -> Exception:
    with pytest.raises(ValidationFailedError) as err:
        validate_manifest(ingest(str(data)), ValidationThresholds(**thresholds), out_dir=str(out))
    assert err.value.code == "validation_failed"
    html = (out / "validation.html").read_text()
    assert "FAILED" in html
    return err.value


def test_clean_dataset_passes(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "d")
    report = validate_manifest(ingest(str(data)), out_dir=str(tmp_path / "v"))
    assert report.success and not report.critical_failures()
    assert all(c.success for c in report.checks), report.summary
    assert len(report.checks) == 12
    assert "PASSED" in (tmp_path / "v" / "summary.md").read_text()


def test_class_missing_from_val_stops(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "d", classes=("a", "b", "c"))
    shutil.rmtree(data / "val" / "c")
    err = _validate(data, tmp_path / "v")
    assert "class 'c' has 0 images in val" in str(err)


def test_duplicates_across_train_and_val_stop(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "d")
    for i in range(2):
        src = data / "train" / "square" / f"train_square_{i}.png"
        shutil.copy(src, data / "val" / "square" / f"copied_{i}.png")
    err = _validate(data, tmp_path / "v")
    assert "train_val_leakage" in str(err) and "copied_0.png" in str(err)
    report = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert report["critical_failures"] == ["train_val_leakage"]
    assert report["warnings"] == ["duplicate_hashes"]


def test_thirty_percent_unreadable_stops(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "d", n_train=10, n_val=5)
    files = sorted(data.rglob("*.png"))
    assert len(files) == 30
    for f in files[: round(0.3 * len(files))]:
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 3])  # truncated
    err = _validate(data, tmp_path / "v")
    assert "30% of the files are unreadable (limit 5%)" in str(err)
    assert "train_circle_0.png (corrupt_image)" in str(err)


def test_thresholds_are_parameters(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "d", n_train=12, n_val=4)
    err = _validate(data, tmp_path / "v", max_val_fraction=0.2, min_width=32)
    assert "split_ratio" in str(err) and "image_width" in str(err)
    t = ValidationThresholds.from_dict({"labels": "circle", "warn_only": ""})
    err = _validate(data, tmp_path / "v2", labels=t.labels)
    assert "outside the known set" in str(err)


def test_report_escapes_hostile_names(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "d")
    bad = data / "train" / "circle" / "<img src=x onerror=alert(1)>.png"
    bad.write_bytes(b"not an image")
    strict = ValidationThresholds(max_unreadable_fraction=0.0)
    report = validate_manifest(
        ingest(str(data)), strict, out_dir=str(tmp_path / "v"), raise_on_failure=False
    )
    assert not report.success
    html = (tmp_path / "v" / "validation.html").read_text()
    assert "<img" not in html and "&lt;img src=x" in html
