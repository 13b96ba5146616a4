"""A tiny train / evaluate / predict run through the CLI, and boxes drawn where the JSON says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgrec.cli import main
from imgrec.data.detection.sample import write_digits_detect
from imgrec.tasks.detect.predict import draw_detections


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("detect e2e")  # a space in the path on purpose
    data = root / "digits"
    write_digits_detect(data, n_train=12, n_val=4, seed=3)
    run = root / "run"
    code = main([
        "train", str(data / "data.yaml"), "--img-size", "128", "--epochs", "2", "--batch-size", "4",
        "--out", str(run), "--quiet", "--set", "cache_views=1", "--set", "threads=1",
    ])  # fmt: skip
    assert code == 0
    return data, run


def test_train_writes_the_run_directory(trained) -> None:
    _, run = trained
    names = ("model/model.json", "model/weights.safetensors", "last/model.json", "checkpoint.pt",
             "config.yaml", "history.jsonl", "metrics.json", "data_report.json", "report.html",
             "figures/pr_curves.png", "figures/confusion_matrix.png")  # fmt: skip
    for name in names:
        assert (run / name).is_file(), name
    card = json.loads((run / "model" / "model.json").read_text())
    assert card["task"] == "detect" and card["classes"] == [str(d) for d in range(10)]
    assert card["preprocessing"]["input_size"] == 128 and card["preprocessing"]["crop"] == "none"


def test_evaluate_json_has_the_contract_keys(trained, capsys) -> None:
    data, run = trained
    assert main(["evaluate", str(run / "model"), str(data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in (
        "map",
        "map50",
        "map75",
        "classes",
        "per_class",
        "precision",
        "recall",
        "confusion_matrix",
    ):
        assert key in metrics, key
    assert 0.0 <= metrics["map"] <= metrics["map50"] <= 1.0
    assert metrics["n"] == 4 and set(metrics["per_class"]) == set(metrics["classes"])


def test_predict_json_boxes_in_original_pixels_and_bad_files(trained, tmp_path, capsys) -> None:
    data, run = trained
    big = tmp_path / "big.png"
    Image.open(data / "images" / "val" / "000000.jpg").resize((512, 384)).save(big)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"%PDF-1.4 not an image")
    code = main(["predict", str(big), str(bad), "--model", str(run / "model"), "--json",
                 "--save-dir", str(tmp_path / "out")])  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1  # one image failed
    assert lines[1]["error"]["code"] == "unsupported_media_type"
    record = lines[0]
    assert record["source"] == str(big)
    for det in record["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 <= x2 <= 512 and 0 <= y1 <= y2 <= 384
        assert det["label"] in [str(d) for d in range(10)] and 0 <= det["score"] <= 1
    saved = Image.open(record["saved"])
    assert saved.size == (512, 384)


def test_boxes_scale_back_to_each_images_own_pixels(trained, tmp_path) -> None:
    from imgrec.evaluation.detection import box_iou
    from imgrec.tasks.detect.predict import predict

    data, run = trained
    small = data / "images" / "val" / "000002.jpg"  # 256 x 256
    big = tmp_path / "big.png"
    Image.open(small).resize((512, 384), Image.Resampling.BILINEAR).save(big)
    a, b = predict([str(small), str(big)], model=run / "model", score_threshold=0.0)
    assert a["detections"] and b["detections"]
    top = np.array(a["detections"][0]["box"]) * [2, 1.5, 2, 1.5]
    others = np.array([d["box"] for d in b["detections"][:20]])
    assert box_iou(top[None], others).max() > 0.8


def test_drawn_boxes_land_where_the_json_says(tmp_path) -> None:
    image = Image.new("RGB", (200, 150), (255, 255, 255))
    detections = [{"label": "7", "score": 0.9, "box": [20.0, 40.0, 90.0, 120.0]},
                  {"label": "3", "score": 0.8, "box": [120.0, 30.0, 180.0, 100.0]}]  # fmt: skip
    drawn = np.asarray(draw_detections(image, detections)).astype(int)
    for det in detections:
        x1, y1, x2, y2 = (round(v) for v in det["box"])
        edges = [drawn[(y1 + y2) // 2, x1], drawn[(y1 + y2) // 2, x2], drawn[y2, (x1 + x2) // 2]]
        colour = edges[0]
        assert not np.array_equal(colour, [255, 255, 255])
        for pixel in edges:
            assert np.array_equal(pixel, colour)  # the outline runs through the JSON's coordinates
        assert np.array_equal(drawn[(y1 + y2) // 2, x1 - 2], [255, 255, 255])  # nothing left of it
        assert np.array_equal(
            drawn[(y1 + y2) // 2, (x1 + x2) // 2], [255, 255, 255]
        )  # inside clear


def test_predict_video_writes_an_annotated_copy(trained, tmp_path) -> None:
    import cv2

    from imgrec.tasks.detect.predict import predict

    data, run = trained
    frame = cv2.imread(str(data / "images" / "val" / "000001.jpg"))
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (256, 256))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    (record,) = list(predict([str(path)], model=run / "model", save_dir=tmp_path / "out"))
    assert record["n_frames"] == 3 and record["fps"] > 0
    capture = cv2.VideoCapture(record["video"])
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()


@pytest.mark.parametrize("views", [1, 2])
def test_training_survives_bad_labels_and_undecodable_images(tmp_path, views) -> None:
    from imgrec.tasks.detect.train import train

    data = tmp_path / "digits"
    write_digits_detect(data, n_train=8, n_val=3, seed=5)
    jpeg = data / "images" / "train" / "000001.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:1500])  # truncated: the header still reads
    (data / "labels" / "train" / "000002.txt").write_text("3 0.5 0.5 0.2\n")  # 4 columns
    result = train(data / "data.yaml", out=tmp_path / "run", epochs=1, img_size=96, batch_size=4,
                   cache_views=views, threads=1, progress=False)  # fmt: skip
    report = json.loads((Path(result.run_dir) / "data_report.json").read_text())
    assert report["counts"] == {"wrong_columns": 1}
    assert report["issues"][0]["file"].endswith("000002.txt") and report["issues"][0]["line"] == 1
    assert [b["code"] for b in report["undecodable_images"]] == ["corrupt_image"]
    assert report["splits"]["train"]["images"] == 7
    assert result.metrics["n"] == 3


def test_detector_options_are_the_same_in_the_cli_and_the_python_api(trained, capsys) -> None:
    import imgrec

    data, run = trained
    image = str(data / "images" / "val" / "000000.jpg")
    code = main(["predict", image, "--model", str(run / "model"), "--json",
                 "--conf", "0", "--iou", "0.3", "--max-det", "2"])  # fmt: skip
    assert code == 0
    (cli,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (api,) = imgrec.predict([image], model=run / "model", score_threshold=0.0,
                            iou_threshold=0.3, max_detections=2)  # fmt: skip
    assert len(cli["detections"]) == 2 and cli["detections"] == api["detections"]
    # NMS at --iou: boxes of one label overlap by at most that much; a looser one keeps more
    loose = next(iter(imgrec.predict([image], model=run / "model", score_threshold=0.0,
                                     iou_threshold=0.9)))  # fmt: skip
    tight = next(iter(imgrec.predict([image], model=run / "model", score_threshold=0.0,
                                     iou_threshold=0.1)))  # fmt: skip
    assert _max_same_label_iou(tight["detections"]) <= 0.1 + 0.01  # boxes are rounded
    assert _max_same_label_iou(loose["detections"]) > 0.1

    assert main(["predict", image, "--model", str(run / "model"), "--conf", "1.5"]) == 2
    assert "error[invalid_config]" in capsys.readouterr().err
    assert main(["predict", image, "--model", "small_resnet", "--max-det", "3"]) == 2
    assert "apply to detectors" in capsys.readouterr().err


def _max_same_label_iou(detections: list[dict]) -> float:
    from imgrec.evaluation.detection import box_iou

    best = 0.0
    for label in {d["label"] for d in detections}:
        boxes = np.array([d["box"] for d in detections if d["label"] == label])
        if len(boxes) > 1:
            iou = box_iou(boxes, boxes)
            np.fill_diagonal(iou, 0.0)
            best = max(best, float(iou.max()))
    return best
