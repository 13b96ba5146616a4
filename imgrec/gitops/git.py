"""The git operations imgrec needs, through the ``git`` command (no library, no network code).

* in a checkout: :func:`toplevel`, :func:`is_clean`, :func:`commit`;
* from a watched repository (a path or URL): :class:`Remote` keeps a bare cache repository,
  resolves a ref to a commit, fetches it and reads files at that commit. Example::

    remote = Remote("/srv/deploy.git", cache="~/.cache/imgrec/sync/repo")
    sha = remote.resolve("main")           # ls-remote: cheap enough to poll
    remote.fetch("main")
    text = remote.read(sha, "manifests/overlays/local/kustomization.yaml")
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from imgrec import storage
from imgrec.errors import GitOpsError

_IDENTITY = ("-c", "user.name=imgrec", "-c", "user.email=imgrec@localhost")


def run_tool(cmd: list[str], *, what: str, code: str, hint: str, cwd: str | Path | None = None,
             timeout_s: float = 120, check: bool = True) -> str:  # fmt: skip
    """Run ``cmd`` and return stdout; ``GitOpsError(code)`` naming ``what`` and the tool's last
    line of error output when it fails, times out or is not installed."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout_s
        )
    except FileNotFoundError as exc:
        raise GitOpsError(f"{cmd[0]} is not installed", hint=hint, code=code) from exc
    except subprocess.TimeoutExpired as exc:
        raise GitOpsError(f"{what} timed out after {timeout_s:g} s", hint=hint, code=code) from exc
    if check and proc.returncode != 0:
        reason = (proc.stderr or proc.stdout).strip().splitlines()
        raise GitOpsError(
            f"{what} failed: {reason[-1] if reason else proc.returncode}", hint=hint, code=code
        )
    return proc.stdout


def git(*args: str, cwd: str | Path | None = None, check: bool = True) -> str:
    """Run ``git ARGS`` and return stdout; ``GitOpsError`` (code ``git_failed``) on failure."""
    return run_tool(["git", *args], what=f"git {' '.join(args[:2])}", code="git_failed",
                    hint="check the repository path/URL, the ref and your access", cwd=cwd,
                    check=check)  # fmt: skip


def toplevel(path: str | Path) -> Path:
    """The root of the checkout holding ``path``."""
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    return Path(git("rev-parse", "--show-toplevel", cwd=folder).strip())


def is_clean(root: Path, path: Path) -> bool:
    """True when ``path`` has no uncommitted changes (staged or not)."""
    return not git("status", "--porcelain", "--", str(path), cwd=root).strip()


def commit(root: Path, paths: list[Path], message: str, *, branch: str | None = None) -> str:
    """Commit ``paths`` (only those) with ``message``; optionally on a new ``branch``.

    Uses the configured author, or ``imgrec <imgrec@localhost>`` where none is set (CI).
    Returns the new commit's SHA.
    """
    if branch:
        git("switch", "--quiet", "-c", branch, cwd=root)
    rel = [str(p.resolve().relative_to(root.resolve())) for p in paths]
    git("add", "--", *rel, cwd=root)
    identity = () if git("config", "user.email", cwd=root, check=False).strip() else _IDENTITY
    git(*identity, "commit", "--quiet", "-m", message, "--", *rel, cwd=root)
    return git("rev-parse", "HEAD", cwd=root).strip()


def push(root: Path, remote: str) -> str:
    """Push the current branch to the same branch of ``remote`` (a name, path or URL)."""
    branch = git("branch", "--show-current", cwd=root).strip()
    if not branch:
        raise GitOpsError("HEAD is detached: nothing to push", hint="check out a branch",
                          code="git_failed")  # fmt: skip
    git("push", "--quiet", remote, f"HEAD:refs/heads/{branch}", cwd=root)
    return branch


class Remote:
    """A watched repository: resolve a ref, fetch it into a bare cache, read files at a commit."""

    def __init__(self, repo: str, cache: str | Path | None = None) -> None:
        self.repo = repo if "://" in repo or repo.startswith("git@") else str(Path(repo).resolve())
        if cache is None:
            digest = hashlib.sha256(self.repo.encode()).hexdigest()[:16]
            cache = storage.cache_folder("gitops") / digest
        self.cache = Path(cache)
        if not (self.cache / "HEAD").exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            git("init", "--quiet", "--bare", str(self.cache))

    def resolve(self, ref: str) -> str:
        """The commit ``ref`` points at in the repository now (``git ls-remote``)."""
        out = git("ls-remote", "--", self.repo, ref)
        lines = [line.split("\t") for line in out.splitlines() if line.strip()]
        exact = [
            sha for sha, name in lines if name in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}")
        ]
        if not exact:
            raise GitOpsError(
                f"{self.repo} has no ref {ref!r}",
                hint="pass --ref with an existing branch or tag",
                code="git_failed",
            )
        return exact[0]

    def fetch(self, ref: str) -> None:
        """Fetch ``ref`` (and whatever history it needs) into the cache; force-pushes too."""
        git("fetch", "--quiet", "--force", "--no-tags", self.repo, ref, cwd=self.cache)

    def read(self, sha: str, path: str) -> str | None:
        """The text of ``path`` at commit ``sha``, or ``None`` when it is not a file there."""
        kind = git("cat-file", "-t", f"{sha}:{path}", cwd=self.cache, check=False).strip()
        if kind != "blob":
            return None
        return git("cat-file", "blob", f"{sha}:{path}", cwd=self.cache)

    def files(self, sha: str, folder: str) -> dict[str, str]:
        """Every file under ``folder`` at commit ``sha``, read with two git calls (ls-tree and
        one ``cat-file --batch``) instead of two per file: a render reads a dozen files."""
        listing = git("ls-tree", "-r", "-z", sha, "--", folder, cwd=self.cache)
        blobs: dict[str, str] = {}
        for entry in filter(None, listing.split("\0")):
            meta, _, path = entry.partition("\t")
            _mode, kind, obj = meta.split()
            if kind == "blob":
                blobs[obj] = path
        if not blobs:
            return {}
        wanted = "".join(f"{obj}\n" for obj in blobs).encode()
        cmd = ["git", "cat-file", "--batch"]
        proc = subprocess.run(cmd, cwd=self.cache, capture_output=True, input=wanted, timeout=120)
        if proc.returncode != 0:
            raise GitOpsError(f"git cat-file failed: {proc.stderr.decode()[-300:]}",
                              code="git_failed")  # fmt: skip
        out, pos = proc.stdout, 0
        texts: dict[str, str] = {}
        for _ in blobs:
            header_end = out.index(b"\n", pos)
            obj, _kind, size = out[pos:header_end].decode().split()
            start = header_end + 1
            texts[blobs[obj]] = out[start : start + int(size)].decode("utf-8", "replace")
            pos = start + int(size) + 1
        return texts

    def subject(self, sha: str) -> str:
        """The first line of the commit message."""
        return git("log", "-1", "--format=%s", sha, cwd=self.cache).strip()
