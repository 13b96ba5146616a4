"""The workflows, manifests and Dockerfile are checked like code: actionlint, zizmor and
hadolint run here (from the dev extra), checkov in `make lint`; kubernetes-validate and the
kserve models in tests/serving/test_manifests.py. Plus the project's own rules: least-privilege
permissions, concurrency groups, actions pinned to full commit SHAs, and every shell step a
project command that exists (and that the tests exercise)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
# Shell commands a workflow may run: each is exercised by the test suite (the test named).
PROJECT_COMMANDS = {
    ("bash", ".ci/run"): "CI itself",
    ("make", "install"): "every test run (make test installs first)",
    ("imgrec", "pipeline", "upload"): "tests/pipeline/test_pipeline_submit.py",
    ("imgrec", "pipeline", "submit"): "tests/pipeline/test_pipeline_submit.py",
    ("imgrec", "deploy", "image"): "tests/gitops/test_deploy_commands.py",
    ("imgrec", "deploy", "apply"): "tests/gitops/test_deploy_commands.py",
    ("imgrec", "models", "promote"): "tests/gitops/test_promote_git.py",
    ("imgrec", "models", "rollback"): "tests/gitops/test_promote_git.py",
    ("imgrec", "models", "list"): "tests/gitops/test_promote_git.py (--github-output)",
    ("imgrec", "pipeline", "run"): "tests/pipeline/test_pipeline_local_run.py",
}
# The only other commands a step may run, each plain glue around a project command.
GLUE = {
    ("git", "config"): "the bot identity for the commit `imgrec models promote --git` makes",
    ("git", "push"): "publishes the branch that `imgrec models promote --git --branch` made",
    ("gh", "pr", "create"): "opens the pull request (GitHub's API); merging it is the redeploy",
    ("echo",): "a message in the job log",
}
ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=(\"[^\"$`]*(\$\w+[^\"$`]*)*\"|[^\s$`]*)$")
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} comes with the dev extra (pip install -e '.[dev]')"
    return found


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_actionlint() -> None:
    out = run([tool("actionlint"), *map(str, WORKFLOWS)])
    assert out.returncode == 0, out.stdout + out.stderr


def test_zizmor() -> None:
    out = run([tool("zizmor"), "--offline", "--no-progress", ".github/workflows"])
    assert out.returncode == 0 and "No findings" in out.stdout + out.stderr, out.stdout + out.stderr


def test_hadolint() -> None:
    out = run([tool("hadolint"), "--config", ".hadolint.yaml", "Dockerfile"])
    assert out.returncode == 0, out.stdout + out.stderr


def _load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return dict(doc)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_policy(path: Path) -> None:
    doc = _load(path)
    assert doc["permissions"] == {"contents": "read"}, "least privilege at the top"
    assert doc.get("concurrency", {}).get("group"), "a concurrency group"
    for name, job in doc["jobs"].items():
        for perm, level in (job.get("permissions") or {}).items():
            assert level in ("read", "write", "none"), (name, perm)
        uses = [job["uses"]] if "uses" in job else [s["uses"] for s in job["steps"] if "uses" in s]
        for ref in uses:
            assert ref.startswith("$/") or SHA_PIN.match(ref), f"{name}: {ref} is not SHA-pinned"
        for step in job.get("steps", []):
            if "run" in step:
                check_project_command(step["run"], f"{path.name}:{name}")


def check_project_command(script: str, where: str) -> None:
    """Each line runs one project command from PROJECT_COMMANDS (no logic in YAML), one of
    the GLUE commands, or sets a plain variable (no command substitution)."""
    for line in filter(None, (s.strip() for s in script.replace("\\\n", " ").splitlines())):
        if ASSIGNMENT.match(line):
            continue
        words = shlex.split(line)
        words[0] = words[0].removeprefix(".venv/bin/")
        if any(tuple(words[: len(g)]) == g for g in GLUE) and "|" not in words:
            continue
        known = [k for k in PROJECT_COMMANDS if tuple(words[: len(k)]) == k]
        assert known, f"{where}: `{line}` is not a project command the tests exercise"
        if words[0] == "imgrec":
            from imgrec.cli import main

            assert main([*known[0][1:], "--help"]) == 0, f"{where}: imgrec {known[0][1:]}"


def test_policy_catches_violations() -> None:
    with pytest.raises(AssertionError, match="not a project command"):
        check_project_command("curl -X POST https://example.com", "x")
    with pytest.raises(AssertionError, match="not a project command"):
        check_project_command('v=$(imgrec models list --json | python3 -c "...")', "x")
    check_project_command('branch="retrain/v$VERSION"\ngit push origin "$branch"', "x")
    assert not SHA_PIN.match("actions/checkout@v4")
    assert SHA_PIN.match("actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683")


def test_argocd_application() -> None:
    from imgrec.gitops.overlay import read_production

    [app] = yaml.safe_load_all((REPO / "manifests/argocd/application.yaml").read_text())
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    source = app["spec"]["source"]
    assert read_production(REPO / source["path"]).version >= 1  # an overlay naming production
    assert app["spec"]["destination"]["namespace"] == "imgrec"
    [ignored] = app["spec"]["ignoreDifferences"]
    assert (ignored["group"], ignored["kind"]) == ("serving.kserve.io", "InferenceService")
    # the fields git drives must never be ignored
    assert not any("storageUri" in e or "canary" in e for e in ignored["jqPathExpressions"])
