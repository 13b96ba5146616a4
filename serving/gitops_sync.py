"""``imgrec deploy sync``: the laptop's Argo CD. Git says which model serves; this makes it so.

One reconciliation (:meth:`GitOpsSync.once`):

1. resolve ``--ref`` in the watched repository (``git ls-remote``; cheap enough to poll);
2. on a new commit: fetch it, render ``--overlay`` (:mod:`imgrec.gitops.kustomize`) and read the
   imgrec InferenceService's model: store, version, ``canaryTrafficPercent``;
3. verify the version in the store: complete, every file matching its sha256;
4. compare with what the local KServe predictor serves (its admin route) and act: **start** it
   when none runs, **swap** (hot, no failed request) or **canary** (load the new version beside
   the served one with the overlay's share, as KServe Serverless does), or nothing when in sync.

A commit that cannot be rendered, names a missing/incomplete/corrupt version, or fails to load
changes nothing: the server keeps serving, and the status (``--status-file``; ``imgrec deploy
status``) names the commit and the reason. A later good commit deploys normally; a force-push
is just another commit. Example::

    sync = GitOpsSync("/srv/deploy.git", "main", "manifests/overlays/local", port=8080)
    sync.watch(interval_s=5)             # blocks; one status line per change
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imgrec.errors import GitOpsError, ImgrecError
from imgrec.gitops.git import Remote
from imgrec.gitops.kustomize import render
from imgrec.gitops.overlay import Production, production_from_docs
from imgrec.serving.deploy import start_local
from imgrec.serving.local_server import DEFAULT_NAME, running_server, state_path, swap_local

log = logging.getLogger("imgrec.serving")


def status_path(port: int) -> Path:
    """Where the sync for the server on ``port`` writes its status (beside the server state)."""
    return state_path(port).with_name(f"{port}.sync.json")


@dataclass
class GitOpsSync:
    """Keep the local server on ``port`` serving what ``overlay`` at ``ref`` of ``repo`` says."""

    repo: str
    ref: str
    overlay: str
    port: int = 8080
    host: str = "127.0.0.1"
    name: str = DEFAULT_NAME
    start: bool = True
    status_file: Path | None = None
    remote: Remote = field(init=False)
    _last: dict[str, Any] = field(init=False, default_factory=dict)
    _applied: dict[str, Any] | None = field(init=False, default=None)
    _seen: dict[str, Any] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.remote = Remote(self.repo)
        self.status_file = Path(self.status_file or status_path(self.port))

    # --- one reconciliation ------------------------------------------------------------
    def once(self) -> dict[str, Any]:
        """Reconcile once; returns (and writes) the status."""
        status: dict[str, Any] = {"repo": self.remote.repo, "ref": self.ref,
                                  "overlay": self.overlay, "port": self.port,
                                  "pass_started": time.time()}  # fmt: skip
        try:
            sha = self.remote.resolve(self.ref)
            status["commit"] = sha
            desired = self._desired(sha, status)
            status["desired"] = desired.to_dict()
            status["render_s"] = round(time.time() - status["pass_started"], 3)
            status.update(self._apply(desired))
            status["state"] = "synced"
        except ImgrecError as exc:
            status.update(state="failed", reason=f"error[{exc.code}]: {exc}")
            status["last_synced"] = self._last.get("last_synced")
        acted = status.get("action") not in (None, "none")
        status["served"] = (
            self._seen if self._seen is not None and not acted else (self._served_summary())
        )
        self._seen = None
        if status["state"] == "synced":
            status["last_synced"] = {"commit": status["commit"], "time": _now()}
            if status.get("action", "none") != "none":
                keys = ("commit", "action", "apply_s", "render_s", "pass_started")
                self._applied = {k: status.get(k) for k in keys}
                self._applied["time"] = _now()
        status["last_applied"] = self._applied
        self._write(status)
        self._last = status
        return status

    def _desired(self, sha: str, status: dict[str, Any]) -> Production:
        if self._last.get("commit") == sha and "desired" in self._last:
            status["subject"] = self._last.get("subject", "")
            return Production(**self._last["desired"])
        self.remote.fetch(self.ref)
        status["subject"] = self.remote.subject(sha)
        top = self.overlay.strip("/").split("/")[0]
        files = self.remote.files(sha, top)  # one read of the folder holding the overlay

        def read(path: str) -> str | None:
            inside = path == top or path.startswith(top + "/")
            return files.get(path) if inside else self.remote.read(sha, path)

        docs = render(self.overlay, read)
        desired = production_from_docs(docs, f"{self.overlay} at {sha[:12]}")
        self._verify(desired)
        return desired

    @staticmethod
    def _verify(desired: Production) -> None:
        from imgrec.model_store import ModelStore

        store = ModelStore(desired.store)
        store.get(desired.version)  # NotFoundError: missing or incomplete (no COMPLETE marker)
        store.verify(desired.version)  # ModelError: a file no longer matches its sha256

    def _apply(self, desired: Production) -> dict[str, Any]:
        server = running_server(self.port)
        model = desired.model
        if server is None:
            if not self.start:
                raise GitOpsError(f"no imgrec server on port {self.port}",
                                  hint="start one, or drop --no-start")  # fmt: skip
            started = time.perf_counter()
            start_local(model, host=self.host, port=self.port, name=self.name)
            return {"action": "started", "apply_s": round(time.perf_counter() - started, 3)}
        info = _admin_info(server, self.name)
        self._seen = _summary(info)  # what serves now; re-read below only after an action
        serving = _serves(info, desired.store, desired.version)
        canary = info.get("canary")
        percent = desired.canary_percent
        if percent is not None and 0 < percent < 100 and not serving:
            if (
                canary
                and _serves(canary, desired.store, desired.version)
                and (canary.get("percent") == percent)
            ):
                return {"action": "none"}
            return self._swap(server, model, percent, "canary")
        if percent == 0 and not serving:
            return {"action": "none", "note": "canaryTrafficPercent 0: the new version takes none"}
        if serving and canary is None:
            return {"action": "none"}
        return self._swap(server, model, None, "swapped")

    def _swap(self, server: dict[str, Any], model: str, percent: int | None,
              action: str) -> dict[str, Any]:  # fmt: skip
        started = time.perf_counter()
        swap_local(server, model, self.name, canary_percent=percent)
        return {"action": action, "apply_s": round(time.perf_counter() - started, 3)}

    def _served_summary(self) -> dict[str, Any] | None:
        server = running_server(self.port)
        if server is None:
            return None
        try:
            info = _admin_info(server, self.name)
        except ImgrecError:
            return None
        return _summary(info)

    def _write(self, status: dict[str, Any]) -> None:
        status["time"] = _now()
        path = Path(self.status_file or status_path(self.port))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(status, indent=1, default=str))
        os.replace(tmp, path)

    # --- the loop ----------------------------------------------------------------------
    def watch(self, interval_s: float, *, on_change: Callable[[dict[str, Any]], None] = lambda s:
              print(describe(s)), iterations: int | None = None) -> None:  # fmt: skip
        """Reconcile every ``interval_s`` seconds until interrupted (or ``iterations`` times);
        calls ``on_change(status)`` whenever the state, the commit or the served version
        changes, or the sync acted."""
        shown: tuple[Any, ...] = ()
        n = 0
        while iterations is None or n < iterations:
            began = time.monotonic()
            status = self.once()
            key = (status.get("commit"), status["state"], status.get("action"),
                   json.dumps(status.get("served"), sort_keys=True))  # fmt: skip
            if key != shown or status.get("action") not in (None, "none"):
                on_change(status)
                shown = key
            n += 1
            time.sleep(max(0.0, interval_s - (time.monotonic() - began)))


def describe(status: dict[str, Any]) -> str:
    """One line for people: what the sync did, or why it did nothing."""
    commit = str(status.get("commit") or "?")[:12]
    served = status.get("served") or {}
    now = f"serving v{served.get('version')}" if served else "no server"
    if served.get("canary"):
        c = served["canary"]
        now += f" + canary v{c['version']} at {c['percent']}%"
    if status["state"] == "failed":
        return f"{commit} NOT deployed: {status['reason']} (still {now})"
    action = status.get("action", "none")
    timing = f" in {status['apply_s']} s" if "apply_s" in status else ""
    return f"{commit} {'in sync' if action == 'none' else action + timing}: {now}"


def _admin_info(server: dict[str, Any], name: str) -> dict[str, Any]:
    import httpx

    r = httpx.get(f"{server['url']}/imgrec/admin/models/{name}",
                  headers={"Authorization": f"Bearer {server['token']}"}, timeout=10)  # fmt: skip
    if r.status_code != 200:
        raise GitOpsError(f"the server at {server['url']} answered {r.status_code}: {r.text[:200]}")
    return dict(r.json())


def _summary(info: dict[str, Any]) -> dict[str, Any]:
    return {"store": info.get("store"), "version": info.get("version"),
            "canary": info.get("canary")}  # fmt: skip


def _serves(info: dict[str, Any], store: str, version: int) -> bool:
    return str(info.get("version")) == str(version) and _same_store(info.get("store"), store)


def _same_store(a: Any, b: str) -> bool:
    if a is None:
        return False
    if "://" in str(a) or "://" in b:
        return str(a).rstrip("/") == b.rstrip("/")
    return os.path.realpath(str(a)) == os.path.realpath(b)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
