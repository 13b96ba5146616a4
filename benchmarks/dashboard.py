"""Dashboard speed on big records: start-up time and server time per page (issue 13).

Writes, under ``--work`` (default a temporary folder): a model store with ``--versions`` versions
(10 classes each, per-class metrics), a prediction log of ``--records`` records spread over 30
days in the server's daily files, ``--reports`` drift reports and 20 pipeline run folders. Then:

* ``naive_full_read_s``: the baseline — reading and aggregating the whole log once (what a page
  would cost if it loaded the log);
* ``index_build_s``: the first (background) indexing of the whole log; ``index_reload_s``: a
  new process loading the saved index; ``incremental_s``: reading 1,000 appended records;
* ``startup``: ``imgrec dashboard`` from process start to the first 200 on ``/`` (wall and CPU
  seconds, medians of ``--rounds``), with the index and compiled templates saved (``warm``) and
  without (``cold``: the first page renders while indexing starts); the same for a ``--baseline``
  checkout (e.g. ``git worktree add --detach /tmp/base main``) started alternately with this one;
  and as floors ``imgrec --help`` (start and exit) and a bare ``python -c pass``, with the load
  average;
* ``pages_ms``: each page's server time (``Server-Timing``), median and max of ``--repeats``.

    python benchmarks/dashboard.py --records 1000000 --versions 50
    python benchmarks/dashboard.py --startup-only --baseline /tmp/base --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLASSES = [f"class_{i}" for i in range(10)]


def make_store(root: Path, versions: int) -> str:
    import numpy as np
    from safetensors.numpy import save_file

    from imgrec.model_store import ModelStore

    model = root / "model"
    model.mkdir(parents=True)
    save_file({"w": np.zeros(64, dtype=np.float32)}, model / "weights.safetensors")
    (model / "model.json").write_text(json.dumps({"format": "imgrec.model/v1", "classes": CLASSES}))
    store = ModelStore(root / "store")
    rng = random.Random(0)
    for _ in range(versions):
        per_class = {
            c: {"precision": rng.random(), "recall": rng.random(), "f1": rng.random(),
                "support": 100} for c in CLASSES
        }  # fmt: skip
        store.register(model, metadata={
            "metrics": {"accuracy": rng.random(), "f1_macro": rng.random(), "n": 1000,
                        "classes": CLASSES, "per_class": per_class},
            "gate": {"passed": True, "reasons": ["accuracy clears the floor"]},
        })  # fmt: skip
    return store.uri


def make_log(folder: Path, records: int) -> int:
    """Daily ``predictions-YYYYMMDD.jsonl`` files over 30 days; returns the bytes written."""
    folder.mkdir(parents=True)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    step = timedelta(days=30) / records
    rng = random.Random(0)
    size = 0
    days: dict[str, list[str]] = {}
    for i in range(records):
        t = start + i * step
        k = rng.randrange(10)
        line = (
            f'{{"schema": "imgrec.predlog/v1", "request_id": "r{i}", "item": 0, '
            f'"time": "{t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}", "model": "imgrec", '
            f'"model_version": "50", "protocol": "v2", "label": "class_{k}", "class_id": {k}, '
            f'"confidence": {rng.random():.4f}, "latency_ms": {rng.uniform(5, 200):.1f}, '
            f'"fingerprint": "sha256:{i:016x}", "width": 640, "height": 480, '
            f'"brightness": 0.41, "contrast": 0.2, "sharpness": 0.0043, "embedding": '
            f'[0.12, -0.31, 0.05, 0.4, -0.22, 0.18, -0.07, 0.29], "embedding_norm": 23.18}}\n'
        )
        size += len(line)
        days.setdefault(t.strftime("%Y%m%d"), []).append(line)
    for day, lines in days.items():
        with open(folder / f"predictions-{day}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(lines)
    return size


def make_reports(root: Path, n: int) -> None:
    end = datetime(2026, 11, 1, tzinfo=timezone.utc)
    for i in range(n):
        folder = root / f"window-{i:04d}"
        folder.mkdir(parents=True)
        w_end = end + timedelta(hours=6 * i)
        signals = [
            {"name": s, "kind": "input", "method": "ks", "statistic": 0.1,
             "p_value": (i * 7 % 100) / 100, "threshold": 0.002, "drifted": False}
            for s in ("confidence", "label", "brightness", "contrast", "embedding")
        ]  # fmt: skip
        (folder / "summary.json").write_text(json.dumps({
            "drift": False, "window": {"n": 500, "start": str(w_end - timedelta(hours=6)),
                                       "end": w_end.isoformat()},
            "model_version": "50", "reference": "store@production", "signals": signals,
            "alpha": 0.01,
        }))  # fmt: skip
        (folder / "report.html").write_text("<html></html>")


def make_runs(root: Path, store: str, n: int) -> str:
    for i in range(n):
        run = root / f"20261101-{i:06d}-000000"
        (run / "imgrec-training-x" / "evaluate").mkdir(parents=True)
        lines = []
        for s, step in enumerate(("ingest", "validate", "preprocess", "train", "evaluate")):
            lines.append(f"10:00:{s * 10:02d}.000 - INFO - Executing task '{step}'\n")
            lines.append(f"10:00:{s * 10 + 9:02d}.000 - INFO - Task '{step}' finished with "
                         "status SUCCESS\n" + "    executor log line\n" * 500)  # fmt: skip
        (run / "pipeline.log").write_text("".join(lines))
        (run / "summary.json").write_text(json.dumps({
            "status": "succeeded", "registered_version": i + 1, "seconds": 50.0,
            "params": {"store_uri": store}, "gate": {"passed": True, "reasons": []},
            "metrics": {"accuracy": 0.9},
        }))  # fmt: skip
    return str(root)


def naive_full_read(folder: Path) -> float:
    """The baseline: parse every record and count labels per hour, as a page without an index
    would have to."""
    started = time.perf_counter()
    counts: dict[tuple[str, str], int] = {}
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                key = (rec["time"][:13], rec["label"])
                counts[key] = counts.get(key, 0) + 1
    return time.perf_counter() - started


def start(
    args: list[str], env: dict[str, str], checkout: Path = REPO
) -> tuple[subprocess.Popen[str], str, float, float]:
    """Start the dashboard of ``checkout``; returns it, its URL, the wall seconds to the first
    200 on ``/`` and the CPU seconds it used by then (the machine is shared: CPU time is what a
    quiet machine would wait)."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgrec", "dashboard", *args, "--port", "0"],
        cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **env, "PYTHONPATH": str(checkout)},
    )  # fmt: skip
    assert proc.stdout is not None
    url = ""
    for line in proc.stdout:
        if found := re.search(r"(http://127\.0\.0\.1:\d+)", line):
            url = found[1]
            break
    while True:
        try:
            if httpx.get(url + "/", timeout=10).status_code == 200:
                wall = time.perf_counter() - started
                cpu = psutil.Process(proc.pid).cpu_times()
                return proc, url, wall, cpu.user + cpu.system
        except httpx.HTTPError:
            time.sleep(0.01)


