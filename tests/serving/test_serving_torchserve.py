"""A real TorchServe (Java frontend + Python worker) serving an imgrec ``.mar`` with token
authorization on: the inference API answers with the key, refuses without it, and a bad image
gets a 4xx with a stable code while the next request succeeds."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from serving_helpers import CAT_CLASSES

from imgrec.serving.export import export_model
from imgrec.serving.torchserve import TorchServe


@pytest.mark.slow
def test_torchserve_with_token_auth(tmp_path: Path, chelsea_jpeg: bytes) -> None:
    result = export_model("efficientnet_lite0", "mar", tmp_path / "store")
    assert Path(result.path).name == "imgrec.mar"
    with TorchServe.start(tmp_path / "store", ["imgrec=imgrec.mar"], tmp_path / "ts") as ts:
        ts.wait_ready(300)
        config = (tmp_path / "ts" / "config.properties").read_text()
        assert "http://127.0.0.1:" in config and "0.0.0.0" not in config
        url = f"{ts.url}/predictions/imgrec"
        auth = {"Authorization": f"Bearer {ts.keys()['inference']}"}
        r = httpx.post(url, content=chelsea_jpeg, headers=auth, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["labels"][0] in CAT_CLASSES
        denied = httpx.post(url, content=chelsea_jpeg, timeout=60)
        assert denied.status_code in (400, 401, 403)
        assert "Token Authorization failed" in denied.text
        bad = httpx.post(url, content=b"<html>not an image</html>", headers=auth, timeout=60)
        assert bad.status_code == 415
        body = json.loads(bad.text)
        assert body["code"] == "unsupported_media_type"
        assert body["error"] == body["message"] and body["hint"]  # the KServe body's keys
        again = httpx.post(url, content=chelsea_jpeg, headers=auth, timeout=60)
        assert again.status_code == 200
