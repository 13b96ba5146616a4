"""Which checkout an image was built from: a digest of the image's build inputs.

The inputs are the ``Dockerfile``, ``.dockerignore`` and every file of the build context
(the checkout minus what ``.dockerignore`` leaves out, as podman and Docker read it).
``make image`` labels the image with their digest (:data:`INPUTS_LABEL`) and with the git
commit it was built at (:data:`REVISION_LABEL`, ``-dirty`` when the context had uncommitted
changes); the container runner compares the label with the checkout's digest and refuses an
image built from other files (:func:`imgrec.mlops.podman.require_image`). The build
arguments (base, torch index and pins) are labels of their own, not part of the digest.

Standard library only: ``containers/build-image.sh`` runs it with the system's Python::

    python3 -m imgrec.mlops.image_inputs .             # the digest
    python3 -m imgrec.mlops.image_inputs . --revision  # commit, -dirty when changed
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

INPUTS_LABEL = "imgrec.inputs"
REVISION_LABEL = "org.opencontainers.image.revision"
BUILD_FILES = ("Dockerfile", ".dockerignore")
"""Inputs outside the build context (the context file list is ``.dockerignore``'s)."""


def checkout_root() -> Path | None:
    """The checkout this imgrec is imported from (with its ``Dockerfile``), or None when it
    is installed from a wheel or inside the image, where there is nothing to compare with."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "Dockerfile").is_file() else None


def _regex(pattern: str) -> re.Pattern[str]:
    """A ``.dockerignore`` pattern as a regex: ``**`` any folders, ``*``/``?`` within one."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            out.append({"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i])))
            i += 1
    return re.compile("".join(out))


class DockerIgnore:
    """``.dockerignore`` rules: the last rule matching a path or one of its parent folders
    decides (``!`` lets it back in), as in Docker."""

    def __init__(self, lines: list[str]) -> None:
        self.rules: list[tuple[bool, str, re.Pattern[str]]] = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = os.path.normpath(line.removeprefix("!").strip()).strip("/")
            self.rules.append((keep, pattern, _regex(pattern)))

    @classmethod
    def of(cls, root: Path) -> DockerIgnore:
        path = root / ".dockerignore"
        return cls(path.read_text().splitlines() if path.is_file() else [])

    def excludes(self, path: str) -> bool:
        """Whether ``path`` (relative, ``/``-separated) is left out of the build context."""
        parts = path.strip("/").split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for keep, _, regex in self.rules:
            if any(regex.fullmatch(c) for c in candidates):
                excluded = not keep
        return excluded

    def may_keep_below(self, folder: str) -> bool:
        """Whether a ``!`` rule could let something below an excluded ``folder`` back in."""
        for keep, pattern, _ in self.rules:
            literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]  # up to the first wildcard
            inside = literal.startswith(folder + "/")
            wild_above = literal != pattern and (folder + "/").startswith(literal)
            if keep and (inside or wild_above):
                return True
        return False


def context_files(root: Path) -> list[str]:
    """The build context's files, relative ``/``-separated paths, sorted."""
    ignore = DockerIgnore.of(root)
    found = []
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirs[:] = sorted(d for d in dirs if not ignore.excludes(prefix + d)
                         or ignore.may_keep_below(prefix + d))  # fmt: skip
        found += [prefix + f for f in files if not ignore.excludes(prefix + f)]
    return sorted(found)


def inputs_digest(root: Path) -> str:
    """sha256 over the build files and the context's paths, executable bits and contents."""
    digest = hashlib.sha256()
    names = [n for n in BUILD_FILES if (root / n).is_file()] + context_files(root)
    for name in names:
        path = root / name
        if path.is_symlink():
            kind, data = "l", os.readlink(path).encode()
        else:
            kind, data = ("x" if path.stat().st_mode & 0o111 else "f"), path.read_bytes()
        digest.update(f"{name}\0{kind}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def revision(root: Path) -> str:
    """The git commit of ``root``, ``-dirty`` when a build input has uncommitted changes
    (``unknown`` outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, check=False)  # fmt: skip
        except OSError:  # no git
            return None
        return done.stdout if done.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "").strip()
    if not commit:
        return "unknown"
    ignore = DockerIgnore.of(root)
    # Porcelain v1 with -z: "XY path\0", a rename's or copy's old path as the next entry.
    entries = iter((git("status", "--porcelain", "-z", "--untracked-files=all") or "").split("\0"))
    changed = []
    for entry in entries:
        if len(entry) > 3:
            changed.append(entry[3:])
            if entry[0] in "RC":
                changed.append(next(entries, ""))
    dirty = any(p in BUILD_FILES or not ignore.excludes(p) for p in changed)
    return commit + ("-dirty" if dirty else "")


if __name__ == "__main__":
    where = Path(sys.argv[1]).resolve()
    print(revision(where) if "--revision" in sys.argv[2:] else inputs_digest(where))