def command_time(cmd: list[str], checkout: Path = REPO) -> tuple[float, float]:
    """Wall and CPU seconds of a command that starts and exits."""
    t0 = time.perf_counter()
    before = os.times()
    subprocess.run(cmd, cwd=checkout, capture_output=True, check=True,
                   env={**os.environ, "PYTHONPATH": str(checkout)})  # fmt: skip
    after = os.times()
    cpu = (
        after.children_user + after.children_system - before.children_user - before.children_system
    )
    return time.perf_counter() - t0, cpu


def startup_figures(cli: list[str], work: Path, rounds: int, baseline: Path | None) -> dict:
    """Median wall and CPU seconds over ``rounds`` of: the dashboard to its first page, warm
    (saved index and compiled templates in ``work/cache``) and cold (an empty cache); the same
    for the ``baseline`` checkout when given; and, as floors, ``imgrec --help`` and a bare
    ``python -c pass``. The kinds alternate within each round, so load changes hit all alike."""
    checkouts = {"current": REPO, **({"baseline": baseline} if baseline else {})}
    samples: dict[str, list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for who, checkout in checkouts.items():
            for name, cache in (("warm", work / f"cache-{who}"), ("cold", work / "cold-cache")):
                shutil.rmtree(work / "cold-cache", ignore_errors=True)
                proc, _, wall, cpu = start(cli, {"IMGREC_CACHE": str(cache)}, checkout)
                stop(proc)
                samples.setdefault(f"{who}_{name}", []).append((wall, cpu))
        samples.setdefault("imgrec_help", []).append(
            command_time([sys.executable, "-m", "imgrec", "--help"])
        )
        samples.setdefault("python_pass", []).append(command_time([sys.executable, "-c", "pass"]))
    out: dict[str, object] = {
        k: {"wall_s": round(statistics.median(w for w, _ in v), 2),
            "cpu_s": round(statistics.median(c for _, c in v), 2)}
        for k, v in samples.items()
    }  # fmt: skip
    out["rounds"] = rounds
    out["load_average_1m"] = round(os.getloadavg()[0], 1)
    return out


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=20)
    if proc.stdout:
        proc.stdout.close()


