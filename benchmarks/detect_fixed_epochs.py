"""Detection at a fixed number of epochs (no clock): one JSON line, for A/B runs of two checkouts.

Trains the default detection recipe on a small digits-detect set (written once, seeded) for a
fixed number of epochs and prints mAP50, mAP@[.5:.95] and mAP75 on its val split. Accuracy is
comparable across checkouts and loaded machines (no time budget); the wall time is not.

    PYTHONPATH=CHECKOUT .venv/bin/python benchmarks/detect_fixed_epochs.py --out RUN --label new
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/imgrec-digits-ab")
    parser.add_argument("--out", required=True)
    parser.add_argument("--label", default="")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    from imgrec.data.detection.sample import write_digits_detect
    from imgrec.tasks.detect.train import train

    data = Path(args.data)
    if not (data / "data.yaml").exists():
        write_digits_detect(data, n_train=240, n_val=60, seed=3)
    start = time.perf_counter()
    result = train(data / "data.yaml", out=args.out, epochs=args.epochs, img_size=128,
                   batch_size=16, threads=1, progress=False)  # fmt: skip
    m = result.metrics
    print(json.dumps({
        "benchmark": "detect_fixed_epochs", "label": args.label, "epochs": len(result.history),
        "map50": round(m["map50"], 4), "map50_95": round(m["map"], 4),
        "map75": round(m["map75"], 4),
        "wall_seconds": round(time.perf_counter() - start, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
