"""predict, evaluate and serve refuse missing local inputs before loading a model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imgrec.cli.inputs import missing_paths, model_path

ROOT = Path(__file__).resolve().parents[2]

CALLS = {
    "predict": ["predict", "{tmp}/nope.jpg", "{tmp}/real.jpg", "{tmp}/gone dir"],
    "predict_model": ["predict", "{tmp}/real.jpg", "-m", "{tmp}/no model"],
    "evaluate_model": ["evaluate", "{tmp}/no model", "{tmp}"],
    "evaluate_data": ["evaluate", "efficientnet_lite0", "{tmp}/no data"],
    "serve_store": ["serve", "{tmp}/no store@production", "--port", "0"],
    "serve_calibration": ["serve", "--precision", "int8", "--calibration", "{tmp}/no cal"],
}
EXPECTED = {
    "predict": "error[not_found]: image source {tmp}/nope.jpg, {tmp}/gone dir do not exist",
    "predict_model": "error[not_found]: model {tmp}/no model does not exist",
    "evaluate_model": "error[not_found]: model {tmp}/no model does not exist",
    "evaluate_data": "error[not_found]: dataset {tmp}/no data does not exist",
    "serve_store": "error[not_found]: model {tmp}/no store does not exist",
    "serve_calibration": "error[not_found]: calibration images {tmp}/no cal does not exist",
}


def test_missing_inputs_fail_before_torch_is_imported(tmp_path: Path) -> None:
    (tmp_path / "real.jpg").write_bytes(b"\xff\xd8")
    calls = {k: [a.format(tmp=tmp_path) for a in v] for k, v in CALLS.items()}
    code = (
        "import contextlib, io, json, sys\n"
        "from imgrec.cli import main\n"
        f"calls = json.loads({json.dumps(json.dumps(calls))})\n"
        "out = {}\n"
        "for key, argv in calls.items():\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        out[key] = (main(argv), err.getvalue())\n"
        "out['torch'] = 'torch' in sys.modules\n"
        "print(json.dumps(out))\n"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result.pop("torch") is False  # nothing heavy was loaded
    for key, (status, err) in result.items():
        assert status == 2, (key, err)
        assert err.startswith(EXPECTED[key].format(tmp=tmp_path)), (key, err)
        assert len(err.strip().splitlines()) == 1, (key, err)


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("efficientnet_lite0", None),
        ("s3://bucket/models@production", None),
        ("runs/cats/model", "runs/cats/model"),
        ("store@production", "store"),
        ("../store@12", "../store"),
        ("./model", "./model"),
    ],
)
def test_model_path(model: str, path: str | None) -> None:
    assert model_path(model) == path


def test_missing_paths_skips_uris_and_globs(tmp_path: Path) -> None:
    there = str(tmp_path)
    gone = str(tmp_path / "gone")
    globbed = str(tmp_path / "*.png")
    assert missing_paths([there, gone, globbed, "s3://b/k", None, ""]) == [gone]
