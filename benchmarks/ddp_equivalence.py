"""Benchmark: 2 gloo processes with batch B/2 each vs 1 process with batch B on mnist5k.

Same seed, the default recipe otherwise. Two pairs of runs:

* ``augment=none``: the loss curves should agree to float rounding (the largest relative
  difference of train/val loss per epoch is printed, with the tolerance the tests use);
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

TOLERANCE = 1e-4  # relative, as in tests/engine/test_distributed.py


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
    for name, sets in (("augment_none", ["augment=none", "report=false"]),
                       ("recipe", ["report=false"])):  # fmt: skip
        one = _run(args.data, root / f"{name}-1", 1, args.batch, args.epochs, sets)
        two = _run(args.data, root / f"{name}-2", 2, args.batch // 2, args.epochs, sets)
        report[name] = {
            "max_rel_diff_train_loss": _max_rel(two["history"], one["history"], "train_loss"),
            "max_rel_diff_val_loss": _max_rel(two["history"], one["history"], "val_loss"),
            "within_tolerance": _max_rel(two["history"], one["history"], "val_loss") <= TOLERANCE,
            "accuracy_1proc": one["accuracy"],
            "accuracy_2proc": two["accuracy"],
            "seconds_1proc": one["seconds"],
            "seconds_2proc": two["seconds"],
            "train_loss_1proc": [round(h["train_loss"], 5) for h in one["history"]],
            "train_loss_2proc": [round(h["train_loss"], 5) for h in two["history"]],
        }
    report["tolerance"] = TOLERANCE
    report["cpu"] = platform.processor() or platform.machine()
    report["cores"] = os.cpu_count()
    report["load_avg"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
