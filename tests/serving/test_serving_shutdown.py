"""SIGTERM (Kubernetes' stop, ``kill``) ends the server cleanly: every answered request's
prediction record is written, the state file is removed, the exit code is 0."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from model_fixtures import png_b64, servable_model
from serving_helpers import start_server, stop_server


def test_sigterm_loses_no_prediction_record(tmp_path: Path) -> None:
    model = servable_model(tmp_path, ["a", "b"], seed=0)
    log_dir = tmp_path / "predlog"
    server = start_server(str(model), tmp_path, options={"prediction_log": str(log_dir)})
    try:
        for i in range(20):
            r = httpx.post(
                f"{server.url}/v1/models/imgrec:predict",
                json={"instances": [{"image": {"b64": png_b64(i)}}]},
                headers={"x-request-id": f"shutdown-{i}"},
                timeout=60,
            )
            assert r.status_code == 200, r.text
    finally:
        stop_server(server)  # SIGTERM right after the last answer: its record is still queued
    assert server.process.returncode == 0, server.process.returncode
    records = [
        json.loads(line)
        for path in log_dir.glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert {rec["request_id"] for rec in records} == {f"shutdown-{i}" for i in range(20)}
