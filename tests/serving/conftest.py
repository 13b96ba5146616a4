"""Fixtures for the serving tests: real servers in subprocesses on 127.0.0.1 free ports.

``run_server(model, **options)`` (module scope) starts servers that are stopped at the end of the
module; ``default_server`` (session) is the pretrained EfficientNet-Lite0 with small limits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PIL import Image
from serving_helpers import Server, jpeg_bytes, start_server, stop_server


@pytest.fixture(scope="module")
def run_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []
    tmp = tmp_path_factory.mktemp("servers")

    def run(model: str = "efficientnet_lite0", **kw: Any) -> Server:
        server = start_server(model, tmp, **kw)
        started.append(server)
        return server

    yield run
    for server in started:
        stop_server(server)


@pytest.fixture(scope="session")
def chelsea_jpeg() -> bytes:
    from skimage import data

    return jpeg_bytes(Image.fromarray(data.chelsea()))


@pytest.fixture(scope="session")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The pretrained EfficientNet-Lite0 on ONNX Runtime with small limits, a prediction log
    and image capture (every image)."""
    tmp = tmp_path_factory.mktemp("default-server")
    server = start_server(
        "efficientnet_lite0",
        tmp,
        options={
            "prediction_log": str(tmp / "predlog"),
            "capture": str(tmp / "capture"),
            "max_images_per_request": 8,
        },
        limits={"max_body_bytes": 2 * 1024 * 1024, "read_timeout_s": 1.0},
    )
    server.log_dir = tmp / "predlog"  # type: ignore[attr-defined]
    server.capture_dir = tmp / "capture"  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session", autouse=True)
def _remove_onnx_cache() -> Iterator[None]:
    """Delete the session's shared ONNX export cache at the end."""
    import shutil

    from serving_helpers import CACHE

    yield
    shutil.rmtree(CACHE, ignore_errors=True)
