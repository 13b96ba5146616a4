"""The pipeline with ``task=detect``: detection manifest, box-sanity validation, the mAP gate,
and a whole local run on a tiny digits-detect sample that registers a detector."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imgrec.data.detection.sample import write_digits_detect
from imgrec.errors import ValidationFailedError
from imgrec.mlops import run_local
from imgrec.mlops.gate import GatePolicy, decide
from imgrec.mlops.steps import gate_step, ingest_step, preprocess_step, validate_step
from imgrec.model_store import ModelStore

THRESHOLDS = {"min_images": 4}


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("det") / "digits"
    write_digits_detect(root, n_train=8, n_val=3, seed=4)
    return root


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_ingest_writes_a_detection_manifest_with_a_stable_fingerprint(
    digits: Path, tmp_path: Path
) -> None:
    meta = ingest_step(str(digits), str(tmp_path / "m1"), task="detect")
    again = ingest_step(str(digits), str(tmp_path / "m2"), task="detect")
    assert meta["task"] == "detect" and meta["layout"] == "coco"
    assert meta["fingerprint"] == again["fingerprint"] and meta["n_images"] == 11
    assert meta["images"] == {"train": 8, "val": 3}
    rows = (tmp_path / "m1" / "manifest.csv").read_text().splitlines()
    assert rows[0] == "path,split,sha256,width,height,n_boxes,labels,readable,error"
    boxes = json.loads((digits / "annotations" / "train.json").read_text())["annotations"]
    assert sum(meta["counts"]["train"].values()) == len(boxes)
    # The same images read through the YOLO data.yaml are the same dataset version.
    yolo = ingest_step(str(digits / "data.yaml"), str(tmp_path / "m3"), task="detect")
    assert yolo["layout"] == "yolo" and yolo["fingerprint"] == meta["fingerprint"]
    assert validate_step(str(tmp_path / "m1"), str(tmp_path / "v"), THRESHOLDS)["success"]


def test_validate_fails_on_broken_labels_naming_the_file_and_line(
    digits: Path, tmp_path: Path
) -> None:
    data = _copy(digits, tmp_path / "bad")
    label = data / "labels" / "train" / "000002.txt"
    lines = label.read_text().splitlines()
    label.write_text("\n".join([*lines, "3 0.5 0.5"]) + "\n")  # 3 columns instead of 5
    ingest_step(str(data / "data.yaml"), str(tmp_path / "m"), task="detect")
    with pytest.raises(ValidationFailedError) as info:
        validate_step(str(tmp_path / "m"), str(tmp_path / "v"), THRESHOLDS)
    message = info.value.message
    assert "label_errors" in message and "wrong_columns" in message
    assert f"000002.txt:{len(lines) + 1}" in message
    assert "FAILED" in (tmp_path / "v" / "summary.md").read_text()


def test_validate_fails_on_leakage_and_unknown_labels(digits: Path, tmp_path: Path) -> None:
    data = _copy(digits, tmp_path / "leak")
    for kind, ext in (("images", "jpg"), ("labels", "txt")):
        shutil.copyfile(data / kind / "train" / f"000001.{ext}", data / kind / "val" / f"x.{ext}")
    ingest_step(str(data / "data.yaml"), str(tmp_path / "m"), task="detect")
    with pytest.raises(ValidationFailedError) as info:
        validate_step(str(tmp_path / "m"), str(tmp_path / "v"), {**THRESHOLDS, "labels": "0,1"})
    message = info.value.message
    assert "train_val_leakage" in message and "x.jpg" in message
    assert "known_labels" in message and "classes outside the known set" in message


def test_preprocess_refuses_a_task_other_than_the_ingested_one(
    digits: Path, tmp_path: Path
) -> None:
    ingest_step(str(digits), str(tmp_path / "m"), task="detect")
    with pytest.raises(Exception, match="ingested for task='detect'"):
        preprocess_step(str(tmp_path / "m"), str(tmp_path / "p"), task="classify")
    pre = preprocess_step(
        str(tmp_path / "m"), str(tmp_path / "p"), task="detect", epochs=2, overrides="lr=0.01"
    )
    saved = json.loads((tmp_path / "p" / "train_config.json").read_text())
    assert saved["task"] == "detect" and saved["config"]["lr"] == 0.01
    assert pre["config"]["epochs"] == 2 and pre["config"]["model"] == "fcos"


def _det_metrics(map_: float, aps: dict[str, float | None]) -> dict:
    return {
        "map": map_,
        "map50": map_,
        "classes": list(aps),
        "per_class": {c: {"ap": ap, "ap50": ap} for c, ap in aps.items()},
    }


def test_gate_decides_on_map_with_per_class_ap_regression(digits: Path, tmp_path: Path) -> None:
    policy = GatePolicy(metric="map", per_class_metric="ap", max_class_regression=0.05)
    prod = _det_metrics(0.50, {"a": 0.5, "b": 0.5, "c": None})
    better = decide(_det_metrics(0.55, {"a": 0.6, "b": 0.5, "c": 0.9}), prod, policy)
    assert better.passed and better.class_deltas == {"a": 0.1, "b": 0.0}
    regress = decide(_det_metrics(0.55, {"a": 0.9, "b": 0.2, "c": None}), prod, policy)
    assert not regress.passed and "'b' -0.3000" in regress.reasons[-1]
    # In the pipeline, metric=auto picks map (and per-class AP) for a detection manifest.
    ingest_step(str(digits), str(tmp_path / "m"), task="detect")
    out = gate_step(
        _det_metrics(0.4, {"0": 0.4}), str(tmp_path / "m"), str(tmp_path / "store"), None,
        {"metric": "auto", "absolute_floor": 0.5},
    )  # fmt: skip
    assert out["metric"] == "map" and out["policy"]["per_class_metric"] == "ap"
    assert not out["passed"] and "misses the absolute floor" in out["reasons"][0]


@pytest.mark.slow
def test_pipeline_runs_locally_with_task_detect_and_registers_a_model(
    digits: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    params = {
        "task": "detect",
        "img_size": "96",
        "epochs": "1",
        "train_overrides": "batch_size=4,cache_views=1,max_seconds=30",
        "train_threads": "1",
        "min_images": "4",
        "gate_absolute_floor": "0.0",
    }
    summary = run_local(str(digits), str(store), params, runs_dir=str(tmp_path / "runs"))
    assert summary["status"] == "succeeded", summary
    assert summary["registered_version"] == 1 and summary["production_version"] == 1
    assert summary["gate"]["metric"] == "map" and summary["gate"]["passed"]
    for key in ("map", "map50", "map75"):
        assert 0.0 <= summary["metrics"][key] <= 1.0, key
    assert summary["metrics"]["n"] == 3
    assert "detection" in Path(summary["reports"]["evaluation"]).read_text().lower()
    assert "Detection dataset" in Path(summary["reports"]["dataset"]).read_text()
    version = ModelStore(store).get(1)
    card = json.loads((Path(version.model_uri) / "model.json").read_text())
    assert card["task"] == "detect" and card["classes"] == [str(d) for d in range(10)]
    assert card["preprocessing"]["input_size"] == 96
    assert version.metrics["map"] == pytest.approx(summary["metrics"]["map"])
    assert version.metadata["dataset"]["fingerprint"].startswith("sha256:")

    # Second run: the production detector is scored on the same data; nothing beats +1.0 mAP.
    again = run_local(
        str(digits), str(store), {**params, "gate_min_improvement": "1.0"},
        runs_dir=str(tmp_path / "runs"),
    )  # fmt: skip
    assert again["status"] == "succeeded" and again["registered_version"] is None
    assert any("vs production v1" in r for r in again["gate"]["reasons"])
    assert again["production_version"] == 1
