"""matplotlib loads on the first picture, and its one-time font cache build is announced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = (
    "import sys; import imgrec.evaluation.plots as p; "
    "before = 'matplotlib' in sys.modules; p.new_figure(2, 2); p.new_figure(2, 2); "
    "print(before, 'matplotlib.font_manager' in sys.modules)"
)


def test_first_figure_on_a_fresh_machine_says_it_builds_the_font_cache(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    runs = [
        subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["False", "True"]  # lazy until the first picture
    notice = "matplotlib is building its font cache"
    assert runs[0].stderr.count(notice) == 1, runs[0].stderr
    assert notice not in runs[1].stderr  # built once, then reused
    assert list((tmp_path / "mpl").glob("fontlist-v*.json"))
