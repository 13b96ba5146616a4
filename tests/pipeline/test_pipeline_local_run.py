"""The whole pipeline with kfp's local runner on tiny generated data (slow: real subprocesses).

Data and model store live on the loopback S3 server, so these runs also show that s3:// works
for ingest, training, evaluation, the gate and registration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_helpers import make_imagefolder

from imgrec import storage
from imgrec.cli import main
from imgrec.mlops import run_local
from imgrec.model_store import ModelStore

FAST = {"epochs": "3", "train_threads": "2", "min_images": "8"}


def _upload(folder: Path, uri: str) -> str:
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            storage.write_bytes(f"{uri}/{f.relative_to(folder).as_posix()}", f.read_bytes())
    return uri


@pytest.mark.slow
@pytest.mark.s3
def test_pipeline_registers_then_gates_the_second_run(
    s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _upload(make_imagefolder(tmp_path / "d", n_train=16, n_val=6), f"{s3_bucket}/data")
    store = f"{s3_bucket}/models"
    runs = str(tmp_path / "runs")
    first = run_local(data, store, {**FAST, "gate_absolute_floor": "0.0"}, runs_dir=runs)
    assert first["status"] == "succeeded", first
    assert first["registered_version"] == 1 and first["production_version"] == 1
    assert first["gate"]["passed"] and "first model" in first["gate"]["reasons"][-1]
    assert first["metrics"]["n"] == 12
    # single-label: the right answers over n, whichever way they are counted
    assert first["metrics"]["accuracy"] == pytest.approx(first["metrics"]["recall_weighted"])
    for report in ("validation", "training", "evaluation", "gate", "registration"):
        assert Path(first["reports"][report]).is_file(), report
    assert "<html" in Path(first["reports"]["evaluation"]).read_text().lower()
    v1 = ModelStore(store).get(1)
    assert v1.metrics["accuracy"] == pytest.approx(first["metrics"]["accuracy"])
    assert v1.metadata["gate"]["passed"] is True
    assert v1.metadata["dataset"]["fingerprint"].startswith("sha256:")

    # Second run through the CLI: an impossible improvement is required, so the gate refuses.
    code = main(["pipeline", "run", "--local", "--data", data, "--store", store,
                 "--runs-dir", runs, "--json", *[f"--param={k}={v}" for k, v in FAST.items()],
                 "--param", "gate_min_improvement=1.0"])  # fmt: skip
    second = json.loads(capsys.readouterr().out)
    assert code == 0 and second["status"] == "succeeded"
    assert second["gate"]["passed"] is False and second["registered_version"] is None
    assert any("vs production v1" in r and "misses" in r for r in second["gate"]["reasons"])
    assert "Not registered" in Path(second["reports"]["registration"]).read_text()
    assert [v.version for v in ModelStore(store).versions()] == [1]

    assert main(["models", "list", "--store", store, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["production"] == 1
    assert listed["versions"][0]["metrics"]["accuracy"] == pytest.approx(
        first["metrics"]["accuracy"]
    )  # the store lists what the pipeline measured


@pytest.mark.slow
def test_pipeline_stops_at_validate_and_registers_nothing(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "d", classes=("a", "b", "c"), n_train=8, n_val=3)
    for f in (data / "val" / "c").iterdir():
        f.unlink()
    (data / "val" / "c").rmdir()
    store = tmp_path / "store"
    summary = run_local(str(data), str(store), FAST, runs_dir=str(tmp_path / "runs"))
    assert summary["status"] == "failed" and summary["failed_step"] == "validate"
    assert "class 'c' has 0 images in val" in summary["error"]
    assert summary["registered_version"] is None and summary["production_version"] is None
    assert ModelStore(store).versions() == []
    assert "FAILED" in Path(summary["reports"]["validation"]).read_text()
    assert "train" not in summary["reports"]
