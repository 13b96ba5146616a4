"""Retraining recipes on the loop benchmark's data: how the new images are mixed in.

Takes a finished ``benchmarks/loop_retrain.py`` work folder (its retraining run's manifest:
base train, the new training images, base val, the held-out new slice; v1's weights; the
shifted val digits) and trains one warm-started variant outside the pipeline with the
pipeline's resolved config: ``repeat`` copies of each new training image beside ``base``
sampled base training images (``--seed``: which ones, and the training seed), plus
``key=value`` config overrides (``augment=camera``: :mod:`imgrec.data.augment`). Prints one
JSON line with accuracy on the 1,000 shifted val digits, the 1,000 plain ones and the held-out
new slice, and the worst per-class recall drop on the plain (base) val digits versus v1 beside
the gate's tolerance (``GatePolicy.max_class_regression``)::

    python benchmarks/loop_recipe.py --work /tmp/imgrec-loop-bench B 6 4000
    python benchmarks/loop_recipe.py --work /tmp/imgrec-loop-bench C 6 4000 lr=0.002
    python benchmarks/loop_recipe.py --seed 1 cam1 6 2000 augment=camera
    python benchmarks/loop_recipe.py --seed 1 --camera p=0.5 half1 6 2000 augment=camera
    python benchmarks/loop_recipe.py --oracle upper 6 2000 augment=light
    python benchmarks/loop_recipe.py --ceiling --scratch ceil 1 4000 augment=light epochs=15
    python benchmarks/loop_recipe.py --more-new 49 mn10 5 2000 augment=camera epochs=10

``--oracle`` sends every other sampled base image through the real new camera
(``monitoring.day.new_camera``, other seeds than the new data's): no recipe knows the shift
that well, so it bounds what augmentation can reach with this model and schedule.
``--ceiling`` trains on every sampled base image twice, plain and through the real new camera
(with ``--scratch``: from random weights, not v1's): what this model class can reach on
shifted digits when the shift is known exactly and 4,000 shifted examples are labelled.
``--more-new K`` moves K of the held-out new images (seeded) into training: a smaller gate
slice; the held-out accuracy is then on the rest.
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
    parser.add_argument("--seed", type=int, default=0, help="base sample and training seed")
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="the base images through the real new camera: an upper bound, not a recipe",
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="every sampled base image twice: plain and through the real new camera",
    )
    parser.add_argument(
        "--more-new",
        type=int,
        default=0,
        help="move this many held-out new images (seeded) into training: a smaller gate slice",
    )
    parser.add_argument(
        "--scratch", action="store_true", help="no warm start: from random weights, not v1's"
    )
    parser.add_argument(
        "--camera", default="", help="CameraShift arguments for augment=camera, e.g. p=0.5"
    )
    args = parser.parse_args()
    if args.camera:  # this process's "camera" preset with other parameters
        from imgrec.config import parse_key_values
        from imgrec.data import augment

        kwargs = parse_key_values(args.camera.split(","), flag="--camera", example="p=0.5")
        augment.AUGMENT_PRESETS.replace("camera", lambda size: augment.CameraShift(**kwargs))
    from imgrec.config import load_config
    from imgrec.mlops.gate import GatePolicy
    from imgrec.tasks import get_task

    work = Path(args.work)
    run = sorted(work.glob("runs/*/imgrec-training-*/ingest/manifest/data.csv"))[-1].parents[2]
    cfg: dict[str, Any] = json.loads((run / "preprocess/data/train_config.json").read_text())
    cfg.pop("task", None)
    v1_weights = work / "store/versions/0001/model/weights.safetensors"
    cfg.update(report=False, seed=args.seed, weights=None if args.scratch else str(v1_weights))
    config = load_config(None, overrides={**cfg, **dict(o.split("=", 1) for o in args.overrides)})
    with open(run / "ingest/manifest/data.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    new_dir = json.loads((run / "ingest/manifest/manifest.json").read_text())["new_data"]["source"]
    base = [r for r in rows if r["split"] == "train" and not r["path"].startswith(new_dir)]
    new = [r for r in rows if r["split"] == "train" and r["path"].startswith(new_dir)]
    val = [r for r in rows if r["split"] == "val"]
    held = [r for r in rows if r["split"] == "test"]
    random.Random(1000 + args.seed).shuffle(held)
    new += held[: args.more_new]  # the gate's slice would be the rest
    held = held[args.more_new :]
    random.Random(args.seed).shuffle(base)
    out = work / "recipes" / args.name
    out.mkdir(parents=True, exist_ok=True)
    base = base[: args.base]
    if args.oracle or args.ceiling:  # what a recipe that knew the shift exactly could reach
        from imgrec.monitoring.day import encode

        # oracle: every other sampled base image shifted, the rest plain; ceiling: all of them
        # shifted, beside all of them plain
        picked = range(0, len(base), 1 if args.ceiling else 2)
        items = [(Path(base[i]["path"]), base[i]["label"]) for i in picked]
        shifted_rows = []
        for i, (data, label) in zip(picked, encode(items, True, 100 + args.seed), strict=True):
            path = out / "oracle" / label / f"o{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            shifted_rows.append({**base[i], "path": str(path)})
        if args.ceiling:
            base = base + shifted_rows
        else:
            for i, row in zip(picked, shifted_rows, strict=True):
                base[i] = row
    with open(out / "data.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        w.writerows([r["path"], r["label"], "train"] for r in base + new * args.repeat)
        w.writerows([r["path"], r["label"], "val"] for r in val)
    task = get_task("classify")
    started = time.perf_counter()
    result = task.train(str(out / "data.csv"), config=config, out=str(out / "run"), quiet=True)
    seconds = time.perf_counter() - started

    def hits(model: str, items: list[tuple[str, str]]) -> list[bool]:
        got = task.predict([p for p, _ in items], model=model, top_k=1)
        return [g["predictions"][0]["label"] == y for g, (_, y) in zip(got, items, strict=True)]

    def recall(ok: list[bool], items: list[tuple[str, str]]) -> dict[str, float]:
        labels = sorted({y for _, y in items})
        return {c: sum(h for h, (_, y) in zip(ok, items, strict=True) if y == c)
                / sum(y == c for _, y in items) for c in labels}  # fmt: skip

    shifted = [(str(p), p.parent.name) for p in sorted((work / "shifted-val").glob("*/*.png"))]
    clean = [(r["path"], r["label"]) for r in val]
    holdout = [(r["path"], r["label"]) for r in held]
    v1_file = work / "recipes" / "v1-clean-recall.json"  # v1's per-class recall, computed once
    if not v1_file.exists():
        v1_model = str(work / "store/versions/0001/model")
        v1_file.write_text(json.dumps(recall(hits(v1_model, clean), clean)))
    v1_recall = json.loads(v1_file.read_text())
    clean_hits = hits(result.model_dir, clean)
    drops = {c: round(v1_recall[c] - r, 4) for c, r in recall(clean_hits, clean).items()}
    worst = max(drops, key=lambda c: drops[c])
    print(json.dumps({
        "name": args.name, "seed": args.seed, "repeat": args.repeat, "base": args.base,
        "overrides": args.overrides, "camera": args.camera, "oracle": args.oracle,
        "ceiling": args.ceiling, "scratch": args.scratch, "more_new": args.more_new,
        "new_train": len(new), "new_holdout_n": len(holdout),
        "train_images": len(base) + args.repeat * len(new), "train_s": round(seconds, 1),
        "shifted_val": sum(hits(result.model_dir, shifted)) / len(shifted),
        "clean_val": sum(clean_hits) / len(clean),
        "new_holdout": sum(hits(result.model_dir, holdout)) / len(holdout),
        "worst_class_drop": {"class": worst, "recall_drop": drops[worst],
                             "tolerance": GatePolicy().max_class_regression},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