def page_times(url: str, pages: list[str], repeats: int) -> dict[str, dict[str, float]]:
    out = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for page in pages:
            times = []
            for _ in range(repeats):
                r = client.get(page)
                assert r.status_code == 200, (page, r.status_code, r.text[:300])
                times.append(float(r.headers["server-timing"].split("dur=")[1]))
            out[page] = {"median": round(statistics.median(times), 1), "max": round(max(times), 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--reports", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--work", default="")
    parser.add_argument("--rounds", type=int, default=5, help="start-up rounds (medians)")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. a git worktree of main) to start beside",
    )
    parser.add_argument(
        "--startup-only",
        action="store_true",
        help="only the index and start-up figures (no naive read, no pages)",
    )
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="imgrec-dash-bench-"))
    from imgrec.dashboard.predlog import LogIndex

    result: dict[str, object] = {"records": args.records, "versions": args.versions}
    try:
        t0 = time.perf_counter()
        store = make_store(work, args.versions)
        log_bytes = make_log(work / "log", args.records)
        make_reports(work / "reports", args.reports)
        runs = make_runs(work / "runs", store, 20)
        result.update(log_mb=round(log_bytes / 2**20, 1), setup_s=round(time.perf_counter() - t0))
        if not args.startup_only:
            result["naive_full_read_s"] = round(naive_full_read(work / "log"), 2)

        cache = work / "cache"
        t0 = time.perf_counter()
        index = LogIndex(work / "log", cache_dir=cache / "dashboard")
        index.refresh()
        result["index_build_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        again = LogIndex(work / "log", cache_dir=cache / "dashboard")
        assert again.pending_bytes() == 0 and again.total == args.records
        result["index_reload_s"] = round(time.perf_counter() - t0, 3)
        last = sorted((work / "log").glob("*.jsonl"))[-1]
        lines = last.read_text().splitlines(keepends=True)[:1000]
        with last.open("a") as fh:
            fh.writelines(lines)
        t0 = time.perf_counter()
        assert again.refresh() == len(lines)
        result["appended_records"] = len(lines)
        result["incremental_s"] = round(time.perf_counter() - t0, 3)
        index.refresh()  # the copy the dashboard will load knows the appended lines too

        cli = ["--store", store, "--log", str(work / "log"), "--runs", runs,
               "--reports", str(work / "reports")]  # fmt: skip
        for who in ("current", "baseline"):  # each checkout's warm cache: the saved index
            shutil.copytree(cache, work / f"cache-{who}")
        result["startup"] = startup_figures(cli, work, args.rounds, args.baseline)
        if args.startup_only:
            return
        proc, url, _, _ = start(cli, {"IMGREC_CACHE": str(cache)})
        try:
            run_id = sorted(p.name for p in (work / "runs").iterdir())[-1]
            pages = ["/", "/try", "/models", f"/models/{args.versions // 2}",
                     f"/models/compare?a=1&b={args.versions}", "/runs", f"/runs/{run_id}",
                     "/monitoring", "/review"]  # fmt: skip
            result["pages_ms"] = page_times(url, pages, args.repeats)
        finally:
            stop(proc)
        slowest = max(v["median"] for v in result["pages_ms"].values())  # type: ignore[attr-defined]
        result["slowest_page_median_ms"] = slowest
        result["naive_read_over_slowest_page"] = round(
            float(result["naive_full_read_s"]) * 1000 / slowest,
            1,  # type: ignore[arg-type]
        )
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
