"""`imgrec pipeline submit|upload` against a KFP v2 REST server on loopback (kfp_api_server.py):
the real kfp.Client sends real HTTP; every JSON body is checked against kfp-server-api's
models (``model_problems``), the uploaded file is the compiled pipeline, and the run
references the new version."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from kfp_api_server import KfpApiServer, model_problems

from imgrec.cli import main


def test_submit_then_upload_a_version(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with KfpApiServer(run_states=("PENDING", "SUCCEEDED")) as kfp:
        args = ["pipeline", "submit", "--host", kfp.url, "--version", "v1", "--experiment",
                "nightly", "--param", "epochs=2", "--wait", "30", "--json",
                "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
        assert main(args) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert main(["pipeline", "upload", "--host", kfp.url, "--version", "abc123"]) == 0
        assert "uploaded imgrec-training version abc123" in capsys.readouterr().out

    assert result["state"] == "SUCCEEDED" and result["run_id"] == "run-4"
    [upload] = kfp.of("POST", "/apis/v2beta1/pipelines/upload")
    assert upload.query["name"] == ["imgrec-training"]
    compiled = yaml.safe_load(upload.files["uploadfile"])
    assert compiled["pipelineInfo"]["name"] == "imgrec-training"
    [version] = kfp.of("POST", "/apis/v2beta1/pipelines/upload_version")
    assert version.query["name"] == ["abc123"]
    assert version.query["pipelineid"] == [result["pipeline_id"]]
    assert yaml.safe_load(version.files["uploadfile"]) == compiled

    [experiment] = kfp.of("POST", "/apis/v2beta1/experiments")
    [run] = kfp.of("POST", "/apis/v2beta1/runs")
    assert not model_problems(experiment.body, "V2beta1Experiment")
    assert not model_problems(run.body, "V2beta1Run")
    assert experiment.body["display_name"] == "nightly"
    assert run.body["experiment_id"] == result["experiment_id"]
    assert run.body["pipeline_version_reference"] == {
        "pipeline_id": result["pipeline_id"],
        "pipeline_version_id": result["version_id"],
    }
    assert run.body["runtime_config"]["parameters"] == {"epochs": 2}
    assert kfp.of("GET", r"/apis/v2beta1/runs/run-4")  # the run was read back
    # the checker itself catches a field the API does not have
    assert model_problems({**run.body, "pipelineVersion": "x"}, "V2beta1Run")


def test_failed_run_and_unreachable_host(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with KfpApiServer(run_states=("PENDING", "FAILED")) as kfp:
        runs = ["--runs-dir", str(tmp_path / "runs")]  # not the checkout's runs/pipeline
        assert main(["pipeline", "submit", "--host", kfp.url, "--wait", "30", *runs]) == 1
        assert "state FAILED" in capsys.readouterr().out
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert main(["pipeline", "upload", "--host", closed, "--version", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error[kfp_failed]:") and len(err.strip().splitlines()) == 1
