"""The Monitoring page over real reports of ``imgrec monitor report`` (real Evidently runs on
a tiny real model's reference): every chart point is the summary's p-value or score, every
report links to its Evidently HTML, served in a CSP sandbox."""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitoring"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))

from monitor_fixtures import START, log_records, make_monitored, write_log

from imgrec.cli import main
from imgrec.dashboard.app import create_app
from imgrec.dashboard.config import DashboardConfig

pytestmark = pytest.mark.slow


def test_drift_points_equal_real_reports(tmp_path: Path) -> None:
    monitored = make_monitored(tmp_path / "monitored")
    ref = monitored.reference
    windows = [
        ("clean", log_records(ref, 120, start=START)),
        ("dark", log_records(ref, 120, seed=1, brightness=0.6, start=START + timedelta(days=1))),
    ]
    for name, records in windows:
        log = write_log(tmp_path / "logs" / f"{name}.jsonl", records)
        assert (
            main(
                [
                    "monitor",
                    "report",
                    "--log",
                    str(log),
                    "--reference",
                    str(monitored.model),
                    "--out",
                    str(tmp_path / "reports" / name),
                ]
            )
            == 0
        )
    summaries = [json.loads((tmp_path / "reports" / n / "summary.json").read_text())
                 for n, _ in windows]  # fmt: skip
    assert [s["drift"] for s in summaries] == [False, True]

    config = DashboardConfig(store=str(tmp_path / "store"), reports=str(tmp_path / "reports"))
    client = TestClient(create_app(config), base_url="http://127.0.0.1:8050")
    page = client.get("/monitoring").text
    checked = 0
    for signal in summaries[0]["signals"]:
        name = signal["name"]
        want = []
        for summary in summaries:
            s = next(x for x in summary["signals"] if x["name"] == name)
            value = s.get("p_value") if s.get("p_value") is not None else s.get("score")
            if value is not None and math.isfinite(value):
                want.append((float(value), s["drifted"]))
        points = re.findall(
            rf'<circle class="point" data-series="{re.escape(name)}" data-x="[^"]*" '
            r'data-y="([^"]+)" data-flag="(\d)"',
            page,
        )
        got = [(float(y), flag == "1") for y, flag in points]
        assert got == [(pytest.approx(v, rel=1e-5), d) for v, d in want], name
        checked += len(got)
    assert checked >= len(summaries[0]["signals"])  # most signals have a number per window
    assert ("brightness", True) in [(s["name"], s["drifted"]) for s in summaries[1]["signals"]]
    assert 'data-series="brightness"' in page and 'data-flag="1"' in page
    links = re.findall(r'href="(/monitoring/reports/[^"]+/report.html)"', page)
    assert sorted(links) == ["/monitoring/reports/clean/report.html",
                             "/monitoring/reports/dark/report.html"]  # fmt: skip
    report = client.get(links[0])
    assert report.status_code == 200 and "imgrec-verdict" in report.text
    assert report.headers["content-security-policy"].startswith("sandbox")
    assert ">drift<" in client.get("/").text  # the last verdict on the Overview
