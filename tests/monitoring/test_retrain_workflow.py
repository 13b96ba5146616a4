""".github/workflows/retrain.yml: valid by actionlint, started by the trigger's event type,
and every `imgrec` command it runs exists with the options it passes."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imgrec.monitoring.github import EVENT_TYPE

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "retrain.yml"


def _actionlint() -> str:
    found = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    if not Path(found).exists():
        pytest.fail("actionlint is missing: `pip install -c constraints.txt -e '.[dev]'`")
    return found


def test_actionlint_accepts_the_workflow() -> None:
    result = subprocess.run([_actionlint(), str(WORKFLOW)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_triggers_match_the_dispatch() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    on = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads `on` as true
    assert on["repository_dispatch"]["types"] == [EVENT_TYPE]
    assert "workflow_dispatch" in on
    # least privilege: read at the top, write only for the job that pushes and opens the PR
    assert doc["permissions"] == {"contents": "read"}
    assert doc["jobs"]["retrain"]["permissions"] == {"contents": "write", "pull-requests": "write"}


def _imgrec_commands() -> list[list[str]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    scripts = [s.get("run", "") for job in doc["jobs"].values() for s in job["steps"]]
    text = "\n".join(scripts).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        match = re.search(r"\.venv/bin/imgrec (.*?)(?:\||>|$)", line)
        if match:
            commands.append(shlex.split(match.group(1)))
    return commands


def test_every_imgrec_command_and_option_exists() -> None:
    commands = _imgrec_commands()
    names = {" ".join(c[:2]) for c in commands}
    assert names == {"models list", "pipeline submit", "pipeline run", "models promote"}
    for argv in commands:
        sub = [a for a in argv[:2]]
        out = subprocess.run([sys.executable, "-m", "imgrec", *sub, "--help"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        for option in (a for a in argv if a.startswith("--")):
            assert option in out.stdout, f"imgrec {' '.join(sub)} has no {option}"


def test_pipeline_parameters_it_passes_exist() -> None:
    from imgrec.pipelines.training import default_params

    text = WORKFLOW.read_text()
    used = set(re.findall(r'--param "?(\w+)=', text))
    assert used <= set(default_params()), used - set(default_params())
    assert {"new_data_uri", "init_from", "epochs"} <= used
