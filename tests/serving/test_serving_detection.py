"""A detection model in the KServe predictor: V1 and V2 boxes in each image's own pixels.

A tiny FCOS is trained here (8 digits-detect canvases, 1 epoch, 96 px) and served by a real
server; its answers are checked against ``detect_images`` run in this process on the same bytes.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from serving_helpers import Server, jpeg_bytes, train_tiny_detector

from imgrec.data.images import decode_image
from imgrec.models.detectors import load_detector
from imgrec.tasks.detect.evaluate import card_threshold, detect_images
from imgrec.tasks.detect.predict import detection_records


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_detector(tmp_path_factory.mktemp("serve-detect"))


@pytest.fixture(scope="module")
def server(detector_dir: Path, run_server: Any) -> Server:
    return run_server(str(detector_dir), options={"threads": 1})  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def photo(detector_dir: Path) -> bytes:
    """A val canvas stretched to 512x384 (not square, JPEG: a draft decode would shrink it)."""
    src = sorted((detector_dir.parents[1] / "data" / "images" / "val").iterdir())[0]
    return jpeg_bytes(Image.open(src).convert("RGB").resize((512, 384)))


def reference(detector_dir: Path, data: bytes, threshold: float | None = None) -> list[Any]:
    det, card = load_detector(str(detector_dir))
    found = detect_images(det, [decode_image(data)], card.preprocessing)[0]
    chosen = card_threshold(card) if threshold is None else threshold
    return detection_records(found, card.classes, chosen)


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        assert g["label"] == w["label"]
        assert g["score"] == pytest.approx(w["score"], abs=1e-4)
        np.testing.assert_allclose(g["box"], w["box"], atol=0.05)


def test_v1_boxes_in_original_pixels(server: Server, detector_dir: Path, photo: bytes) -> None:
    r = server.predict_bytes(photo, parameters={"max_detections": 10})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"][0]["detections"]
    want = reference(detector_dir, photo)[:10]
    assert_same(got, want)
    boxes = np.array([d["box"] for d in got])
    assert (boxes >= 0).all()
    assert (boxes[:, [0, 2]] <= 512).all() and (boxes[:, [1, 3]] <= 384).all()
    assert boxes[:, 2].max() > 96  # in the photo's pixels, not the 96-px model input's


def test_v1_threshold_bad_item_and_annotated_image(
    server: Server, detector_dir: Path, photo: bytes
) -> None:
    good = {"image": {"b64": base64.b64encode(photo).decode()}}
    bad = {"image": {"b64": base64.b64encode(b"not an image at all").decode()}}
    params = {"score_threshold": 0.08, "annotate": True}
    r = server.v1([good, bad], parameters=params)
    assert r.status_code == 200, r.text
    first, second = r.json()["predictions"]
    assert_same(first["detections"], reference(detector_dir, photo, threshold=0.08))
    assert all(d["score"] >= 0.08 for d in first["detections"])
    shown = Image.open(io.BytesIO(base64.b64decode(first["annotated_image"]["b64"])))
    assert shown.format == "JPEG" and shown.size == (512, 384)
    assert second["error"]["code"] == "unsupported_media_type"
    assert server.v1([bad]).status_code == 415  # every item bad: the request fails
    bad_param = server.v1([good], parameters={"score_threshold": 2})
    assert bad_param.status_code == 400 and "score_threshold" in bad_param.text


def test_v2_outputs_match_v1(server: Server, photo: bytes) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    meta = client.get_model_metadata("imgrec")
    assert {o["name"] for o in meta["outputs"]} >= {"detections", "boxes", "scores", "label"}
    inp = triton.InferInput("image", [2], "BYTES")
    inp.set_data_from_numpy(np.array([photo, b"\x00garbage"], dtype=object))
    res = client.infer("imgrec", [inp], parameters={"max_detections": 5})
    v1 = server.predict_bytes(photo, parameters={"max_detections": 5}).json()
    want = v1["predictions"][0]["detections"]
    count = res.as_numpy("count")
    assert list(count) == [len(want), 0]
    assert json.loads(res.as_numpy("detections")[0]) == want
    boxes, scores = res.as_numpy("boxes"), res.as_numpy("scores")
    assert boxes.shape == (2, len(want), 4) and scores.shape == (2, len(want))
    np.testing.assert_allclose(boxes[0], [d["box"] for d in want], atol=1e-3)
    np.testing.assert_allclose(scores[0], [d["score"] for d in want], atol=1e-6)
    labels = [b.decode() for b in res.as_numpy("label")[0]]
    assert labels == [d["label"] for d in want]
    assert res.as_numpy("error")[1] in (b"unsupported_media_type", "unsupported_media_type")


@pytest.mark.slow
def test_torchserve_handler_returns_boxes(detector_dir: Path, photo: bytes, tmp_path: Path) -> None:
    import httpx

    from imgrec.serving.export import export_model
    from imgrec.serving.torchserve import TorchServe

    export_model(str(detector_dir), "mar", tmp_path / "store")
    with TorchServe.start(tmp_path / "store", ["imgrec=imgrec.mar"], tmp_path / "ts") as ts:
        ts.wait_ready(300)
        url = f"{ts.url}/predictions/imgrec"
        auth = {"Authorization": f"Bearer {ts.keys()['inference']}"}
        r = httpx.post(url, content=photo, headers=auth, timeout=60)
        assert r.status_code == 200, r.text
        assert_same(r.json()["detections"], reference(detector_dir, photo))
        bad = httpx.post(url, content=b"<html>not an image</html>", headers=auth, timeout=60)
        assert bad.status_code == 415 and json.loads(bad.text)["code"] == "unsupported_media_type"
