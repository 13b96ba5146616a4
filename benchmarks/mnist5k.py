"""Benchmark: the default recipe on mnist5k (4,000 train / 1,000 val real MNIST digits).

Prints one JSON object. Target (issue 2): >= 98.5% val top-1 with a training wall time <= 45 s
on the 2-core machine. ``train_seconds`` is the whole ``imgrec.train`` call (scan, decode,
training, evaluation, figures and report); ``fit_seconds`` the epochs alone.

    .venv/bin/python benchmarks/mnist5k.py [--data DIR] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_ACCURACY = 0.985
TARGET_SECONDS = 45.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "imgrec-mnist5k"))
    parser.add_argument("--out", default=None, help="run directory (default: a temp dir)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE")
    args = parser.parse_args()
    # As `import imgrec` does, before torch loads OpenMP (passive waiting on busy cores).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import torch

    from imgrec.config import parse_sets
    from imgrec.data.samples import write_sample
    from imgrec.tasks.classify.train import train

    write_sample("mnist5k", args.data, progress=False)
    out = args.out or tempfile.mkdtemp(prefix="imgrec-bench-mnist5k-")
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = train(args.data, out=out, quiet=True, **parse_sets(args.sets))
    seconds = time.perf_counter() - started
    card = json.loads((Path(out) / "model" / "model.json").read_text())
    config = card["config"]
    accuracy = result.metrics["accuracy"]
    report = {
        "benchmark": "mnist5k default recipe",
        "accuracy": round(accuracy, 4),
        "train_seconds": round(seconds, 1),
        "fit_seconds": round(sum(h["seconds"] for h in result.history), 1),
        "epochs": len(result.history),
        "best_epoch": card["metrics"].get("best_epoch"),
        "model": config["model"],
        "arch_kwargs": config["arch_kwargs"],
        "img_size": config["img_size"],
        "batch_size": config["batch_size"],
        "lr": config["lr"],
        "scheduler": config["scheduler"],
        "augment": config["augment"],
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "target": {"accuracy": TARGET_ACCURACY, "train_seconds": TARGET_SECONDS},
        "meets_target": accuracy >= TARGET_ACCURACY and seconds <= TARGET_SECONDS,
        "run_dir": out,
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
