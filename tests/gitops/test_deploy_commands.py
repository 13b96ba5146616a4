"""`imgrec deploy image` (cd.yml bumps the serving image tag through git) and `imgrec deploy
apply` (deploy.yml): a failed server-side dry run applies nothing and says why."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from gitops_helpers import make_checkout, run_git

from imgrec.cli import main
from imgrec.gitops.kustomize import read_worktree, render
from imgrec.gitops.overlay import read_image_tag

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:%d"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_image_tag_commit_and_push(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = make_checkout(tmp_path / "work", str(tmp_path / "store"), 1)
    origin = tmp_path / "origin.git"
    run_git("init", "--quiet", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    overlays = [work / "manifests/overlays/production", work / "manifests/overlays/local"]
    args = ["deploy", "image", "3f2a9c1", "--git", "--push", str(origin)]
    assert main([*args, *(f"--overlay={o}" for o in overlays)]) == 0
    assert "pushed to main" in capsys.readouterr().out
    assert [read_image_tag(o) for o in overlays] == ["3f2a9c1", "3f2a9c1"]
    pushed = run_git("log", "-1", "--format=%s", "main", cwd=origin)
    assert (
        pushed.strip() == "deploy: serving image ghcr.io/imgrec/imgrec:3f2a9c1 (production, local)"
    )
    docs = render("manifests/overlays/production", read_worktree(work))
    [runtime] = [d for d in docs if d["kind"] == "ClusterServingRuntime"]
    assert runtime["spec"]["containers"][0]["image"] == "ghcr.io/imgrec/imgrec:3f2a9c1"
    assert "# The production model" in (overlays[0] / "production-model.yaml").read_text()

    assert main(["deploy", "image", "bad tag!", "--overlay", str(overlays[0])]) == 2
    assert capsys.readouterr().err.startswith("error[invalid_overlay]: bad image tag")


def test_apply_dry_run_failure_applies_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connection refused
    work = make_checkout(tmp_path / "work", str(tmp_path / "store"), 1)
    overlay = str(work / "manifests/overlays/production")
    monkeypatch.setenv("KUBECONFIG_DATA", KUBECONFIG % port)
    assert (
        main(["deploy", "apply", "--overlay", overlay, "--kubeconfig-env", "KUBECONFIG_DATA"]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error[deploy_failed]: kubectl server dry run failed:")
    assert "nothing was applied" in err

    monkeypatch.setenv("EMPTY", "")
    assert main(["deploy", "apply", "--overlay", overlay, "--kubeconfig-env", "EMPTY"]) == 2
    assert "error[invalid_config]: $EMPTY is empty" in capsys.readouterr().err

    kust = Path(overlay) / "kustomization.yaml"
    doc = yaml.safe_load(kust.read_text())
    doc["configMapGenerator"] = []
    kust.write_text(yaml.safe_dump(doc))
    assert main(["deploy", "apply", "--overlay", overlay]) == 2
    assert capsys.readouterr().err.startswith("error[invalid_overlay]:")
