"""benchmarks/gpu_train_throughput.py (imgrec vs timm's recipe on a GPU) runs end to end in its
tiny CPU mode, so it is ready when a GPU machine is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_the_gpu_throughput_script_runs_in_its_tiny_cpu_mode(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_train_throughput.py"), "--tiny",
         "--mnist", str(tmp_path / "mnist5k")],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["device"] == "cpu" and report["train_images"] == 20  # 2 of each digit
    row = report["models"]["resnet18"]
    assert row["timm_loop"]["images"] == 20  # one epoch through timm's loader
    for side in ("imgrec", "timm_loop"):
        assert row[side]["images_per_s"] > 0 and row[side]["accuracy"] in {
            k / 10 for k in range(11)
        }
    assert row["ratio_imgrec_vs_timm_loop"] == pytest.approx(
        row["imgrec"]["images_per_s"] / row["timm_loop"]["images_per_s"], abs=1e-3
    )
