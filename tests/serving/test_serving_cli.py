"""``imgrec serve`` (the CLI, default pretrained model) answers a standard V2 client, and
``imgrec export --format onnx`` writes a checked ONNX file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from serving_helpers import CACHE, CAT_CLASSES, free_port

IMGREC = str(Path(sys.executable).with_name("imgrec"))


@pytest.mark.slow
def test_imgrec_serve_answers_triton_client(tmp_path: Path, chelsea_jpeg: bytes) -> None:
    import tritonclient.http as triton

    port = free_port()
    env = {**os.environ, "IMGREC_CACHE": str(CACHE)}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([IMGREC, "serve", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                if client.is_model_ready("imgrec"):
                    break
            except Exception:
                time.sleep(0.5)
        inp = triton.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(np.array([chelsea_jpeg], dtype=object))
        result = client.infer("imgrec", [inp])
        assert result.as_numpy("label")[0][0].decode() in CAT_CLASSES
        printed = (tmp_path / "serve.log").read_text()
        assert "curl" in printed and f"127.0.0.1:{port}" in printed
        assert "INFO loaded efficientnet_lite0" in printed, printed
        assert f"INFO ready on http://127.0.0.1:{port}" in printed, printed
        # kserve's and uvicorn's INFO lines and the access log only with --log-level/--access-log
        assert "kserve INFO" not in printed and "uvicorn" not in printed, printed
        # loopback only by default
        assert httpx.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        log.close()


@pytest.mark.slow
def test_imgrec_serve_debug_log_and_access_log(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "IMGREC_CACHE": str(CACHE)}
    path = tmp_path / "serve.log"
    cmd = [IMGREC, "serve", "--port", str(port), "--log-level", "debug", "--access-log"]
    with path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "INFO ready on" not in path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, path.read_text()[-2000:]
            time.sleep(0.3)
        url = f"http://127.0.0.1:{port}/v2/models/imgrec"
        assert httpx.get(url, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    printed = path.read_text()
    assert "kserve INFO" in printed and "Registering model: imgrec" in printed, printed
    assert '"GET /v2/models/imgrec HTTP/1.1" 200' in printed, printed


@pytest.mark.slow
def test_imgrec_export_onnx(tmp_path: Path) -> None:
    out = tmp_path / "lite0.onnx"
    done = subprocess.run([IMGREC, "export", "efficientnet_lite0", "--format", "onnx", "--out",
                           str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["format"] == "onnx" and out.exists() and result["max_abs_diff"] <= 1e-4
    cmd = [IMGREC, "export", "efficientnet_lite0", "--format", "tflite", "--out", "x"]
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert bad.returncode != 0 and "unknown_name" in bad.stderr
