"""Detection trains through the shared engine: kill -9 mid-training, ``--resume`` equals an
uninterrupted run bit for bit, the best epoch is the one with the best val mAP50."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from imgrec.data.detection.sample import write_digits_detect
from imgrec.engine import checkpoint as ckpt
from imgrec.errors import ConfigError
from imgrec.tasks.detect.train import train

EPOCHS = 12
TINY = {"img_size": 96, "batch_size": 4, "threads": 1, "progress": False}
ROOT = Path(__file__).parents[2]

SCRIPT = """
from imgrec.tasks.detect.train import train
train({data!r}, out={out!r}, epochs={epochs}, **{tiny!r})
"""


def _history(run: Path) -> list[dict]:
    path = run / "history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("detect resume")
    write_digits_detect(root / "digits", n_train=12, n_val=4, seed=3)
    return root / "digits" / "data.yaml"


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "killed run"
    code = SCRIPT.format(data=str(data), out=str(run), epochs=EPOCHS, tiny=TINY)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        deadline = time.monotonic() + 240
        while len(_history(run)) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, "training ended before it could be killed"
            time.sleep(0.05)
        assert proc.poll() is None, "training ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    saved = ckpt.load_checkpoint(run / "checkpoint.pt")
    assert 1 <= saved["epoch"] < EPOCHS

    resumed = train(data, out=run, resume=True, **TINY)
    assert [h["epoch"] for h in _history(run)] == list(range(1, EPOCHS + 1))
    assert [h["epoch"] for h in resumed.history] == list(range(1, EPOCHS + 1))

    reference = train(data, out=tmp_path / "reference", epochs=EPOCHS, **TINY)
    for folder in ("last", "model"):
        got = load_file(str(run / folder / "weights.safetensors"))
        want = load_file(str(Path(reference.run_dir) / folder / "weights.safetensors"))
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), (folder, key)
    assert resumed.metrics["map50"] == reference.metrics["map50"]
    assert [h["train_loss"] for h in resumed.history] == [
        h["train_loss"] for h in reference.history
    ]


def test_best_epoch_is_the_best_val_map50_and_refusals(data: Path, tmp_path: Path) -> None:
    result = train(data, out=tmp_path / "run", epochs=3, val_every=1, **TINY)
    scores = [h["val_map50"] for h in result.history]
    assert len(scores) == 3  # every epoch validated
    best = max(range(3), key=lambda i: (scores[i], -i)) + 1  # the first of equal bests
    card = json.loads((Path(result.model_dir) / "model.json").read_text())
    assert card["metrics"]["best_epoch"] == best
    assert card["metrics"]["map50"] == pytest.approx(scores[best - 1], abs=1e-5)

    with pytest.raises(ConfigError, match="cannot resume"):
        train(data, out=tmp_path / "nothing", resume=True, **TINY)
    other = tmp_path / "other"
    write_digits_detect(other, n_train=12, n_val=4, seed=4)
    with pytest.raises(ConfigError, match="dataset changed"):
        train(other / "data.yaml", out=tmp_path / "run", resume=True, **TINY)


def test_time_budget_stops_training_and_is_recorded(data: Path, tmp_path: Path) -> None:
    # 10 s, not 4: under load the set-up alone took 4 s and no epoch ran (seen once)
    result = train(data, out=tmp_path / "run", epochs=500, time_budget=10, **TINY)
    assert 1 <= len(result.history) < 500
    assert "val_map50" in result.history[-1]  # the epoch cut short is the validated last one
    saved = ckpt.load_checkpoint(Path(result.run_dir) / "checkpoint.pt")
    assert saved["epoch"] == len(result.history)
    assert 0 < saved["train_seconds"] <= result.metrics["train_seconds"]
