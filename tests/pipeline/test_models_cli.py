"""`imgrec models list|promote|rollback|history` and `imgrec pipeline params|run` errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_helpers import make_model_dir

from imgrec.cli import main
from imgrec.model_store import ModelStore


def test_models_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    s = ModelStore(store)
    s.register(make_model_dir(tmp_path / "a"), metadata={"metrics": {"accuracy": 0.81}})
    s.register(make_model_dir(tmp_path / "b"), metadata={"metrics": {"accuracy": 0.92}})
    capsys.readouterr()

    assert main(["models", "list", "--store", store, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["production"] == 2
    assert [(v["version"], v["production"], v["metrics"]["accuracy"]) for v in doc["versions"]] == [
        (1, False, 0.81),
        (2, True, 0.92),
    ]
    assert main(["models", "rollback", "--store", store]) == 0
    assert "production is now version 1" in capsys.readouterr().out
    assert main(["models", "promote", "2", "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 2
    assert main(["models", "list", "--store", store]) == 0
    table = capsys.readouterr().out
    assert "0.9200" in table and "*" in table
    assert main(["models", "history", "--store", store]) == 0
    assert "rollback v1" in capsys.readouterr().out

    assert main(["models", "promote", "9", "--store", store]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error[not_found]: model version 9 does not exist")
    assert "Traceback" not in err


def test_pipeline_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "run", "--local", "--param", "epoch=3"]) == 2
    assert "unknown pipeline parameter 'epoch'; did you mean epochs" in capsys.readouterr().err
    assert main(["pipeline", "run", "--local", "--param", "epochs=three"]) == 2
    assert "expects int" in capsys.readouterr().err
    assert main(["pipeline", "run", "--data", "x"]) == 2
    assert "--local" in capsys.readouterr().err
    assert main(["pipeline", "params", "--json"]) == 0
    params = json.loads(capsys.readouterr().out)
    assert params["gate_metric"] == "auto" and params["epochs"] == 0
