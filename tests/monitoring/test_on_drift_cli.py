"""`imgrec monitor report ... --on-drift github`: the dispatch lands on a recording HTTP server
on loopback once per model version; no drift, no dispatch; failures mark nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from monitor_fixtures import log_records, write_log
from recording_server import recording_server

from imgrec.cli import main
from imgrec.model_store import ModelStore
from imgrec.monitoring.reference import REFERENCE_FILE, reference_bytes


def _store(tmp_path: Path, monitored: Any) -> tuple[str, str]:
    store = ModelStore(str(tmp_path / "store"))
    v = store.register(
        monitored.model, attachments={REFERENCE_FILE: reference_bytes(monitored.reference.doc)}
    )
    return str(tmp_path / "store"), str(v.version)


def _report(tmp_path: Path, store: str, log: Path, *extra: str) -> int:
    return main(["monitor", "report", "--log", str(log), "--reference", f"{store}@production",
                 "--out", str(tmp_path / "report"), "--last", "200", "--on-drift", "github",
                 "--github-repo", "acme/digits", *extra])  # fmt: skip


@pytest.mark.slow
def test_on_drift_github_once_per_version(
    tmp_path: Path,
    monitored: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, version = _store(tmp_path, monitored)
    ref = monitored.reference
    clean = write_log(tmp_path / "clean.jsonl", log_records(ref, 150, version=version))
    dark = write_log(
        tmp_path / "dark.jsonl", log_records(ref, 150, version=version, brightness=0.3)
    )
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_test")
    with recording_server([(204, None)]) as gh:
        monkeypatch.setenv("GITHUB_API_URL", gh.url)
        assert _report(tmp_path, store, clean) == 0
        assert "trigger (github): no drift" in capsys.readouterr().err
        assert _report(tmp_path, store, dark) == 0
        assert f"trigger (github): triggered, key imgrec-v{version}" in capsys.readouterr().err
        assert _report(tmp_path, store, dark) == 0  # the same verdict again
        assert "trigger (github): duplicate" in capsys.readouterr().err
    [req] = gh.requests
    payload = req.body["client_payload"]
    assert payload["version"] == version and "brightness" in payload["drifted"]
    assert payload["report"] == str(tmp_path / "report")
    record = json.loads(Path(store, "triggers", f"imgrec-v{version}.json").read_text())
    assert record["status"] == "accepted"


@pytest.mark.slow
def test_on_drift_failures_are_one_line_errors(
    tmp_path: Path,
    monitored: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, version = _store(tmp_path, monitored)
    records = log_records(monitored.reference, 150, version=version, brightness=0.3)
    dark = write_log(tmp_path / "dark.jsonl", records)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert _report(tmp_path, store, dark) == 2
    assert "error[github_token_missing]: no GitHub token" in capsys.readouterr().err
    monkeypatch.setenv("GITHUB_TOKEN", "bad")
    with recording_server([(401, {"message": "Bad credentials"})]) as gh:
        monkeypatch.setenv("GITHUB_API_URL", gh.url)
        assert _report(tmp_path, store, dark) == 2
    assert "error[github_unauthorized]: GitHub refused the token (401)" in capsys.readouterr().err
    assert not Path(store, "triggers", f"imgrec-v{version}.json").exists()
