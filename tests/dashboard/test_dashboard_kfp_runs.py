"""Runs submitted to Kubeflow Pipelines show on the Runs page with a link to the run in the KFP
UI: ``imgrec pipeline submit`` against a KFP v2 REST server on loopback (the real kfp.Client,
tests/pipeline/kfp_api_server.py) records host and run id beside the local runs."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from dashboard_helpers import EVIL
from kfp_api_server import KfpApiServer

from imgrec.cli import main
from imgrec.dashboard.app import create_app
from imgrec.dashboard.config import DashboardConfig

REPO = Path(__file__).resolve().parents[2]
PACKAGE = str(REPO / "pipelines" / "training.yaml")  # compiled and committed: no compile here


def test_a_submitted_run_links_to_the_kfp_ui(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    with KfpApiServer(run_states=("RUNNING",)) as kfp:
        args = ["pipeline", "submit", "--host", kfp.url + "/", "--package", PACKAGE,
                "--version", "v1", "--run-name", EVIL, "--param", "epochs=2",
                "--runs-dir", str(runs), "--json"]  # fmt: skip
        assert main(args) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert main(args[:-1]) == 0  # for people: the record's folder is printed
    assert f"recorded in {runs}" in capsys.readouterr().out
    folder = Path(result["record"])
    assert folder.parent == runs and re.fullmatch(r"\d{8}-\d{6}-\d{6}", folder.name)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "submitted" and summary["params"] == {"epochs": 2}
    assert summary["kfp"]["host"] == kfp.url and summary["kfp"]["run_id"] == result["run_id"]
    assert summary["kfp"]["state"] == "RUNNING"

    # a record whose host is not http(s) never becomes a link
    bad = runs / "20261130-120000-000000"
    bad.mkdir()
    record = {"status": "submitted", "kfp": {"host": "javascript:alert(1)//", "run_id": "r1"}}
    (bad / "summary.json").write_text(json.dumps(record))

    c = TestClient(create_app(DashboardConfig(runs=str(runs), store=str(tmp_path / "store"))),
                   base_url="http://127.0.0.1:8050")  # fmt: skip
    link = f"{kfp.url}/#/runs/details/{result['run_id']}"
    listing = c.get("/runs")
    assert listing.status_code == 200
    assert f'<a class="kfp" href="{link}"' in listing.text
    assert "&lt;img src=x" in listing.text and "<img src=x" not in listing.text  # run name: text
    assert listing.text.count('class="kfp"') == 2 and "javascript:" not in listing.text
    page = c.get(f"/runs/{folder.name}")
    assert page.status_code == 200 and f'href="{link}"' in page.text
    assert "state RUNNING when recorded" in page.text
    other = c.get(f"/runs/{bad.name}")
    assert other.status_code == 200 and 'class="kfp"' not in other.text
