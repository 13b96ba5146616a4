"""V1 and V2 against a real KServe predictor serving the pretrained EfficientNet-Lite0."""

from __future__ import annotations

import base64
import io
import json
import time

import httpx
import numpy as np
import pytest
from PIL import Image
from serving_helpers import CAT_CLASSES, Server


def test_v1_predicts_cat_for_chelsea(default_server: Server, chelsea_jpeg: bytes) -> None:
    r = default_server.predict_bytes(chelsea_jpeg)
    assert r.status_code == 200, r.text
    body = r.json()
    [pred] = body["predictions"]
    assert pred["labels"][0] in CAT_CLASSES
    assert len(pred["labels"]) == 5 and pred["scores"] == sorted(pred["scores"], reverse=True)
    assert body["model_version"] == "pretrained" and body["id"]


def test_v2_triton_client_bytes_input(default_server: Server, chelsea_jpeg: bytes) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(default_server.url.removeprefix("http://"))
    assert client.is_server_ready() and client.is_model_ready("imgrec")
    meta = client.get_model_metadata("imgrec")
    inputs = {i["name"]: i for i in meta["inputs"]}
    assert inputs["image"] == {"name": "image", "datatype": "BYTES", "shape": [-1]}
    assert inputs["input"]["shape"] == [-1, 3, 224, 224] and inputs["input"]["datatype"] == "FP32"
    assert {o["name"] for o in meta["outputs"]} >= {"label", "score", "class_id"}

    inp = triton.InferInput("image", [2], "BYTES")
    inp.set_data_from_numpy(np.array([chelsea_jpeg, chelsea_jpeg], dtype=object))  # binary
    result = client.infer("imgrec", [inp], parameters={"top_k": 3})
    labels = result.as_numpy("label")
    assert labels.shape == (2, 3)
    assert labels[0][0].decode() in CAT_CLASSES
    scores = result.as_numpy("score")
    assert scores.dtype == np.float32 and np.allclose(scores[0], scores[1])


def test_v2_json_base64_and_fp32_input_agree(default_server: Server, chelsea_jpeg: bytes) -> None:
    from imgrec.data.images import decode_image
    from imgrec.data.transforms import eval_transform
    from imgrec.predictor import load_model

    url = f"{default_server.url}/v2/models/imgrec/infer"
    b64 = base64.b64encode(chelsea_jpeg).decode()
    r = httpx.post(
        url,
        json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64]}]},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    pre = load_model("efficientnet_lite0").card.preprocessing
    x = eval_transform(pre)(decode_image(chelsea_jpeg)).numpy()[None]  # (1, 3, 224, 224)
    import tritonclient.http as triton  # FP32 as binary: 600 KB instead of 3 MB of JSON

    client = triton.InferenceServerClient(default_server.url.removeprefix("http://"))
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x.astype(np.float32))
    result = client.infer("imgrec", [tensor])
    assert result.as_numpy("label")[0][0].decode() == out["label"]["data"][0]
    # same top-5 scores up to the JPEG draft decode (none here: 451x300 < 2x256)
    assert np.allclose(result.as_numpy("score")[0], out["score"]["data"], atol=1e-5)


def test_v2_bad_requests_have_codes(default_server: Server) -> None:
    url = f"{default_server.url}/v2/models/imgrec/infer"
    wrong_shape = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [1, 3, 8, 8], "data": [0.0] * 192}
        ]
    }
    r = httpx.post(url, json=wrong_shape, timeout=30)
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    assert "224" in r.json()["message"]
    unknown = {"inputs": [{"name": "pixels", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}
    r = httpx.post(url, json=unknown, timeout=30)
    assert r.status_code == 400 and "pixels" in r.json()["message"]
    r = httpx.post(f"{default_server.url}/v2/models/nope/infer", json=unknown, timeout=30)
    assert r.status_code == 404 and r.json()["code"] == "model_not_found"


def test_annotated_image_is_returned(default_server: Server, chelsea_jpeg: bytes) -> None:
    r = default_server.predict_bytes(chelsea_jpeg, parameters={"annotate": True, "top_k": 1})
    assert r.status_code == 200, r.text
    [pred] = r.json()["predictions"]
    shown = Image.open(io.BytesIO(base64.b64decode(pred["annotated_image"]["b64"])))
    original = Image.open(io.BytesIO(chelsea_jpeg))
    assert shown.size == original.size and len(pred["labels"]) == 1
    # the banner changed the top-left corner
    a = np.asarray(shown.convert("RGB"), dtype=float)[:10, :40]
    b = np.asarray(original.convert("RGB"), dtype=float)[:10, :40]
    assert np.abs(a - b).mean() > 20


def test_one_bad_image_in_a_batch_fails_alone(default_server: Server, chelsea_jpeg: bytes) -> None:
    good = {"image": {"b64": base64.b64encode(chelsea_jpeg).decode()}}
    bad = {"image": {"b64": base64.b64encode(b"%PDF-1.4 not an image").decode()}}
    r = default_server.v1([good, bad, good])
    assert r.status_code == 200, r.text
    p = r.json()["predictions"]
    assert p[0]["labels"][0] in CAT_CLASSES and p[2]["labels"] == p[0]["labels"]
    assert p[1]["error"]["code"] == "unsupported_media_type"
    assert "item 1" in p[1]["error"]["message"]


def test_prediction_log_records(default_server: Server, chelsea_jpeg: bytes) -> None:
    r = httpx.post(
        f"{default_server.url}/v1/models/imgrec:predict",
        json={"instances": [{"image": {"b64": base64.b64encode(chelsea_jpeg).decode()}}]},
        headers={"x-request-id": "log-check-1"},
        timeout=60,
    )
    assert r.status_code == 200
    log_dir = default_server.log_dir  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    records: list[dict] = []
    while time.monotonic() < deadline and not records:
        time.sleep(0.3)
        for path in log_dir.glob("*.jsonl"):
            records += [json.loads(line) for line in path.read_text().splitlines()]
        records = [rec for rec in records if rec["request_id"] == "log-check-1"]
    assert records, "no prediction record written"
    rec = records[0]
    assert rec["schema"] == "imgrec.predlog/v2" and rec["task"] == "classify"
    assert rec["label"] in CAT_CLASSES
    assert (rec["width"], rec["height"]) == (451, 300)
    assert 0 < rec["brightness"] < 1 and 0 < rec["contrast"] < 1 and rec["sharpness"] > 0
    assert len(rec["embedding"]) == 8 and rec["embedding_norm"] > 0
    assert rec["fingerprint"].startswith("sha256:") and rec["model_version"] == "pretrained"
    assert 0 < rec["confidence"] <= 1 and rec["latency_ms"] > 0


@pytest.mark.parametrize(
    "route", ["/v2/health/live", "/v2/health/ready", "/v2/models/imgrec/ready"]
)
def test_health_routes(default_server: Server, route: str) -> None:
    assert httpx.get(default_server.url + route, timeout=10).status_code == 200
