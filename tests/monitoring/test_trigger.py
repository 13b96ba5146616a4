"""The retraining trigger: GitHub repository_dispatch against a recording server on loopback,
the idempotency record, and every refusal (BAD-INPUTS rows 37-38)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from recording_server import recording_server

from imgrec.errors import ConfigError, ImgrecError, TriggerError
from imgrec.monitoring.github import dispatch
from imgrec.monitoring.trigger import TriggerSettings, fire, read_record

SUMMARY = {
    "drift": True,
    "verdict": "drift",
    "window": {"n": 400, "start": "2026-11-30T10:00:00Z", "end": "2026-11-30T11:00:00Z"},
    "model_version": "3",
    "signals": [{"name": "sharpness", "drifted": True}, {"name": "label", "drifted": False},
                {"name": "confidence", "drifted": True}],
}  # fmt: skip


@pytest.fixture
def github_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_env(url: str, token: str | None = "ghp_test") -> None:
        monkeypatch.setenv("GITHUB_API_URL", url)
        monkeypatch.setenv("GITHUB_REPOSITORY", "acme/digits")
        if token is None:
            monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        else:
            monkeypatch.setenv("GITHUB_TOKEN", token)

    return set_env


def _settings(tmp_path: Path, **kw: Any) -> TriggerSettings:
    return TriggerSettings(
        store=str(tmp_path / "store"),
        report_uri="reports/w1",
        backoff_s=0.01,
        runs_dir=str(tmp_path / "runs"),
        **kw,
    )


def test_dispatch_is_sent_once_and_recorded(tmp_path: Path, github_env: Any) -> None:
    with recording_server([(204, None)]) as gh:
        github_env(gh.url)
        result = fire("github", SUMMARY, _settings(tmp_path))
        again = fire("github", SUMMARY, _settings(tmp_path))  # the same verdict reported twice
        later = fire(
            "github", {**SUMMARY, "window": {"start": "b", "end": "c"}}, _settings(tmp_path)
        )
    assert result["status"] == "triggered" and result["key"] == "imgrec-v3"
    assert again["status"] == "duplicate" and later["status"] == "duplicate"
    [req] = gh.requests  # one retraining per version
    assert req.path == "/repos/acme/digits/dispatches"
    assert req.headers["authorization"] == "Bearer ghp_test"
    assert req.headers["accept"] == "application/vnd.github+json"
    assert req.body["event_type"] == "imgrec-drift"
    body = req.body["client_payload"]
    assert len(body) <= 10
    assert body["model"] == "imgrec" and body["version"] == "3"
    assert body["drifted"] == ["sharpness", "confidence"] and body["report"] == "reports/w1"
    assert body["idempotency_key"] == "imgrec-v3" and body["window"]["n"] == 400
    record = read_record(str(tmp_path / "store"), "imgrec-v3")
    assert record is not None and record["status"] == "accepted"
    assert record["details"]["status"] == 204 and record["details"]["attempts"] == 1


def test_no_drift_sends_nothing(tmp_path: Path, github_env: Any) -> None:
    with recording_server([(204, None)]) as gh:
        github_env(gh.url)
        assert (
            fire("github", {**SUMMARY, "drift": False}, _settings(tmp_path))["status"] == "no drift"
        )
    assert gh.requests == []


def test_server_errors_are_retried_with_backoff(tmp_path: Path, github_env: Any) -> None:
    with recording_server([(502, {"message": "bad gateway"}), (500, None), (204, None)]) as gh:
        github_env(gh.url)
        result = fire("github", SUMMARY, _settings(tmp_path))
    assert result["status"] == "triggered" and len(gh.requests) == 3
    assert result["details"]["attempts"] == 3


def test_persistent_5xx_gives_up_and_marks_nothing(tmp_path: Path, github_env: Any) -> None:
    with recording_server([(503, {"message": "unavailable"})]) as gh:
        github_env(gh.url)
        with pytest.raises(TriggerError) as info:
            fire("github", SUMMARY, _settings(tmp_path, retries=2))
    assert info.value.code == "github_server_error" and len(gh.requests) == 3
    assert "gave up after 3 attempts" in str(info.value)
    assert read_record(str(tmp_path / "store"), "imgrec-v3") is None
    # accepted on a later report: now it is triggered
    with recording_server([(204, None)]) as gh:
        github_env(gh.url)
        assert fire("github", SUMMARY, _settings(tmp_path))["status"] == "triggered"


@pytest.mark.parametrize(
    ("status", "code", "text"),
    [
        (401, "github_unauthorized", "GitHub refused the token (401): Bad credentials"),
        (403, "github_unauthorized", "may not dispatch"),
        (404, "github_not_found", "repository not found"),
        (422, "github_invalid_payload", "GitHub refused the event (422): Invalid request"),
    ],
)
def test_client_errors_are_not_retried(
    tmp_path: Path, github_env: Any, status: int, code: str, text: str
) -> None:
    messages = {401: "Bad credentials", 422: "Invalid request"}
    with recording_server([(status, {"message": messages.get(status, "x")})]) as gh:
        github_env(gh.url)
        with pytest.raises(TriggerError) as info:
            fire("github", SUMMARY, _settings(tmp_path))
    assert info.value.code == code and text in str(info.value) and len(gh.requests) == 1
    assert read_record(str(tmp_path / "store"), "imgrec-v3") is None


def test_no_token(tmp_path: Path, github_env: Any) -> None:
    with recording_server([(204, None)]) as gh:
        github_env(gh.url, token=None)
        with pytest.raises(TriggerError) as info:
            fire("github", SUMMARY, _settings(tmp_path))
    assert info.value.code == "github_token_missing" and gh.requests == []
    assert read_record(str(tmp_path / "store"), "imgrec-v3") is None


def test_unreachable_api(tmp_path: Path, github_env: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    github_env(f"http://127.0.0.1:{port}")
    with pytest.raises(TriggerError) as info:
        fire("github", SUMMARY, _settings(tmp_path, retries=2))
    assert info.value.code == "github_unreachable" and "gave up after 3 attempts" in str(info.value)
    assert read_record(str(tmp_path / "store"), "imgrec-v3") is None


def test_bad_repo_and_payload() -> None:
    with pytest.raises(ConfigError, match="owner/name"):
        dispatch("not-a-repo", {}, token="t", api_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="11 top-level keys"):
        dispatch("a/b", {f"k{i}": i for i in range(11)}, token="t", api_url="http://127.0.0.1:9")


def test_unknown_action(tmp_path: Path) -> None:
    from imgrec.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="githb"):
        fire("githb", SUMMARY, _settings(tmp_path))


def test_kfp_needs_a_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KFP_HOST", raising=False)
    with pytest.raises(ConfigError, match="no Kubeflow Pipelines host"):
        fire("kfp", SUMMARY, _settings(tmp_path, data="data"))
    assert read_record(str(tmp_path / "store"), "imgrec-v3") is None


def test_force_and_failed_records_allow_a_new_trigger(tmp_path: Path, github_env: Any) -> None:
    store = tmp_path / "store"
    (store / "triggers").mkdir(parents=True)
    (store / "triggers" / "imgrec-v3.json").write_text(json.dumps({"status": "failed"}))
    with recording_server([(204, None)]) as gh:
        github_env(gh.url)
        assert fire("github", SUMMARY, _settings(tmp_path))["status"] == "triggered"
        assert fire("github", SUMMARY, _settings(tmp_path, force=True))["status"] == "triggered"
    assert len(gh.requests) == 2


def test_dispatch_ignores_a_proxy_cached_by_an_earlier_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """urlopen caches one global opener with the proxy of its first call (a weights download
    under a dead proxy, in the suite); the dispatch reads the environment of now."""
    import urllib.error
    import urllib.request

    for var in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # a closed port
    monkeypatch.setattr(urllib.request, "_opener", None)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen("http://127.0.0.1:1/", timeout=2)  # caches the proxied opener
    for var in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var)
    with recording_server([(204, None)]) as rec:
        sent = dispatch("acme/digits", {"model": "m", "version": "1"}, token="t",
                        api_url=rec.url, retries=0)  # fmt: skip
    assert sent["status"] == 204
    assert len(rec.requests) == 1


def test_kfp_uploads_and_starts_the_retraining_once(tmp_path: Path) -> None:
    """``--on-drift kfp`` through the real kfp.Client against the KFP v2 REST on loopback."""
    import yaml
    from kfp_api_server import KfpApiServer, model_problems

    params = {"new_data_uri": "s3://labels/new-camera", "init_from": "production", "epochs": "2"}
    settings = _settings(tmp_path, data="s3://data/mnist5k", params=params)
    with KfpApiServer(run_states=("PENDING",)) as kfp:
        settings.kfp_host = kfp.url
        result = fire("kfp", SUMMARY, settings)
        again = fire("kfp", SUMMARY, settings)  # the same verdict: no second run
    assert result["status"] == "triggered" and again["status"] == "duplicate"
    folder = Path(result["details"].pop("record"))
    assert result["details"] == {"run_id": "run-4", "host": kfp.url, "state": "PENDING"}
    # recorded beside the local runs: the dashboard's Runs page lists the retraining
    assert folder.parent == tmp_path / "runs"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "submitted" and summary["kfp"]["run_id"] == "run-4"
    assert summary["kfp"]["run_name"] == "retrain-imgrec-v3"
    [upload] = kfp.of("POST", "/apis/v2beta1/pipelines/upload")
    assert yaml.safe_load(upload.files["uploadfile"])["pipelineInfo"]["name"] == "imgrec-training"
    [experiment] = kfp.of("POST", "/apis/v2beta1/experiments")
    [run] = kfp.of("POST", "/apis/v2beta1/runs")
    assert not model_problems(experiment.body, "V2beta1Experiment")
    assert not model_problems(run.body, "V2beta1Run")
    assert experiment.body["display_name"] == "imgrec-retrain"
    assert run.body["display_name"] == "retrain-imgrec-v3"
    assert run.body["runtime_config"]["parameters"] == {
        "new_data_uri": "s3://labels/new-camera", "init_from": "production", "epochs": 2,
        "store_uri": str(tmp_path / "store"), "data_uri": "s3://data/mnist5k",
    }  # fmt: skip
    record = read_record(str(tmp_path / "store"), "imgrec-v3")
    assert record is not None and record["status"] == "accepted"
    assert record["details"]["run_id"] == "run-4"


def test_kfp_refusal_or_unreachable_host_marks_nothing(tmp_path: Path) -> None:
    from kfp_api_server import KfpApiServer

    settings = _settings(tmp_path, data="s3://data/mnist5k", params={"epochz": "2"})
    with KfpApiServer() as kfp:
        settings.kfp_host = kfp.url
        with pytest.raises(ConfigError, match="unknown pipeline parameter 'epochz'"):
            fire("kfp", SUMMARY, settings)
    assert not kfp.of("POST", "/apis/v2beta1/runs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        settings.kfp_host = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    settings.params = {}
    with pytest.raises(ImgrecError) as info:
        fire("kfp", SUMMARY, settings)
    assert info.value.code == "kfp_failed"
    assert read_record(str(tmp_path / "store"), "imgrec-v3") is None
