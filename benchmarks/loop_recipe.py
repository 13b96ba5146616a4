"""Retraining recipes on the loop benchmark's data: how the new images are mixed in.

Takes a finished ``benchmarks/loop_retrain.py`` work folder (its retraining run's manifest:
base train, the new training images, base val, the held-out new slice; v1's weights; the
shifted val digits) and trains one warm-started variant outside the pipeline with the
pipeline's resolved config: ``repeat`` copies of each new training image beside ``base``
sampled base training images, plus ``key=value`` config overrides. Prints one JSON line with
accuracy on the 1,000 shifted val digits, the 1,000 plain ones and the held-out new slice::

    python benchmarks/loop_recipe.py --work /tmp/imgrec-loop-bench B 6 4000
    python benchmarks/loop_recipe.py --work /tmp/imgrec-loop-bench C 6 4000 lr=0.002
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="/tmp/imgrec-loop-bench")
    parser.add_argument("name")
    parser.add_argument("repeat", type=int, help="copies of each new training image")
    parser.add_argument("base", type=int, help="base training images sampled (seed 0)")
    parser.add_argument("overrides", nargs="*", help="training config key=value")
    args = parser.parse_args()
    from imgrec.config import load_config
    from imgrec.tasks import get_task

    work = Path(args.work)
    run = sorted(work.glob("runs/*/imgrec-training-*/ingest/manifest/data.csv"))[-1].parents[2]
    cfg: dict[str, Any] = json.loads((run / "preprocess/data/train_config.json").read_text())
    cfg.pop("task", None)
    cfg.update(report=False, weights=str(work / "store/versions/0001/model/weights.safetensors"))
    config = load_config(None, overrides={**cfg, **dict(o.split("=", 1) for o in args.overrides)})
    with open(run / "ingest/manifest/data.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    new_dir = json.loads((run / "ingest/manifest/manifest.json").read_text())["new_data"]["source"]
    base = [r for r in rows if r["split"] == "train" and not r["path"].startswith(new_dir)]
    new = [r for r in rows if r["split"] == "train" and r["path"].startswith(new_dir)]
    val = [r for r in rows if r["split"] == "val"]
    random.Random(0).shuffle(base)
    out = work / "recipes" / args.name
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "data.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        w.writerows([r["path"], r["label"], "train"] for r in base[: args.base] + new * args.repeat)
        w.writerows([r["path"], r["label"], "val"] for r in val)
    task = get_task("classify")
    started = time.perf_counter()
    result = task.train(str(out / "data.csv"), config=config, out=str(out / "run"), quiet=True)
    seconds = time.perf_counter() - started

    def accuracy(items: list[tuple[str, str]]) -> float:
        got = task.predict([p for p, _ in items], model=result.model_dir, top_k=1)
        hits = [g["predictions"][0]["label"] == y for g, (_, y) in zip(got, items, strict=True)]
        return sum(hits) / len(items)

    shifted = [(str(p), p.parent.name) for p in sorted((work / "shifted-val").glob("*/*.png"))]
    clean = [(r["path"], r["label"]) for r in val]
    holdout = [(r["path"], r["label"]) for r in rows if r["split"] == "test"]
    print(json.dumps({
        "name": args.name, "repeat": args.repeat, "base": args.base, "overrides": args.overrides,
        "train_images": args.base + args.repeat * len(new), "train_s": round(seconds, 1),
        "shifted_val": accuracy(shifted), "clean_val": accuracy(clean),
        "new_holdout": accuracy(holdout),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
