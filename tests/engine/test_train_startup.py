"""The start of a training run: the data scan comes before torch (issue 14 item 5).

``imgrec.tasks.classify.train`` imports only what the scan needs (NumPy, Pillow); torch and
the engine load after the scan, so its progress shows seconds sooner.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import make_imagefolder

import imgrec.tasks.classify.train as train_module

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "timm", "imgrec.engine.loop")


def test_the_training_module_loads_without_torch() -> None:
    probe = (
        "import sys, imgrec.tasks.classify.train\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_scan_runs_and_reports_before_torch_and_the_engine_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_imagefolder(tmp_path / "data", n_train=2, n_val=1, size=8)
    monkeypatch.setattr(train_module, "TRAINING_MODULES", ("imgrec_no_such_module",))
    with pytest.raises(ModuleNotFoundError, match="imgrec_no_such_module"):
        train_module.train(data, out=tmp_path / "run", epochs=1)
    err = capsys.readouterr().err
    assert f"scanning {data} ..." in err
    assert f"scanned {data}: 3 classes (train 6, val 3)" in err
    assert not (tmp_path / "run").exists()  # nothing written before the engine loaded
