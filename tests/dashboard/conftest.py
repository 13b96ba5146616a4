"""Fixtures of the dashboard tests: a real headless Chromium (Debian's ``chromium``, driven by
Playwright without its own browser download) and ``imgrec dashboard`` run as a subprocess.

Screenshots of every page visited go to ``build/dashboard-screenshots/`` (not committed).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from browser_helpers import CHROMIUM, Dashboard, Visit, screenshot, start_dashboard, stop_dashboard


@pytest.fixture(scope="module")
def dashboard() -> Iterator[Callable[..., Dashboard]]:
    """``dashboard(*args) -> Dashboard``; every one started is stopped with the module."""
    started: list[Dashboard] = []

    def start(*args: str, **kw: Any) -> Dashboard:
        dash = start_dashboard(*args, **kw)
        started.append(dash)
        return dash

    yield start
    for dash in started:
        stop_dashboard(dash)


# Module scope: Playwright's sync API keeps an event loop running in the main thread while it
# is open, and every later test that calls asyncio.run (serving, monitoring) would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def visit(browser: Any) -> Iterator[Callable[[str, str], Visit]]:
    """``visit(url, shot_name)``: open ``url`` in a fresh page that records console errors and
    uncaught exceptions, wait for the network to settle, save a full-page screenshot."""
    contexts: list[Any] = []

    def open_page(url: str, shot: str) -> Visit:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        response = page.goto(url, wait_until="networkidle")
        assert response is not None and response.status == 200, url
        screenshot(page, shot)
        return Visit(page, errors)

    yield open_page
    for context in contexts:
        context.close()
