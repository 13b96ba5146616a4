"""``imgrec dashboard`` as a process: it listens on loopback, a taken port is a one-line error,
and ``make run``'s helper serves it beside the model server and stops it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx

from dashboard.server import dashboard_beside


def test_beside_the_model_server_it_serves_then_stops(tmp_path: Path) -> None:
    with dashboard_beside(tmp_path / "store", tmp_path / "runs", "http://127.0.0.1:9") as url:
        assert url.startswith("http://127.0.0.1:")
        page = httpx.get(url + "/", timeout=30)
        assert page.status_code == 200 and "Nothing in production" in page.text
        assert 'live: <span class="bad">no' in page.text  # the endpoint given is not there
    try:
        httpx.get(url + "/", timeout=2)
        raise AssertionError("the dashboard still answers after the block")
    except httpx.HTTPError:
        pass


def test_a_taken_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "imgrec", "dashboard", "--store", str(tmp_path), "--port",
             str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.startswith("error[invalid_config]: cannot listen on 127.0.0.1:")
    assert len(out.stderr.strip().splitlines()) == 1
