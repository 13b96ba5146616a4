"""Detection monitoring end to end: a tiny real detector served on loopback logs its boxes
(``imgrec.predlog/v2``, ``task: detect``), `imgrec monitor reference` profiles held-out
canvases through the same path, and `imgrec monitor report` tests the box signals."""

from __future__ import annotations

import base64
import io
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))
from serving_helpers import jpeg_bytes, start_server, stop_server, train_tiny_detector

from imgrec.cli import main
from imgrec.data.detection.sample import CANVAS, write_digits_detect

DETECTION_SIGNALS = {"boxes", "box_labels", "low_score", "mean_score", "mean_box_area"}


def canvases(root: Path, seed: int, n: int) -> list[bytes]:
    write_digits_detect(root, n_train=1, n_val=n, seed=seed)
    return [p.read_bytes() for p in sorted((root / "images" / "val").iterdir())]


def blurred(images: list[bytes]) -> list[bytes]:
    """The canvases out of focus (gaussian blur, radius 4)."""
    return [
        jpeg_bytes(Image.open(io.BytesIO(b)).filter(ImageFilter.GaussianBlur(4))) for b in images
    ]


pytestmark = pytest.mark.slow  # trains a tiny detector (~1 min on 2 cores)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train the detector, profile 40 held-out canvases, serve 40 other canvases then the
    same blurred, with a prediction log; ``until`` splits the log between the two."""
    root = tmp_path_factory.mktemp("monitor-detect")
    model = train_tiny_detector(root / "det")
    write_digits_detect(root / "held", n_train=1, n_val=40, seed=21)
    ref = root / "reference.json"
    assert main(["monitor", "reference", str(model), str(root / "held" / "data.yaml"),
                 "--out", str(ref)]) == 0  # fmt: skip
    server = start_server(
        str(model), root, options={"prediction_log": str(root / "log"), "threads": 1}
    )
    responses = []
    try:
        traffic = canvases(root / "traffic", 22, 40)
        for name, images in (("clean", traffic), ("blurred", blurred(traffic))):
            for start in range(0, len(images), 8):
                chunk = images[start : start + 8]
                body = {"instances": [{"image": {"b64": base64.b64encode(b).decode()}}
                                      for b in chunk]}  # fmt: skip
                url = f"{server.url}/v1/models/{server.name}:predict"
                headers = {"x-request-id": f"{name}-{start}"}
                r = httpx.post(url, json=body, headers=headers, timeout=120)
                assert r.status_code == 200, r.text
                responses.append((f"{name}-{start}", r.json()["predictions"]))
            if name == "clean":
                time.sleep(1.2)  # past the writer's flush; the next records are later
                until = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                time.sleep(0.05)
        time.sleep(1.5)  # the log writer flushes every second
    finally:
        stop_server(server)
    return {"root": root, "model": model, "ref": ref, "until": until, "responses": responses}


def test_detection_records_carry_the_served_boxes(served: dict[str, Any]) -> None:
    lines = [json.loads(x) for p in sorted((served["root"] / "log").glob("*.jsonl"))
             for x in p.read_text().splitlines()]  # fmt: skip
    assert len(lines) == 80
    assert {r["schema"] for r in lines} == {"imgrec.predlog/v2"}
    assert {r["task"] for r in lines} == {"detect"}
    by_id = {(r["request_id"], r["item"]): r for r in lines}
    for request_id, predictions in served["responses"]:
        for i, prediction in enumerate(predictions):
            rec = by_id[(request_id, i)]
            found = prediction["detections"]
            assert rec["boxes"] == len(found) == len(rec["labels"]) == len(rec["scores"])
            assert rec["labels"] == [d["label"] for d in found]
            assert rec["scores"] == pytest.approx([d["score"] for d in found], abs=1e-5)
            areas = [(b[2] - b[0]) * (b[3] - b[1]) / CANVAS**2 for b in (d["box"] for d in found)]
            assert rec["box_area"] == pytest.approx(areas, abs=1e-4)
            assert rec["width"] == CANVAS and 0 <= rec["brightness"] <= 1
    assert sum(r["boxes"] for r in lines) > 0


def test_reference_of_a_detector(served: dict[str, Any]) -> None:
    doc = json.loads(served["ref"].read_text())
    assert doc["model"]["task"] == "detect" and doc["data"]["images"] == 40
    cols = doc["columns"]
    assert {"labels", "scores", "box_area", "boxes", "mean_score", "brightness"} <= set(cols)
    assert [len(v) for v in cols["labels"]] == cols["boxes"]


def report(served: dict[str, Any], out: Path, *window: str) -> tuple[int, dict[str, Any]]:
    args = ["monitor", "report", "--log", str(served["root"] / "log"), "--reference",
            str(served["ref"]), "--out", str(out), "--fail-on-drift", *window]  # fmt: skip
    code = main(args)
    return code, json.loads((out / "summary.json").read_text())


def test_clean_and_blurred_windows(served: dict[str, Any], tmp_path: Path) -> None:
    from evidently.core.report import Snapshot

    from imgrec.monitoring.logs import WindowSpec, parse_time
    from imgrec.monitoring.report import monitor_report

    spec = WindowSpec(since=parse_time("1d"), until=parse_time(served["until"]))
    # the verdict only (no Evidently page: the shifted window below renders one)
    clean = monitor_report(str(served["root"] / "log"), str(served["ref"]), spec, None)
    assert clean["window"]["n"] == 40
    names = {s["name"] for s in clean["signals"]}
    assert names >= DETECTION_SIGNALS and "brightness" in names and "label" not in names
    tested = {s["name"] for s in clean["signals"] if s["p_value"] is not None}
    assert tested >= DETECTION_SIGNALS
    assert clean["drift"] is False, clean["signals"]
    code, shifted = report(served, tmp_path / "blurred", "--last", "40")
    drifted = {s["name"] for s in shifted["signals"] if s["drifted"]}
    assert code == 3 and shifted["drift"] is True
    assert drifted & DETECTION_SIGNALS, shifted["signals"]  # the boxes moved, not only pixels
    snap = Snapshot.load(str(tmp_path / "blurred" / "snapshot.json"))
    metrics = [m["metric_name"] for m in snap.dict()["metrics"]]
    assert any(m.startswith("ValueDrift(column=mean_score") for m in metrics)
    assert "imgrec-verdict" in (tmp_path / "blurred" / "report.html").read_text()
