"""The timm entries' metadata file equals the installed timm's pretrained configs, and building
the registry does not import timm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from imgrec.models.timm_archs import _stored_cfgs, timm_cfgs

ROOT = Path(__file__).resolve().parents[2]


def test_stored_cfgs_equal_the_installed_timm() -> None:
    assert _stored_cfgs() == timm_cfgs(), (
        "imgrec/models/timm_cfgs.json is stale: run `python -m imgrec.models.timm_archs`"
    )


def test_registry_builds_without_importing_timm() -> None:
    code = (
        "import sys; from imgrec.models import ARCHITECTURES as A; "
        "print(len(A), A.get('resnet18').input_size, 'timm' in sys.modules)"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    count, size, imported = run.stdout.split()
    assert int(count) >= 15 and size == "224" and imported == "False"
