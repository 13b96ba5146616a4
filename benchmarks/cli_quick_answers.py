"""Seconds until quick CLI questions answer, this checkout vs a baseline checkout, same run.

    .venv/bin/python benchmarks/cli_quick_answers.py [--baseline DIR] [--repeats 3]

DIR is another checkout of imgrec (e.g. ``git worktree add /tmp/base <commit>``); each command
runs as ``python -m imgrec ...`` with PYTHONPATH set to the checkout, the two checkouts
alternating. Prints one JSON object: per command, the median wall seconds, the exit codes and,
with a baseline, the ratio baseline / current.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "architectures": ["architectures"],
    "version": ["--version"],
    "predict_missing_file": ["predict", "/nonexistent.jpg"],
    "usage_error": ["trian", "data/"],
}


def _time(checkout: Path, args: list[str]) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "imgrec", *args],
        capture_output=True,
        env=env,
        cwd=checkout,  # `python -m` puts the working directory first on sys.path
        check=False,
    )
    return time.perf_counter() - start, run.returncode


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare against")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    current = Path(__file__).resolve().parents[1]
    checkouts = {"current": current, **({"baseline": args.baseline} if args.baseline else {})}
    result: dict[str, object] = {"cpu": _cpu(), "cores": os.cpu_count(), "load": os.getloadavg()}
    for key, cmd in COMMANDS.items():
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        codes: dict[str, int] = {}
        for _ in range(args.repeats):
            for name, path in checkouts.items():
                seconds, codes[name] = _time(path, cmd)
                times[name].append(seconds)
        row: dict[str, object] = {
            f"{name}_s": round(statistics.median(ts), 2) for name, ts in times.items()
        }
        row.update({f"{name}_exit": code for name, code in codes.items()})
        if args.baseline:
            row["speedup"] = round(
                statistics.median(times["baseline"]) / statistics.median(times["current"]), 1
            )
        result[key] = row
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
