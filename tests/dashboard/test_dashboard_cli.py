"""``imgrec dashboard`` as a process: it listens on loopback, a taken port is a one-line error,
and ``make run``'s helper serves it beside the model server and stops it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from imgrec.cli.dashboard_args import quick_parse
from imgrec.dashboard.server import dashboard_beside


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


QUICK_ARGS = [
    [],
    ["--store", "s3://bucket/models", "--port=0"],
    ["--allow-actions", "--server", "http://127.0.0.1:8080", "--log", "a dir/log"],
    ["--runs=x=y", "--port", "-1", "--capture", "", "--labels", "l.csv"],
]


@pytest.mark.parametrize("args", QUICK_ARGS)
def test_the_quick_parse_reads_what_typer_reads(args: list[str]) -> None:
    """One table, two parsers: the fast start's values equal Typer's for the same arguments."""
    from typer.main import get_command

    from imgrec.cli import _load_commands
    from imgrec.cli.app import app

    _load_commands()
    command = get_command(app).commands["dashboard"]  # type: ignore[attr-defined]
    with command.make_context("dashboard", list(args)) as ctx:
        assert quick_parse(args) == ctx.params


@pytest.mark.parametrize(
    "args", [["--help"], ["--prot", "3"], ["--port", "x"], ["--store"], ["--allow-actions=1"]]
)
def test_what_the_quick_parse_is_unsure_of_goes_to_typer(args: list[str]) -> None:
    assert quick_parse(args) is None


def test_the_first_page_comes_before_any_heavy_import(tmp_path: Path) -> None:
    """``imgrec dashboard`` serves ``/`` without Typer, pydantic, torch, NumPy, Pillow, httpx,
    kserve or Evidently (``-X importtime`` lists every module the process imported by then)."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "imgrec", "dashboard", "--store",
         str(tmp_path / "store"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "IMGREC_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())
        assert url, "no URL line"
        assert httpx.get(url[0] + "/", timeout=30).status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    imported = {line.split("|")[-1].strip() for line in err.splitlines() if "|" in line}
    imported = {m.removeprefix("imgrec.") for m in imported}  # dashboard may live in imgrec/
    assert {"dashboard.app", "starlette.applications"} <= imported
    heavy = {"typer", "pydantic", "torch", "numpy", "PIL", "httpx", "kserve", "evidently"}
    heavy |= {"rich", "websockets", "uvloop"}  # not click: uvicorn's package imports it
    assert sorted(m for m in imported if m.split(".")[0] in heavy) == []
