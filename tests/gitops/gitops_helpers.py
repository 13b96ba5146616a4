"""Helpers for the git-driven deployment tests: a checkout holding manifests/ and a store."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from model_fixtures import png_b64, servable_model

from imgrec.gitops.overlay import write_production

__all__ = ["make_checkout", "png_b64", "run_git", "servable_model"]

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def run_git(*args: str, cwd: Path) -> str:
    """``git ARGS`` in ``cwd`` with a fixed identity; returns stdout."""
    identity = ["-c", "user.name=tester", "-c", "user.email=tester@localhost"]
    proc = subprocess.run(
        ["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return proc.stdout


def make_checkout(root: Path, store: str, version: int) -> Path:
    """``root`` as a git checkout of ``manifests/`` whose local overlay names ``store@version``
    (the production overlay names version 1 of ``root/../prod-store``, which does not exist)."""
    root.mkdir(parents=True)
    run_git("init", "--quiet", "-b", "main", cwd=root)
    shutil.copytree(MANIFESTS, root / "manifests")
    write_production(root / "manifests/overlays/local", store, version)
    write_production(root / "manifests/overlays/production", str(root.parent / "prod-store"), 1)
    run_git("add", "-A", cwd=root)
    run_git("commit", "--quiet", "-m", "initial overlays", cwd=root)
    return root
