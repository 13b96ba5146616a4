"""The KFP `monitor` component and the drift-monitoring pipeline: compiled YAML up to date, a real
kfp local run writing the Kubeflow UI artifacts (HTML + Metrics), and the CronJob manifest."""

from __future__ import annotations

import glob
import json
import warnings
from pathlib import Path

import pytest
import yaml
from monitor_fixtures import Monitored, log_records, write_log

REPO = Path(__file__).resolve().parents[2]


def test_committed_monitoring_yaml_is_up_to_date(tmp_path: Path) -> None:
    from imgrec.pipelines.monitoring import compile_monitoring

    fresh = Path(compile_monitoring(str(tmp_path / "m.yaml"))).read_text()
    assert fresh == (REPO / "pipelines" / "monitoring.yaml").read_text(), (
        "pipelines/monitoring.yaml is stale: "
        "run `python -m imgrec.pipelines.monitoring` and commit it"
    )
    spec = yaml.safe_load(fresh)
    outputs = spec["components"]["comp-monitor"]["outputDefinitions"]["artifacts"]
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    # a recurring run must not reuse the last hour's report: caching is off (no enableCache)
    assert spec["root"]["dag"]["tasks"]["monitor"]["cachingOptions"] == {}


@pytest.mark.slow
def test_monitor_pipeline_runs_locally(monitored: Monitored, tmp_path: Path) -> None:
    from kfp import local

    from imgrec.pipelines.monitoring import build_monitoring_pipeline

    log = write_log(
        tmp_path / "log" / "predictions-20261130.jsonl",
        log_records(monitored.reference, 80, brightness=0.6),
    )
    root = tmp_path / "root"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You may be attemping", category=RuntimeWarning)
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            raise_on_error=True,
        )
        task = build_monitoring_pipeline()(
            log_uri=str(log.parent), reference=str(monitored.model), last=0, since="",
            alpha=0.01, out_uri=str(tmp_path / "reports"),
        )  # fmt: skip
    summary = dict(task.output)
    assert summary["drift"] is True and summary["window"]["n"] == 80
    (html,) = glob.glob(str(root / "**" / "monitor" / "report"), recursive=True)
    assert "imgrec-verdict" in Path(html).read_text()
    (executor,) = glob.glob(str(root / "**" / "monitor" / "executor_output.json"), recursive=True)
    metrics = json.loads(Path(executor).read_text())["artifacts"]["metrics"]["artifacts"][0]
    assert metrics["metadata"]["drift"] == 1.0 and metrics["metadata"]["window_n"] == 80.0
    assert metrics["metadata"]["p_brightness"] < 0.001
    (copied,) = glob.glob(str(tmp_path / "reports" / "*" / "summary.json"))
    assert json.loads(Path(copied).read_text())["drift"] is True


def test_cronjob_manifest_validates() -> None:
    import kubernetes_validate

    from imgrec.gitops.kustomize import read_worktree, render

    docs = render("manifests/monitoring", read_worktree(REPO))
    (job,) = docs
    kubernetes_validate.validate(job, "1.37.0", strict=True)
    assert job["kind"] == "CronJob" and job["spec"]["schedule"] == "5 * * * *"
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][0]
    assert "imgrec monitor report" in script and "--since 1h" in script and "--out" in script
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["REFERENCE"].endswith("@production") and env["LOG_URI"].startswith("s3://")
