"""kill -9 mid-training, then ``--resume`` finishes the planned epochs (BAD-INPUTS row 18)."""

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
from train_fixtures import TINY, make_imagefolder

from imgrec.engine import checkpoint as ckpt
from imgrec.errors import ConfigError, ModelError, StorageError
from imgrec.tasks.classify.train import train

EPOCHS = 30
HERE = Path(__file__).parent
ROOT = HERE.parents[1]

SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from train_fixtures import TINY
from imgrec.tasks.classify.train import train
train({data!r}, out={out!r}, epochs={epochs}, **TINY)
"""


def _history(run: Path) -> list[dict]:
    path = run / "history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "data")
    run = tmp_path / "killed run"
    code = SCRIPT.format(here=str(HERE), data=str(data), out=str(run), epochs=EPOCHS)
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
    saved = ckpt.load_checkpoint(run / "checkpoint.pt")  # complete, weights_only-loadable
    assert 1 <= saved["epoch"] < EPOCHS

    resumed = train(data, out=run, resume=True, **TINY)
    epochs = [h["epoch"] for h in _history(run)]
    assert epochs == list(range(1, EPOCHS + 1))
    assert [h["epoch"] for h in resumed.history] == epochs
    assert ckpt.load_checkpoint(run / "checkpoint.pt")["epoch"] == EPOCHS

    # Optimizer, scheduler and RNG state were restored: same weights as a run never killed.
    reference = train(data, out=tmp_path / "reference", epochs=EPOCHS, **TINY)
    got = load_file(str(run / "last" / "weights.safetensors"))
    want = load_file(str(Path(reference.run_dir) / "last" / "weights.safetensors"))
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_resume_refuses_a_missing_run_or_changed_data(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "data", n_train=8, n_val=3)
    with pytest.raises(ConfigError, match="cannot resume"):
        train(data, out=tmp_path / "nothing", resume=True, **TINY)
    with pytest.raises(ConfigError, match="needs out=RUN_DIR"):  # no fresh run dir to continue
        train(data, resume=True, **TINY)
    train(data, out=tmp_path / "run", epochs=1, **TINY)
    other = make_imagefolder(tmp_path / "other", n_train=8, n_val=3, seed=1)
    with pytest.raises(ConfigError, match="dataset changed"):
        train(other, out=tmp_path / "run", resume=True, **TINY)


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(StorageError, match="simulated"):
        ckpt.save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    assert ckpt.load_checkpoint(path)["epoch"] == 1  # the previous complete checkpoint
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp left behind


def test_damaged_or_pickled_checkpoints_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelError, match="cannot be read safely"):
        ckpt.load_checkpoint(path)

    # An arbitrary Python object needs full pickle: weights_only refuses it, no fallback.
    torch.save({"epoch": 1, "obj": Path("/etc")}, path)
    with pytest.raises(ModelError, match="cannot be read safely"):
        ckpt.load_checkpoint(path)


def test_rng_state_round_trips() -> None:
    import random

    import numpy as np

    gen = torch.Generator().manual_seed(5)
    state = ckpt.rng_state(gen)
    first = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    ckpt.set_rng_state(state, gen)
    second = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2] == second[2] and torch.equal(first[3], second[3])
