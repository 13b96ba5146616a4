"""Start-up of `imgrec train`, `imgrec predict` and `imgrec serve`: seconds before useful work.

    .venv/bin/python benchmarks/startup.py [--baseline DIR] [--repeats 3]

Each command runs as ``python -X importtime -m imgrec ...`` (PYTHONPATH and working directory
set to the checkout). ``seconds`` is the wall time to its first line of useful output:

* train: ``scanning DATA ...`` (the dataset scan starts; 1,797 8x8 digits written once);
* predict: the first prediction line (the model built, weights loaded, one image inferred --
  an upper bound on start-up);
* serve: ``serving MODEL ...``.

and ``done_s`` the wall time to a later line, where the process is stopped, so that an earlier
first line cannot hide a later finish: train's ``epoch 1/1`` (one epoch trained and
validated), serve's ``ready on`` (model loaded, HTTP server listening); predict stops at its
first line. ``cpu_s`` is the process's CPU seconds until it was stopped, ``imports_s`` the sum
of ``-X importtime`` self times until then (every thread's), split by top-level package.

Prints one JSON object: per command and checkout the medians, the CPU model and the load
average before and after. ``--baseline DIR``: another checkout measured in the same run,
alternating with this one. ``--warmup N`` untimed runs of each command per checkout first
(caches: ONNX export, compiled bytecode, the page cache).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from machine import cpu_model  # this script's folder is on sys.path

_IMPORT = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)")


def commands(work: Path) -> dict[str, tuple[list[str], str, str | None]]:
    """name -> (arguments, first line's start, a later line's text or None)."""
    photo = work / "photo.png"
    return {
        "train": (["train", str(work / "digits"), "--epochs", "1", "--out", str(work / "run")],
                  "scanning ", "epoch 1/1"),
        "predict": (["predict", str(photo)], f"{photo}:", None),
        "serve": (["serve", "--port", "0"], "serving ", "ready on "),
    }  # fmt: skip


def prepare(work: Path, checkout: Path) -> None:
    """The digits sample and one photo, written once with the checkout's own code."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    if not (work / "digits").exists():
        cmd = [sys.executable, "-m", "imgrec", "data", "sample", "digits", str(work / "digits")]
        subprocess.run([*cmd, "-q"], env=env, cwd=checkout, check=True, capture_output=True)
    if not (work / "photo.png").exists():
        from PIL import Image

        Image.new("RGB", (320, 240), (200, 120, 40)).save(work / "photo.png")


def run_once(checkout: Path, args: list[str], marker: str, done: str | None) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(checkout), "PYTHONUNBUFFERED": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "imgrec", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # imgrec train reports on stderr; importtime writes there too
        text=True,
        env=env,
        cwd=checkout,
    )
    assert proc.stdout is not None
    seconds = done_s = None
    by_package: Counter[str] = Counter()
    shown: list[str] = []
    for line in proc.stdout:
        for found in _IMPORT.finditer(line):  # another thread's output may share the line
            by_package[found[3].split(".")[0]] += int(found[1])
        line = _IMPORT.sub("", line)
        if not line.strip():
            continue
        shown.append(line.rstrip())
        if seconds is None and line.startswith(marker):
            seconds = time.perf_counter() - start
        if seconds is not None and (done is None or done in line):
            done_s = time.perf_counter() - start
            break
    proc.kill()
    proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if seconds is None or done_s is None:
        raise SystemExit(f"{args[0]}: no line {marker!r} / {done!r}; output: {shown[-5:]}")
    return {
        "seconds": seconds,
        "done_s": done_s,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "imports_s": sum(by_package.values()) / 1e6,
        "by_package": by_package,
    }


def summarize(runs: list[dict[str, object]]) -> dict[str, object]:
    packages: Counter[str] = Counter()
    for run in runs:
        packages.update(run["by_package"])  # type: ignore[arg-type]
    top = {k: round(v / len(runs) / 1e6, 2) for k, v in packages.most_common(8)}
    return {
        "seconds": round(statistics.median(float(r["seconds"]) for r in runs), 2),  # type: ignore[arg-type]
        "done_s": round(statistics.median(float(r["done_s"]) for r in runs), 2),  # type: ignore[arg-type]
        "cpu_s": round(statistics.median(float(r["cpu_s"]) for r in runs), 2),  # type: ignore[arg-type]
        "imports_s": round(statistics.median(float(r["imports_s"]) for r in runs), 2),  # type: ignore[arg-type]
        "imports_by_package_s": top,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare against")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="train,predict,serve")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per checkout first")
    args = parser.parse_args()
    current = Path(__file__).resolve().parents[1]
    checkouts = {"current": current, **({"baseline": args.baseline} if args.baseline else {})}
    work = Path(tempfile.gettempdir()) / "imgrec-startup-bench"
    work.mkdir(exist_ok=True)
    prepare(work, current)
    load = os.getloadavg()
    result: dict[str, object] = {"cpu": cpu_model(), "load_before": [round(x, 1) for x in load]}
    for name, (cmd, marker, done) in commands(work).items():
        if name not in args.only.split(","):
            continue
        for _ in range(args.warmup):
            for path in checkouts.values():
                run_once(path, cmd, marker, done)
        runs: dict[str, list[dict[str, object]]] = {key: [] for key in checkouts}
        for _ in range(args.repeats):
            for key, path in checkouts.items():
                runs[key].append(run_once(path, cmd, marker, done))
        result[name] = {key: summarize(r) for key, r in runs.items()}
        print(json.dumps({name: result[name]}), file=sys.stderr, flush=True)  # progress
    result["load_after"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
