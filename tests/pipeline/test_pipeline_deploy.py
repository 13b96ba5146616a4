"""The deploy step inside a real local pipeline run: start a server, then hot-swap it (slow)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
from pathlib import Path

import httpx
import pytest
from pipeline_helpers import make_imagefolder

from imgrec.mlops import run_local

FAST = {"epochs": "2", "train_threads": "2", "min_images": "8", "deploy_target": "local"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_pipeline_deploy_starts_then_hot_swaps_a_local_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path / "cache"))  # server state files
    port = _free_port()
    data = make_imagefolder(tmp_path / "d", n_train=16, n_val=6)
    store, runs = str(tmp_path / "store"), str(tmp_path / "runs")
    params = {**FAST, "serve_port": str(port), "gate_absolute_floor": "0.0"}
    state_file = tmp_path / "cache" / "serve" / f"{port}.json"
    try:
        first = run_local(str(data), store, params, runs_dir=runs)
        assert first["status"] == "succeeded", first
        assert first["registered_version"] == 1
        state = json.loads(state_file.read_text())
        url, auth = state["url"], {"Authorization": f"Bearer {state['token']}"}
        assert url == f"http://127.0.0.1:{port}"
        image = next((data / "val").glob("*/*.png"))
        body = {"instances": [{"image": {"b64": base64.b64encode(image.read_bytes()).decode()}}]}
        answer = httpx.post(f"{url}/v1/models/imgrec:predict", json=body, timeout=60).json()
        assert answer["predictions"][0]["labels"][0] in {"circle", "square"}
        assert httpx.get(f"{url}/imgrec/admin/models/imgrec", headers=auth).json()["version"] in (
            1,
            "1",
        )

        # A second passing run registers version 2 and swaps the running server to it.
        second = run_local(
            str(data), store, {**params, "gate_min_improvement": "-1"}, runs_dir=runs
        )
        assert second["status"] == "succeeded" and second["registered_version"] == 2, second
        info = httpx.get(f"{url}/imgrec/admin/models/imgrec", headers=auth, timeout=30).json()
        assert str(info["version"]) == "2" and info["swaps"] >= 1
        assert httpx.get(f"{url}/v2/models/imgrec/ready", timeout=10).status_code == 200
    finally:
        if state_file.exists():
            os.kill(json.loads(state_file.read_text())["pid"], signal.SIGTERM)
