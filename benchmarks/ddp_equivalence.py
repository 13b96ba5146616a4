"""Benchmark: 2 gloo processes with batch B/2 each vs 1 process with batch B on mnist5k.

Same seed, the default recipe otherwise:

* ``augment=none``: 1 process (B), 1 process with 1 thread instead of 2 (B; the same
  computation summed in another order: the float-noise reference) and 2 processes (B/2 each).
  The largest relative difference of the per-epoch train/val loss of 2 processes vs 1 is
  printed beside that of 1 thread vs 2 threads: on this recipe float rounding is amplified by
  training, so "equal" means "no further apart than a thread-count change" (the exact check,
  1e-4 relative, is the tiny-model test in tests/engine/test_distributed.py);
* the default recipe (``augment=light``): per-image augmentation draws differ by rank, so the
  curves differ like two seeds; the final val accuracy of both is printed.

Wall times are for this machine, whose 2 cores cap any speed-up from 2 processes (each process
gets 1 thread). Prints one JSON object.

    .venv/bin/python benchmarks/ddp_equivalence.py [--epochs 10] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOLERANCE = 1e-4  # relative, the exact check of tests/engine/test_distributed.py (tiny model)


def _run(data: str, out: Path, nproc: int, batch: int, epochs: int, sets: list[str]) -> dict:
    command = [sys.executable, "-m", "imgrec", "train", data, "--out", str(out), "-q"]
    command += ["--nproc", str(nproc), "--batch-size", str(batch), "--epochs", str(epochs)]
    for item in sets:
        command += ["--set", item]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    metrics = json.loads((out / "metrics.json").read_text())
    return {"seconds": round(seconds, 1), "history": history, "accuracy": metrics["accuracy"]}


def _max_rel(a: list[dict], b: list[dict], key: str) -> float:
    return max(abs(x[key] - y[key]) / max(abs(y[key]), 1e-12) for x, y in zip(a, b, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "imgrec-mnist5k"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128, help="B: the one process's batch")
    args = parser.parse_args()
    from imgrec.data.samples import write_sample

    write_sample("mnist5k", args.data, progress=False)
    root = Path(tempfile.mkdtemp(prefix="imgrec-bench-ddp-"))
    report: dict = {"benchmark": "ddp equivalence mnist5k", "B": args.batch, "epochs": args.epochs}
    plain = ["augment=none", "report=false"]
    runs = {  # name: (processes, batch per process, settings)
        "one": (1, args.batch, plain),
        "one_1thread": (1, args.batch, [*plain, "threads=1"]),  # the float-noise reference
        "two": (2, args.batch // 2, plain),
        "recipe_one": (1, args.batch, ["report=false"]),
        "recipe_two": (2, args.batch // 2, ["report=false"]),
    }
    done = {n: _run(args.data, root / n, p, b, args.epochs, s) for n, (p, b, s) in runs.items()}
    for key in ("train_loss", "val_loss"):
        report[f"max_rel_diff_{key}_2proc_vs_1proc"] = _max_rel(
            done["two"]["history"], done["one"]["history"], key
        )
        report[f"max_rel_diff_{key}_1thread_vs_2threads"] = _max_rel(
            done["one_1thread"]["history"], done["one"]["history"], key
        )
    report["runs"] = {
        name: {
            "accuracy": run["accuracy"],
            "seconds": run["seconds"],
            "train_loss": [round(h["train_loss"], 5) for h in run["history"]],
            "val_loss": [round(h["val_loss"], 5) for h in run["history"]],
        }
        for name, run in done.items()
    }
    report["tolerance"] = TOLERANCE
    report["cpu"] = platform.processor() or platform.machine()
    report["cores"] = os.cpu_count()
    report["load_avg"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
