"""Acceptance: `imgrec deploy sync --watch` follows a bare git repository holding the overlays.

A running `imgrec serve` and a running `imgrec deploy sync --watch 1` (both real processes on
loopback); commits pushed to the bare repository: a promotion serves the new version, a revert
the old one, commits naming a missing or checksum-failing version change nothing and the sync's
status says why, a canary commit splits 500 requests 20 +- 5 % (every prediction-log record
names its version), and removing the canary promotes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gitops_helpers import make_checkout, png_b64, run_git, servable_model

from imgrec.cli import main
from imgrec.gitops.overlay import write_production
from imgrec.model_store import ModelStore

REPO = Path(__file__).resolve().parents[2]
OVERLAY = "manifests/overlays/local"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: Callable[[], Any], what: str, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/models/imgrec:predict"
        # where `imgrec deploy sync` writes by default (serving.gitops_sync.status_path)
        self.status_file = tmp / "cache" / "serve" / f"{self.port}.sync.json"
        self.log_dir = tmp / "predlog"
        self.env = {**os.environ, "IMGREC_CACHE": str(tmp / "cache"), "PYTHONPATH": str(REPO)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.tmp / log).open("wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "imgrec", *args], cwd=self.tmp,
                                    stdout=fh, stderr=subprocess.STDOUT, env=self.env)  # fmt: skip
        self.procs.append(proc)
        return proc

    def version(self, seed: int = 0) -> str:
        try:
            r = httpx.post(self.url, json={"instances": [{"image": {"b64": png_b64(seed)}}]},
                           timeout=30)  # fmt: skip
        except httpx.HTTPError:
            return ""
        return str(r.json().get("model_version", "")) if r.status_code == 200 else ""

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.status_file.read_text()))
        except (OSError, ValueError):
            return {}

    def status_for(self, sha: str) -> dict[str, Any]:
        return _wait(lambda: (s := self.status()).get("commit") == sha and s, f"status of {sha}")

    def applied(self, sha: str) -> dict[str, Any]:
        """The last action the sync took, once it was for commit ``sha``."""
        return _wait(lambda: ((self.status().get("last_applied") or {}).get("commit") == sha
                              and self.status()["last_applied"]), f"action for {sha}")  # fmt: skip


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    # the watcher first: stopped after the server, it would start a detached one in its place
    for proc in reversed(e.procs):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    # and any server the sync started itself (detached, recorded in the state file)
    try:
        pid = int(json.loads(e.status_file.with_name(f"{e.port}.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


@pytest.mark.slow
def test_sync_follows_pushes(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGREC_CACHE", env.env["IMGREC_CACHE"])
    store = ModelStore(tmp_path / "store")
    store.register(servable_model(tmp_path, ["a", "b"], 1), metadata={"metrics": {"accuracy": 0.5}})
    store.register(servable_model(tmp_path, ["x", "y", "z"], 2),
                   metadata={"metrics": {"accuracy": 0.6}}, promote=False)  # fmt: skip
    origin = tmp_path / "origin.git"
    run_git("init", "--quiet", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    work = make_checkout(tmp_path / "work", store.uri, 1)
    overlay = work / OVERLAY

    def push() -> tuple[str, float]:
        run_git("push", "--quiet", str(origin), "HEAD:main", cwd=work)
        return run_git("rev-parse", "HEAD", cwd=work).strip(), time.monotonic()

    def commit(message: str) -> None:
        run_git("commit", "--quiet", "-am", message, cwd=work)

    first, _ = push()
    env.spawn(["serve", f"{store.uri}@1", "--port", str(env.port),
               "--prediction-log", str(env.log_dir)], "server.log")  # fmt: skip
    _wait(lambda: env.version() == "1", "the server")
    env.spawn(["deploy", "sync", "--repo", str(origin), "--ref", "main", "--overlay", OVERLAY,
               "--watch", "1", "--port", str(env.port), "--json"], "sync.log")  # fmt: skip
    status = env.status_for(first)
    assert (status["state"], status["action"]) == ("synced", "none")

    # promotion commit -> the new version serves
    assert main(["models", "promote", "2", "--git", "--overlay", str(overlay)]) == 0
    sha, pushed = push()
    _wait(lambda: env.version() == "2", "version 2")
    promoted_after = time.monotonic() - pushed
    assert env.applied(sha)["action"] == "swapped"
    assert env.status_for(sha)["subject"].startswith("models: promote local")

    # git revert -> the old version serves again
    run_git("revert", "--no-edit", "HEAD", cwd=work)
    sha, pushed = push()
    _wait(lambda: env.version() == "1", "the revert")
    assert env.status_for(sha)["state"] == "synced"

    # a missing version, then a version whose weights no longer match: nothing changes
    write_production(overlay, store.uri, 7)
    commit("point at a version that does not exist")
    sha, _ = push()
    status = _wait(lambda: (s := env.status_for(sha))["state"] == "failed" and s, "failure")
    assert "error[not_found]: model version 7 does not exist" in status["reason"]
    assert status["subject"] == "point at a version that does not exist"
    assert status["served"]["version"] == "1" and env.version() == "1"
    v3 = store.register(servable_model(tmp_path, ["p", "q"], 3), promote=False)
    weights = Path(v3.model_uri) / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    write_production(overlay, store.uri, 3)
    commit("point at a corrupted version")
    sha, _ = push()
    status = _wait(lambda: (s := env.status_for(sha))["state"] == "failed" and s, "failure")
    assert "error[invalid_model]" in status["reason"] and "sha256" in status["reason"]
    assert env.version() == "1"
    capsys.readouterr()
    assert main(["deploy", "status", "--port", str(env.port)]) == 1
    assert "NOT deployed: error[invalid_model]" in capsys.readouterr().out

    # canary: version 2 takes 20 % of 500 requests, each log record names its version
    write_production(overlay, store.uri, 2, canary_percent=20)
    commit("canary 20%")
    sha, _ = push()
    assert env.applied(sha)["action"] == "canary"
    with httpx.Client(timeout=30) as client:
        body = {"instances": [{"image": {"b64": png_b64(7)}}]}
        served = Counter(
            client.post(env.url, json=body, headers={"x-request-id": f"canary-{i}"}).json()[
                "model_version"
            ]
            for i in range(500)
        )
    assert set(served) == {"1", "2"} and 75 <= served["2"] <= 125, served
    logged = _wait(lambda: _log_versions(env.log_dir, "canary-", 500), "the prediction log")
    assert logged == served

    # the canary commit is followed by one without canaryTrafficPercent: v2 takes everything
    write_production(overlay, store.uri, 2)
    commit("promote the canary")
    sha, _ = push()
    assert env.applied(sha)["action"] == "swapped"
    assert {env.version(i) for i in range(20)} == {"2"}
    assert env.status_for(sha)["served"] == {"store": store.uri, "version": "2", "canary": None}
    capsys.readouterr()
    assert main(["models", "status", "--overlays", str(overlay), "--port", str(env.port)]) == 0
    out = capsys.readouterr().out
    assert f"local server :{env.port}" in out and ": serving v2" in out
    print(json.dumps({"push_to_serving_s": round(promoted_after, 2)}))


def _log_versions(folder: Path, prefix: str, n: int) -> Counter[str] | None:
    records = [json.loads(line) for f in sorted(folder.glob("*.jsonl"))
               for line in f.read_text().splitlines() if line.strip()]  # fmt: skip
    ours = [r["model_version"] for r in records if str(r["request_id"]).startswith(prefix)]
    return Counter(ours) if len(ours) >= n else None
