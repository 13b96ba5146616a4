"""`imgrec label export|import`: Label Studio tasks out, exports and CSVs back in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from label_fixtures import (
    CLASSES,
    annotation,
    choice,
    export_task,
    rectangle,
    store_with_model,
    write_captures,
)

from imgrec.cli import main
from imgrec.errors import LabelError
from imgrec.labels import export_tasks, import_labels


def test_export_tasks_least_certain_first(tmp_path: Path) -> None:
    from imgrec.tasks import get_task

    fps = write_captures(tmp_path / "cap", 6)
    store = store_with_model(tmp_path)
    summary = export_tasks(str(tmp_path / "cap"), f"{store}@production", str(tmp_path / "t.json"))
    assert summary["tasks"] == 6 and summary["task"] == "classify"
    tasks = json.loads((tmp_path / "t.json").read_text())
    assert sorted(t["data"]["fingerprint"] for t in tasks) == sorted(fps)
    scores = [t["predictions"][0]["score"] for t in tasks]
    assert scores == sorted(scores)
    first = tasks[0]
    [pred] = first["predictions"]
    assert pred["model_version"] == "1"
    [result] = pred["result"]
    assert result["type"] == "choices" and result["from_name"] == "label"
    assert result["to_name"] == "image" and result["score"] == pred["score"]
    digits = first["data"]["fingerprint"].split(":")[1]
    assert first["data"]["image"] == f"/data/local-files/?d={digits[:2]}/{digits}.png"
    # the pre-annotation is the model's own top-1 on that image
    path = next((tmp_path / "cap").rglob(f"{digits}.png"))
    from imgrec.model_store import ModelStore

    model_dir = ModelStore(store).production().model_uri  # type: ignore[union-attr]
    [record] = get_task("classify").predict([str(path)], model=model_dir, top_k=1)
    assert result["value"]["choices"] == [record["predictions"][0]["label"]]
    assert pred["score"] == pytest.approx(record["predictions"][0]["score"], abs=1e-5)
    config = (tmp_path / "label_config.xml").read_text()
    assert '<Choices name="label" toName="image"' in config
    assert all(f'<Choice value="{c}"/>' in config for c in CLASSES)


def test_export_limit_and_url_prefix(tmp_path: Path) -> None:
    write_captures(tmp_path / "cap", 5)
    store = store_with_model(tmp_path)
    out = tmp_path / "t.json"
    code = main(["label", "export", str(tmp_path / "cap"), "--model", store, "--out", str(out),
                 "--limit", "2", "--url-prefix", "http://files.local/cap/"])  # fmt: skip
    assert code == 0
    tasks = json.loads(out.read_text())
    assert len(tasks) == 2
    digits = tasks[0]["data"]["fingerprint"].split(":")[1]
    assert tasks[0]["data"]["image"] == f"http://files.local/cap/{digits[:2]}/{digits}.png"


def _export(tmp_path: Path, tasks: list[dict]) -> str:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    return str(path)


def test_import_labelstudio_export_to_imagefolder(tmp_path: Path) -> None:
    fps = write_captures(tmp_path / "cap", 4)
    old = annotation([choice("0")], updated_at="2026-11-30T09:00:00Z")
    new = annotation([choice("2")], updated_at="2026-11-30T11:00:00Z")
    tasks = [
        export_task(1, fps[0], [annotation([choice("1")])]),
        export_task(2, fps[1], [old, new]),  # the latest annotation counts
        export_task(
            3, fps[2], [annotation([choice("1")]), annotation([choice("0")], ground_truth=True)]
        ),
        export_task(4, fps[0], [annotation([choice("1")])]),  # identical duplicate: kept once
    ]
    summary = import_labels(_export(tmp_path, tasks), str(tmp_path / "cap"), str(tmp_path / "new"),
                            classes=CLASSES)  # fmt: skip
    assert summary["imported"] == 3 and summary["classes"] == {"0": 1, "1": 1, "2": 1}
    found = {p.parent.name: p.name for p in (tmp_path / "new").rglob("*.png")}
    assert found == {
        "1": fps[0].split(":")[1] + ".png",
        "2": fps[1].split(":")[1] + ".png",
        "0": fps[2].split(":")[1] + ".png",
    }
    from imgrec.data.dataset import load_classification_data

    data = load_classification_data(str(tmp_path / "new"), val_fraction=0.0)
    assert data.classes == ["0", "1", "2"]


def test_bad_export_items_are_refused_one_by_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fps = write_captures(tmp_path / "cap", 3)
    tasks = [
        export_task(1, fps[0], [annotation([choice("1")])]),
        export_task(2, "sha256:00000000deadbeef", [annotation([choice("1")])]),  # unknown image
        export_task(3, fps[1], [annotation([choice("cat")])]),  # unknown class
        export_task(4, fps[2], []),  # no annotation
        export_task(5, fps[2], [annotation([choice("1")], was_cancelled=True)]),  # skipped
    ]
    source = _export(tmp_path, tasks)
    code = main(["label", "import", source, "--capture", str(tmp_path / "cap"),
                 "--out", str(tmp_path / "new"), "--classes", ",".join(CLASSES)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "error[labels_refused]: 4 of 5 labelled items refused" in err
    assert "refused task 2: unknown image sha256:00000000deadbeef" in err
    assert "refused task 3: unknown class 'cat'" in err
    assert "refused task 4: no annotation with a result" in err
    assert "refused task 5: no annotation with a result" in err
    assert not (tmp_path / "new").exists()  # nothing written
    summary = import_labels(source, str(tmp_path / "cap"), str(tmp_path / "new"),
                            classes=CLASSES, skip_refused=True)  # fmt: skip
    assert summary["imported"] == 1 and len(summary["refused"]) == 4


def test_conflicting_duplicates_are_an_error(tmp_path: Path) -> None:
    fps = write_captures(tmp_path / "cap", 1)
    tasks = [export_task(1, fps[0], [annotation([choice("1")])]),
             export_task(2, fps[0], [annotation([choice("2")])])]  # fmt: skip
    with pytest.raises(LabelError, match="conflicting labels") as info:
        import_labels(_export(tmp_path, tasks), str(tmp_path / "cap"), str(tmp_path / "n"),
                      classes=CLASSES)  # fmt: skip
    assert info.value.code == "labels_conflict" and "task 1" in str(info.value)


def test_csv_labels(tmp_path: Path) -> None:
    fps = write_captures(tmp_path / "cap", 3)
    csv = tmp_path / "labels.csv"
    bare = fps[1].split(":")[1]
    csv.write_text(f"fingerprint,label\n{fps[0]},2\n{bare},1\n{fps[0]},2\n")
    code = main(["label", "import", str(csv), "--capture", str(tmp_path / "cap"),
                 "--out", str(tmp_path / "new"), "--classes", "0,1,2"])  # fmt: skip
    assert code == 0
    assert sorted(p.parent.name for p in (tmp_path / "new").rglob("*.png")) == ["1", "2"]


@pytest.mark.parametrize(
    ("rows", "code", "message"),
    [
        ("{a},1\n{a},2\n", "labels_conflict", "conflicting labels for sha256:"),
        ("{a},7\n", "labels_refused", "line 1: unknown class '7'"),
        ("nothex,1\n", "labels_refused", "line 1: 'nothex' is not a fingerprint"),
        ("0000000000000000,1\n", "labels_refused", "unknown image sha256:0000000000000000"),
        ("{a}\n", "labels_refused", "expected 2 columns"),
    ],
)
def test_bad_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, code: str, message: str
) -> None:
    [fp] = write_captures(tmp_path / "cap", 1)
    csv = tmp_path / "labels.csv"
    csv.write_text(rows.format(a=fp))
    assert main(["label", "import", str(csv), "--capture", str(tmp_path / "cap"),
                 "--out", str(tmp_path / "new"), "--classes", "0,1,2"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"error[{code}]" in err and message in err


def test_import_rectangles_to_coco(tmp_path: Path) -> None:
    from imgrec.data.detection import load_detection_data

    fps = write_captures(tmp_path / "cap", 2)
    tasks = [
        export_task(
            1, fps[0], [annotation([rectangle(10, 20, 50, 25, "2"), rectangle(0, 0, 10, 10, "0")])]
        ),
        export_task(2, fps[1], [annotation([rectangle(25, 25, 50, 50, "1")])]),
    ]
    summary = import_labels(_export(tmp_path, tasks), str(tmp_path / "cap"), str(tmp_path / "coco"),
                            classes=CLASSES)  # fmt: skip
    assert summary["task"] == "detect" and summary["classes"] == {"0": 1, "1": 1, "2": 1}
    coco = json.loads((tmp_path / "coco" / "annotations" / "train.json").read_text())
    boxes = {a["category_id"]: a["bbox"] for a in coco["annotations"]}
    assert boxes[3] == [2.0, 4.0, 10.0, 5.0]  # 10 %, 20 %, 50 %, 25 % of 20 px
    assert boxes[2] == [5.0, 5.0, 10.0, 10.0]
    data = load_detection_data(str(tmp_path / "coco"))
    assert data.classes == CLASSES and len(data.splits["train"]) == 2


def test_out_folder_must_be_new(tmp_path: Path) -> None:
    fps = write_captures(tmp_path / "cap", 1)
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "x.txt").write_text("old")
    csv = tmp_path / "l.csv"
    csv.write_text(f"{fps[0]},1\n")
    with pytest.raises(LabelError, match="not empty"):
        import_labels(str(csv), str(tmp_path / "cap"), str(tmp_path / "new"), classes=CLASSES)


def test_classes_are_required(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["label", "import", "x.csv", "--capture", "c", "--out", "o"]) == 2
    assert "error[invalid_config]: the known classes are needed" in capsys.readouterr().err


def test_a_real_label_studio_export(tmp_path: Path) -> None:
    """tests/labels/data/labelstudio-export.json was produced by Label Studio 1.23.2 itself
    (benchmarks/labelstudio_roundtrip.py): our tasks imported, five annotated through its API,
    one left open, then Export -> JSON."""
    from imgrec.data.captures import capture_key

    export = Path(__file__).parent / "data" / "labelstudio-export.json"
    tasks = json.loads(export.read_text())
    from label_fixtures import png

    for i, task in enumerate(tasks):  # a capture file under each task's fingerprint
        target = tmp_path / "cap" / capture_key(task["data"]["fingerprint"], png(i))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png(i))
    summary = import_labels(str(export), str(tmp_path / "cap"), str(tmp_path / "new"),
                            classes=CLASSES, skip_refused=True)  # fmt: skip
    assert summary["imported"] == 5 and summary["classes"] == {"0": 2, "1": 2, "2": 1}
    assert summary["refused"] == [
        "task 6: no annotation with a result (empty, skipped or cancelled)"
    ]
    assert tasks[0]["predictions"] or tasks[0]["annotations"][0]["prediction"]  # ours, kept by LS
