"""Helpers of the dashboard's process and browser tests (imported by name: ``conftest`` is
ambiguous across test folders): ``imgrec dashboard`` as a subprocess, Chromium screenshots."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "dashboard-screenshots"
CHROMIUM = os.environ.get("IMGREC_CHROMIUM", "/usr/bin/chromium")


@dataclass
class Dashboard:
    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)


def start_dashboard(*args: str, env: dict[str, str] | None = None) -> Dashboard:
    """``imgrec dashboard ARGS --port 0`` in a child process; waits for its URL line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgrec", "dashboard", *args, "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if found := re.search(r"dashboard on (http://127\.0\.0\.1:\d+)", line):
            return Dashboard(found[1], proc, lines)
    proc.wait()
    raise RuntimeError("the dashboard did not start:\n" + "".join(lines))


def stop_dashboard(dash: Dashboard) -> None:
    dash.process.terminate()
    try:
        dash.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        dash.process.kill()
        dash.process.wait()
    if dash.process.stdout:
        dash.process.stdout.close()


@dataclass
class Visit:
    page: Any
    errors: list[str]


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
