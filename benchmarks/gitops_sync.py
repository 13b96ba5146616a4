"""Time from `git push` to the new model version answering, through `imgrec deploy sync --watch`.

Prints one JSON object. A local store holds two small models (``small_resnet``, 32 px, two
and three classes); a bare repository holds ``manifests/`` with the local overlay naming
version 1; ``imgrec serve STORE@1`` and ``imgrec deploy sync --watch W`` run as processes on
loopback. Each round pushes a commit naming the other version and polls the server (every
20 ms) until a V1 answer carries the new ``model_version``. Reported per round and as medians:
``push_to_serving_s``, the sync's own ``apply_s`` (the hot swap: loading the version, i.e. the
model's load time), and the goal ``2 * W + apply_s`` with whether it was met; and where the
time went: ``push_to_pass_s`` (until the poll that saw the commit began: at most W plus the
previous pass) and ``fetch_render_verify_s`` (ls-remote, fetch, render, checksum check).

Usage: ``python benchmarks/gitops_sync.py [--watch 2] [--rounds 6]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from model_fixtures import png_b64, servable_model  # noqa: E402  (the tests' small models)

OVERLAY = "manifests/overlays/local"


def git(*args: str, cwd: Path) -> str:
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    return subprocess.run(
        ["git", *ident, *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--watch", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    from imgrec.gitops.overlay import write_production
    from imgrec.model_store import ModelStore

    tmp = Path(tempfile.mkdtemp(prefix="imgrec-gitops-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    load = os.getloadavg()
    try:
        store = ModelStore(tmp / "store")
        store.register(servable_model(tmp, ["a", "b"], 1))
        store.register(servable_model(tmp, ["x", "y", "z"], 2), promote=False)
        origin, work = tmp / "origin.git", tmp / "work"
        git("init", "--quiet", "--bare", "-b", "main", str(origin), cwd=tmp)
        git("init", "--quiet", "-b", "main", str(work), cwd=tmp)
        shutil.copytree(REPO / "manifests", work / "manifests")
        write_production(work / OVERLAY, store.uri, 1)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", "v1", cwd=work)
        git("push", "--quiet", str(origin), "HEAD:main", cwd=work)

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "IMGREC_CACHE": str(tmp / "cache"), "PYTHONPATH": str(REPO)}
        status_file = tmp / "status.json"
        imgrec = [sys.executable, "-m", "imgrec"]
        procs.append(
            subprocess.Popen(
                [*imgrec, "serve", f"{store.uri}@1", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        )
        url = f"http://127.0.0.1:{port}/v1/models/imgrec:predict"
        body = {"instances": [{"image": {"b64": png_b64(0)}}]}

        def version() -> str:
            try:
                r = httpx.post(url, json=body, timeout=30)
                return str(r.json().get("model_version", "")) if r.status_code == 200 else ""
            except httpx.HTTPError:
                return ""

        while version() != "1":
            time.sleep(0.2)
        procs.append(
            subprocess.Popen(
                [
                    *imgrec,
                    "deploy",
                    "sync",
                    "--repo",
                    str(origin),
                    "--overlay",
                    OVERLAY,
                    "--watch",
                    str(args.watch),
                    "--port",
                    str(port),
                    "--status-file",
                    str(status_file),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        )
        while not status_file.exists():
            time.sleep(0.2)

        rounds = []
        for i in range(args.rounds):
            target = 2 if i % 2 == 0 else 1
            write_production(work / OVERLAY, store.uri, target)
            git("commit", "--quiet", "-am", f"v{target}", cwd=work)
            git("push", "--quiet", str(origin), "HEAD:main", cwd=work)
            pushed, pushed_wall = time.monotonic(), time.time()
            sha = git("rev-parse", "HEAD", cwd=work).strip()
            while version() != str(target):
                time.sleep(0.02)
            served = time.monotonic() - pushed
            while (json.loads(status_file.read_text()).get("last_applied") or {}).get(
                "commit"
            ) != sha:
                time.sleep(0.05)
            applied = json.loads(status_file.read_text())["last_applied"]
            apply_s = float(applied["apply_s"])
            goal = 2 * args.watch + apply_s
            detected = applied["pass_started"] - pushed_wall  # push -> the pass that saw it
            rounds.append(
                {
                    "push_to_serving_s": round(served, 3),
                    "push_to_pass_s": round(detected, 3),
                    "fetch_render_verify_s": applied["render_s"],
                    "apply_s": apply_s,
                    "goal_s": round(goal, 3),
                    "met": served <= goal,
                }
            )
        med = statistics.median
        print(
            json.dumps(
                {
                    "benchmark": "gitops_sync",
                    "watch_s": args.watch,
                    "rounds": rounds,
                    "median_push_to_serving_s": round(
                        med(r["push_to_serving_s"] for r in rounds), 3
                    ),
                    "median_apply_s": round(med(r["apply_s"] for r in rounds), 3),
                    "median_push_to_pass_s": round(med(r["push_to_pass_s"] for r in rounds), 3),
                    "median_fetch_render_verify_s": round(
                        med(r["fetch_render_verify_s"] for r in rounds), 3
                    ),
                    "median_goal_s": round(med(r["goal_s"] for r in rounds), 3),
                    "met": sum(r["met"] for r in rounds),
                    "of": len(rounds),
                    "loadavg_before": [round(x, 2) for x in load],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                },
                indent=1,
            )
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
