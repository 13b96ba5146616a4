"""The dashboard's routes in process: pages render, strings stay text, uploads meet the API's
decoder, and actions are refused without --allow-actions, the token or the right origin
(BAD-INPUTS rows 40-41)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from dashboard_helpers import EVIL, hours_ago, log_record, make_store, write_drift_report, write_log
from image_fixtures import BAD_CODES

from imgrec.dashboard.app import create_app
from imgrec.dashboard.config import DashboardConfig
from imgrec.data.images import decode_image
from imgrec.errors import ImgrecError
from imgrec.model_store import ModelStore

BASE = "http://127.0.0.1:8050"
PAGES = ["/", "/try", "/models", "/models/1", "/models/compare?a=1&b=2", "/runs", "/monitoring",
         "/review"]  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    store = make_store(tmp_path, [[0.8, 0.6, 0.5], [0.9, 0.5, 0.7]])
    write_log(tmp_path / "log" / "p.jsonl", [log_record(hours_ago(h % 5), label=EVIL)
                                             for h in range(20)])  # fmt: skip
    sig = {"name": EVIL, "kind": "input", "method": "ks", "statistic": 0.2, "p_value": 0.2,
           "threshold": 0.01, "drifted": False}  # fmt: skip
    write_drift_report(tmp_path / "reports", "w1", hours_ago(0), [sig])
    return {"store": store, "log": str(tmp_path / "log"), "reports": str(tmp_path / "reports"),
            "runs": str(tmp_path / "runs")}  # fmt: skip


def client(setup: dict[str, Any], **kw: Any) -> TestClient:
    config = DashboardConfig(**setup, **kw)
    app = create_app(config)
    app.state.sources.log.cache_path = Path(setup["log"]).parent / "index.json"
    assert app.state.sources.wait_indexed(120)  # pages show what is indexed so far
    return TestClient(app, base_url=BASE)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_names_as_text(setup: dict[str, Any], path: str) -> None:
    response = client(setup).get(path)
    assert response.status_code == 200, response.text[:500]
    assert 'onerror="' not in response.text and "<img src=x" not in response.text  # as text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["server-timing"].startswith("app;dur=")


def test_models_pages_show_escaped_names_and_deltas(setup: dict[str, Any]) -> None:
    c = client(setup)
    assert "&lt;img src=x onerror=&#34;document.title=1&#34;&gt;" in c.get("/models/1").text
    page = c.get("/models/compare?a=1&b=2").text
    assert 'data-key="recall" data-delta="-0.09999999999999998"' in page  # dog 0.6 -> 0.5
    assert "no model version 7" not in c.get("/models/7").text
    assert c.get("/models/7").status_code == 404 and c.get("/models/x").status_code == 400


def test_unknown_hosts_and_cross_origin_writes_are_refused(setup: dict[str, Any]) -> None:
    c = client(setup, allow_actions=True, token="t0k")
    assert c.get("/", headers={"host": "evil.example:8050"}).status_code == 403
    before = ModelStore(setup["store"]).production_version()
    cross = c.post("/actions/promote", data={"version": "1", "token": "t0k"},
                   headers={"origin": "http://evil.example"})  # fmt: skip
    assert cross.status_code == 403 and "cross-origin" in cross.text
    assert ModelStore(setup["store"]).production_version() == before == 2


def test_actions_need_allow_actions_and_the_token(setup: dict[str, Any]) -> None:
    store = ModelStore(setup["store"])
    read_only = client(setup, token="t0k")
    refused = read_only.post("/actions/promote", data={"version": "1", "token": "t0k"})
    assert refused.status_code == 403 and "read-only" in refused.text
    assert "/actions/promote" not in read_only.get("/models").text  # no buttons either
    c = client(setup, allow_actions=True, token="t0k")
    for token in ("", "wrong"):
        r = c.post("/actions/rollback", data={"token": token}, headers={"origin": BASE})
        assert r.status_code == 403
    assert store.production_version() == 2 and len(store.history()) == 4
    ok = c.post("/actions/promote", data={"version": "1", "token": "t0k", "reason": EVIL},
                headers={"origin": BASE}, follow_redirects=False)  # fmt: skip
    assert ok.status_code == 303 and store.production_version() == 1
    assert store.history()[-1]["reason"] == f"dashboard: {EVIL}"
    back = c.post("/actions/rollback", data={"token": "t0k"}, follow_redirects=False)
    assert back.status_code == 303 and store.production_version() == 2
    unknown = c.post("/actions/promote", data={"version": "9", "token": "t0k"})
    assert unknown.status_code == 404 and store.production_version() == 2


def test_uploads_get_the_decoders_errors(setup: dict[str, Any], bad_image_files: Any) -> None:
    c = client(setup)
    files = [("files", (f"{EVIL}{key}", path.read_bytes())) for key, path in
             bad_image_files.items() if key in BAD_CODES]  # fmt: skip
    results = c.post("/api/predict", files=files).json()["results"]
    for (_, (name, data)), result in zip(files, results, strict=True):
        with pytest.raises(ImgrecError) as want:
            decode_image(data)
        assert result["name"] == name
        assert result["error"] == want.value.to_dict()
    good = c.post("/api/predict", files=[("files", ("a.jpg", bad_image_files["rgb"].read_bytes()))])
    assert good.status_code == 502 and good.json()["error"]["code"] == "endpoint_unavailable"


def test_uploads_are_bounded(setup: dict[str, Any]) -> None:
    c = client(setup, max_upload_bytes=1000, max_files=2)
    big = c.post("/api/predict", files=[("files", ("big.jpg", b"x" * 2000))])
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    many = c.post("/api/predict", files=[("files", (f"{i}.jpg", b"x")) for i in range(3)])
    assert many.status_code == 400
    none = c.post("/api/predict", data={"a": "b"})
    assert none.status_code == 400 and none.json()["error"]["code"] == "no_files"


def test_a_short_video_gives_its_frames(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from imgrec.dashboard.endpoint import Upload, check_upload
    from imgrec.dashboard.upload import is_video, predict_uploads, video_frames
    from imgrec.errors import CorruptImageError, ImageTooLargeError

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()
    data = path.read_bytes()
    assert is_video(data)
    frames = video_frames(Upload("clip.avi", data), 10**6)
    assert [f.name for f in frames[:2]] == ["clip.avi @ 0.0 s", "clip.avi @ 0.2 s"]
    assert len(frames) == 8
    shown = check_upload(frames[3])
    assert shown.error is None and (shown.width, shown.height) == (64, 48)
    with pytest.raises(ImageTooLargeError):
        video_frames(Upload("clip.avi", data), 64 * 48 - 1)
    fake = Upload("x.mp4", b"\0\0\0\x18ftypmp42" + bytes(200))
    with pytest.raises(CorruptImageError):
        video_frames(fake, 10**6)
    [result] = predict_uploads([fake], None, DashboardConfig())  # no good image: no server call
    assert result["error"]["code"] == "corrupt_image" and result["name"] == "x.mp4"
