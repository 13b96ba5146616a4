"""The training pipeline with its steps in the component image (``--runner container``: kfp's
DockerRunner on podman) vs as subprocesses of the venv (``--runner subprocess``).

Runs the same data and parameters through both runners, alternating which goes first, each
run into a fresh store so every run registers version 1; prints one JSON object with the wall
times (median per runner), their ratio, the metrics of every run, and the image's size and
build time from ``build/image.json`` (written by ``make image``)::

    .venv/bin/python benchmarks/container_pipeline.py --data data/mnist5k --repeats 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from imgrec.mlops import run_local

RUNNERS = ("subprocess", "container")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/mnist5k")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE")
    args = parser.parse_args()
    params = dict(p.split("=", 1) for p in args.param)
    runs: dict[str, list[dict]] = {r: [] for r in RUNNERS}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            order = RUNNERS if i % 2 == 0 else RUNNERS[::-1]
            for runner in order:
                store = Path(tmp) / f"store-{runner}-{i}"
                summary = run_local(args.data, str(store), params, runs_dir=f"{tmp}/runs",
                                    runner=runner)  # fmt: skip
                runs[runner].append({
                    "status": summary["status"],
                    "seconds": summary["seconds"],
                    "registered_version": summary["registered_version"],
                    "accuracy": summary["metrics"].get("accuracy"),
                    "error": summary.get("error"),
                })  # fmt: skip
    median = {r: statistics.median(x["seconds"] for x in runs[r]) for r in RUNNERS}
    image_json = Path("build/image.json")
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = lscpu.split("Model name:")[-1].splitlines()[0].strip()
    print(json.dumps({
        "data": args.data,
        "params": params,
        "median_seconds": median,
        "container_vs_subprocess": round(median["container"] / median["subprocess"], 2),
        "runs": runs,
        "image": json.loads(image_json.read_text()) if image_json.is_file() else None,
        "cpu": cpu,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_before_after": [round(x, 2) for x in (load_before[0], os.getloadavg()[0])],
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
