"""The drift report as people see it: Evidently's page plus the verdict header, opened from disk
in a real headless Chromium (Debian's ``chromium`` through Playwright, `make browser`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from monitor_fixtures import Monitored, log_records, write_log

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "build" / "monitor-screenshots"
CHROMIUM = os.environ.get("IMGREC_CHROMIUM", "/usr/bin/chromium")


@pytest.mark.slow
def test_report_renders_offline_in_chromium(monitored: Monitored, tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    from imgrec.monitoring.logs import WindowSpec
    from imgrec.monitoring.report import monitor_report

    log = write_log(tmp_path / "dark.jsonl", log_records(monitored.reference, 100, brightness=0.6))
    monitor_report(str(log), monitored.reference, WindowSpec(last=100), str(tmp_path / "out"))
    page_url = (tmp_path / "out" / "report.html").as_uri()
    errors: list[str] = []
    remote: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "request",
                lambda r: (
                    remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None
                ),
            )
            page.goto(page_url, wait_until="load")
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            header = page.inner_text("#imgrec-verdict")
            plots = page.locator(".js-plotly-plot").count()
            body = page.inner_text("body")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "report-drift.png"), full_page=False)
        finally:
            browser.close()
    assert header.splitlines()[0] == "drift"
    assert "brightness" in header and "DRIFT" in header
    assert "Drift in column 'brightness'" in body and "Drift in embeddings" in body
    assert plots >= 3
    assert not errors, errors
    assert not remote, remote  # self-contained: nothing fetched from the network
