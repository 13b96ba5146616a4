"""Helpers of the serving tests (imported by name: ``conftest`` is ambiguous across folders).

``start_server(model, tmp, options=..., limits=...)`` runs ``serving.server.serve`` in a child
process on a free 127.0.0.1 port and waits for readiness; ``stop_server`` sends SIGTERM to
that process.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
# One ONNX export cache per test session (keyed by content, so sharing is safe).
CACHE = Path(tempfile.gettempdir()) / f"imgrec-serving-tests-{os.getpid()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    name: str = "imgrec"

    def v1(self, instances: list[Any], **kw: Any) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/models/{self.name}:predict",
            json={"instances": instances, **kw},
            timeout=60,
        )

    def predict_bytes(self, data: bytes, **kw: Any) -> httpx.Response:
        return self.v1([{"image": {"b64": base64.b64encode(data).decode()}}], **kw)

    def rss_mb(self) -> float:
        import psutil

        return float(psutil.Process(self.process.pid).memory_info().rss) / 2**20


SERVER_CODE = """
import json, sys
from imgrec.serving.limits import RequestLimits
from imgrec.serving.model import ServingOptions
from imgrec.serving.server import serve
cfg = json.loads(sys.argv[1])
serve(cfg["model"], port=cfg["port"], name=cfg.get("name", "imgrec"),
      options=ServingOptions(**cfg["options"]), limits=RequestLimits(**cfg["limits"]),
      admin_token=cfg.get("token"))
"""


def start_server(
    model: str,
    tmp: Path,
    *,
    options: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    token: str | None = None,
    timeout_s: float = 240.0,
) -> Server:
    port = free_port()
    cfg = {
        "model": model,
        "port": port,
        "options": options or {},
        "limits": limits or {},
        "token": token,
    }
    log = tmp / f"server-{port}.log"
    env = {**os.environ, "IMGREC_CACHE": str(CACHE)}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, json.dumps(cfg)],
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(f"http://127.0.0.1:{port}", port, proc, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(server)
    raise RuntimeError(f"server not ready:\n{log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


def train_tiny_detector(root: Path) -> Path:
    """A tiny FCOS (8 digits-detect canvases, 1 epoch, 96 px) trained under ``root``; returns
    its model directory (``root/run/model``; the data are in ``root/data``)."""
    from imgrec.cli import main
    from imgrec.data.detection.sample import write_digits_detect

    write_digits_detect(root / "data", n_train=8, n_val=4, seed=3)
    code = main([
        "train", str(root / "data" / "data.yaml"), "--img-size", "96", "--epochs", "1",
        "--batch-size", "4", "--out", str(root / "run"), "--quiet",
        "--set", "cache_views=1", "--set", "threads=1",
    ])  # fmt: skip
    assert code == 0
    return root / "run" / "model"
