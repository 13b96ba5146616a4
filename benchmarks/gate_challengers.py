"""Gate benchmark: planted regressed challengers must all be refused, a better one must pass.

mnist5k is the base dataset; 500 of its training digits seen through the "new camera"
(``monitoring.day.new_camera``: thicker, rotated, blurred) are the new labelled data, 30 %
held out (``imgrec.mlops.new_data``). Production: small_resnet trained on the base data.
Challengers, each judged by ``decide_with_new_data`` (default ``GatePolicy``) on the base val
set and the held-out new data:

* ``better``: warm start from production on base + new train (must PASS);
* ``label_noise_30``: the same, 30 % of the training labels replaced at random;
* ``class_dropped``: the same, one class's training labels dropped (3 of its images left);
* ``new_data_only``: warm start, trained on the 350 new images only;
* ``one_epoch``: from scratch, one epoch on base + new.

Prints one JSON object (``refused`` must be 4 of 4, ``better`` must pass). Also the timing of
each training and the accuracies (the loop's "before/after" on shifted data)::

    python benchmarks/gate_challengers.py --work /tmp/gate-bench [--epochs 4]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path
from typing import Any


def _rows(path: Path) -> list[list[str]]:
    with path.open() as fh:
        rows = list(csv.reader(fh))
    return rows[1:]


def _write(rows: list[list[str]], path: Path) -> str:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        w.writerows(rows)
    return str(path)


def _new_camera_folder(base: Path, out: Path, n: int) -> None:
    from PIL import Image

    from imgrec.monitoring.day import encode, pick

    for (data, label), i in zip(
        encode(pick(str(base), "train", n, 7), True, 7), range(n), strict=True
    ):
        target = out / label / f"new{i:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    assert Image  # the folder holds real PNGs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="/tmp/imgrec-gate-bench")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from imgrec.data.samples import write_sample
    from imgrec.mlops.gate import GatePolicy, decide_with_new_data
    from imgrec.mlops.new_data import add_new_data
    from imgrec.mlops.steps import ingest_step
    from imgrec.tasks import get_task

    work = Path(args.work)
    base = work / "mnist5k"
    write_sample("mnist5k", str(base), progress=False)
    new = work / "new-camera"
    if not new.exists():
        _new_camera_folder(base, new, 500)
    manifest = work / "manifest"
    ingest_step(str(base), str(manifest))
    add_new_data(str(manifest), str(new), holdout_fraction=0.3, seed=0)
    rows = _rows(manifest / "data.csv")
    base_rows = [r for r in rows if r[2] in ("train", "val") and "new-camera" not in r[0]]
    new_train = [r for r in rows if r[2] == "train" and "new-camera" in r[0]]
    eval_csv = str(manifest / "data.csv")
    task = get_task("classify")
    common = {"model": "small_resnet", "img_size": 28, "threads": args.threads, "seed": 0}
    timings: dict[str, float] = {}

    def train(name: str, data_rows: list[list[str]], **cfg: Any) -> str:
        done = work / "runs" / name / "model"
        if (done / "model.json").exists():  # a finished earlier run of this benchmark
            return str(done)
        started = time.perf_counter()
        csv_path = _write(data_rows, work / f"{name}.csv")
        result = task.train(csv_path, config={**common, **cfg}, out=str(work / "runs" / name),
                            quiet=True)  # fmt: skip
        timings[name] = round(time.perf_counter() - started, 1)
        return str(result.model_dir)

    def scores(model_dir: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return (task.evaluate(model_dir, eval_csv, split="val"),
                task.evaluate(model_dir, eval_csv, split="test"))  # fmt: skip

    production = train("production", base_rows, epochs=args.epochs)
    prod_base, prod_new = scores(production)
    warm = {
        "weights": str(Path(production) / "weights.safetensors"),
        "epochs": args.finetune_epochs,
    }
    rng = random.Random(0)
    classes = sorted({r[1] for r in rows})
    mixed = base_rows + new_train
    noisy = [[p, rng.choice(classes) if s == "train" and rng.random() < 0.3 else c, s]
             for p, c, s in mixed]  # fmt: skip
    threes = [r for r in mixed if r[2] == "train" and r[1] == "3"]
    dropped = [r for r in mixed if r not in threes[3:]]  # class 3: all but 3 labels dropped
    val_rows = [r for r in base_rows if r[2] == "val"]
    challengers = {
        "better": train("better", mixed, **warm),
        "label_noise_30": train("label_noise_30", noisy, **warm),
        "class_dropped": train("class_dropped", dropped, **warm),
        "new_data_only": train("new_data_only", new_train + val_rows, **warm),
        "one_epoch": train("one_epoch", mixed, epochs=1),
    }
    out: dict[str, Any] = {"production": {"base_val": prod_base["accuracy"],
                                          "new_holdout": prod_new["accuracy"]}}  # fmt: skip
    for name, model_dir in challengers.items():
        c_base, c_new = scores(model_dir)
        d = decide_with_new_data(c_base, prod_base, c_new, prod_new, GatePolicy(),
                                 production_version=1)  # fmt: skip
        out[name] = {"passed": d.passed, "base_val": c_base["accuracy"],
                     "new_holdout": c_new["accuracy"],
                     "failed_reasons": [r for r in d.reasons
                                        if "misses" in r or "regress on" in r]}  # fmt: skip
    planted = [k for k in challengers if k != "better"]
    out["refused"] = f"{sum(not out[k]['passed'] for k in planted)} of {len(planted)}"
    out["better_passed"] = out["better"]["passed"]
    out["train_seconds"] = timings
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
