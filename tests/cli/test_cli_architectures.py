"""`imgrec architectures` answers from a snapshot that must equal the registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from imgrec.cli.architectures import architecture_rows, registry_rows

ROOT = Path(__file__).resolve().parents[2]


def test_snapshot_equals_the_registry() -> None:
    assert architecture_rows() == registry_rows(), (
        "imgrec/models/architectures.json is stale: run `python -m imgrec.cli.architectures`"
    )


def test_listing_imports_neither_torch_nor_timm() -> None:
    code = (
        "import sys; from imgrec.cli import main; code = main(['architectures']); "
        "print(code, sorted(m for m in ('torch', 'timm') if m in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)}
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "0 []", run.stdout
    assert any(line.startswith("efficientnet_lite0") and "offline" in line for line in lines)
