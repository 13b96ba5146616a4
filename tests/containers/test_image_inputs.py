"""The digest that ties an image to a checkout (imgrec/mlops/image_inputs.py): it follows
the build context and the build files, nothing else; the revision says when they are dirty."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from imgrec.mlops.image_inputs import checkout_root, context_files, inputs_digest, revision

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A small checkout: build files, one package, and what stays out of the context."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . ./\n")
    (tmp_path / ".dockerignore").write_text("*\n!pkg\n!tools/check.py\n**/__pycache__\n")
    for name, text in {"pkg/__init__.py": "", "pkg/a.py": "A = 1\n", "tools/check.py": "",
                       "tools/other.sh": "", "tests/test_a.py": "", "data/x.csv": "1\n",
                       "pkg/__pycache__/a.pyc": "x"}.items():  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_context_is_what_dockerignore_lets_in(checkout: Path) -> None:
    assert context_files(checkout) == ["pkg/__init__.py", "pkg/a.py", "tools/check.py"]


def test_the_digest_follows_the_context_and_the_build_files_only(checkout: Path) -> None:
    first = inputs_digest(checkout)
    for outside in ("tests/test_a.py", "data/x.csv", "pkg/__pycache__/a.pyc", "tools/other.sh"):
        (checkout / outside).write_text("changed\n")
    (checkout / "notes.md").write_text("new\n")
    assert inputs_digest(checkout) == first
    digests = {first}
    for change in (
        lambda: (checkout / "pkg/a.py").write_text("A = 2\n"),
        lambda: (checkout / "pkg/b.py").write_text(""),
        lambda: os.chmod(checkout / "pkg/b.py", 0o755),
        lambda: (checkout / "pkg/b.py").rename(checkout / "pkg/c.py"),
        lambda: (checkout / "Dockerfile").write_text("FROM scratch\n"),
        lambda: (checkout / ".dockerignore").write_text("*\n!pkg\n"),
    ):
        change()
        digests.add(inputs_digest(checkout))
    assert len(digests) == 7  # every change above is a new digest


def test_the_revision_is_the_commit_and_dirty_only_for_build_inputs(checkout: Path) -> None:
    assert revision(checkout) == "unknown"  # not a git checkout

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(checkout), *args], check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    commit = git("rev-parse", "HEAD")
    assert revision(checkout) == commit
    (checkout / "tests/test_a.py").write_text("changed\n")
    (checkout / "notes.md").write_text("untracked, outside the context\n")
    assert revision(checkout) == commit
    (checkout / "pkg/new.py").write_text("")  # untracked, inside
    assert revision(checkout) == commit + "-dirty"
    (checkout / "pkg/new.py").unlink()
    (checkout / "pkg/a.py").unlink()  # a deleted input
    assert revision(checkout) == commit + "-dirty"


def test_this_checkout_is_found_and_its_context_holds_the_code() -> None:
    assert checkout_root() == ROOT
    files = context_files(ROOT)
    assert {"pyproject.toml", "imgrec/mlops/image_inputs.py", "containers/check_imports.py"} <= set(
        files
    )
    assert not [f for f in files if f.startswith(("tests/", ".venv", "data/", "containers/podman"))]
    assert not [f for f in files if "__pycache__" in f]
