"""The loop on mnist5k: trigger -> promoted model time, and accuracy on shifted traffic.

1. the training pipeline on mnist5k (not timed: production v1 exists before the day);
2. ``--new`` (500) training digits through the "new camera" (``monitoring.day.new_camera``), as
   ``imgrec label import`` writes them;
3. timed: ``monitoring.trigger.fire("local", drift verdict)`` -> the retraining pipeline
   (new data, ``init_from=production``, ``--epochs``, ``--share`` of each epoch new images,
   two-set gate, register) -> promoted; ``steps_s`` is where the time went, per pipeline task
   (from kfp's log: each task's start to its finish, its subprocess start-up included);
   ``train`` what the preprocess step chose (a warm start on new data: ``augment=camera``;
   ``--param train_overrides=augment=light`` for the earlier recipe);
4. accuracy of v1 and of the promoted version on all 1,000 mnist5k val digits, plain and
   through the new camera (never trained on in either form).

A work folder keeps mnist5k and the store; with ``--from-version 1`` production is moved back
to v1 first (``ModelStore.promote``), so runs can be repeated with other
settings against the same v1. Prints one JSON object::

    python benchmarks/loop_retrain.py --work /tmp/imgrec-loop-bench [--epochs 0] [--share 0.5]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any


def _shifted_val(base: Path, out: Path) -> list[tuple[str, str]]:
    """All 1,000 val digits through the new camera: (path, label)."""
    from imgrec.monitoring.day import encode, pick

    rows = []
    items = pick(str(base), "val", 1000, 11)
    for i, (data, label) in enumerate(encode(items, True, 11)):
        path = out / label / f"v{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append((str(path), label))
    return rows


def _accuracy(model: str, rows: list[tuple[str, str]]) -> float:
    from imgrec.tasks import get_task

    records = get_task("classify").predict([p for p, _ in rows], model=model, top_k=1)
    hits = [
        r["predictions"][0]["label"] == label for r, (_, label) in zip(records, rows, strict=True)
    ]
    return sum(hits) / len(rows)


def step_seconds(log: str) -> dict[str, float]:
    """``{task: seconds}`` from a kfp local run's log (start to finish of each task)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", Path(log).read_text(errors="replace"))
    stamp = r"(\d\d):(\d\d):(\d\d\.\d+) - \w+ - "
    started: dict[str, float] = {}
    out: dict[str, float] = {}
    for m in re.finditer(stamp + r"(?:Executing task '([\w-]+)'|Task '([\w-]+)' finished)", plain):
        t = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
        if m[4]:
            started[m[4]] = t
        elif m[5] in started:
            out[m[5]] = round((t - started[m[5]]) % 86400, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="/tmp/imgrec-loop-bench")
    parser.add_argument("--epochs", type=int, default=0, help="0: the pipeline's choice")
    parser.add_argument("--share", type=float, default=0.5, help="pipeline new_data_share")
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE, repeatable")
    parser.add_argument("--new", type=int, default=500, help="new labelled images")
    parser.add_argument("--from-version", type=int, default=0, help="roll production back first")
    args = parser.parse_args()
    from imgrec.data.samples import write_sample
    from imgrec.mlops import run_local
    from imgrec.model_store import ModelStore
    from imgrec.monitoring.day import encode, pick
    from imgrec.monitoring.trigger import TriggerSettings, fire

    work = Path(args.work)
    base, store = work / "mnist5k", str(work / "store")
    write_sample("mnist5k", str(base), progress=False)
    out: dict[str, Any] = {}
    if ModelStore(store).production_version() is None:
        started = time.perf_counter()
        first = run_local(str(base), store, {}, runs_dir=str(work / "runs"))
        out["first_pipeline_s"] = round(time.perf_counter() - started, 1)
        assert first["status"] == "succeeded", first
    if args.from_version:
        ModelStore(store).promote(args.from_version, reason="benchmark: retrain from here")
    v1 = ModelStore(store).production_version()
    new = work / f"new-camera-{int(time.time())}"
    for i, (data, label) in enumerate(encode(pick(str(base), "train", args.new, 0), True, 0)):
        (new / label).mkdir(parents=True, exist_ok=True)
        (new / label / f"n{i:04d}.png").write_bytes(data)
    verdict = {"drift": True, "model_version": str(v1), "window": {"n": args.new},
               "signals": [{"name": "sharpness", "drifted": True}]}  # fmt: skip
    settings = TriggerSettings(
        store=store, data=str(base), runs_dir=str(work / "runs"), force=True,
        params={"new_data_uri": str(new), "init_from": "production", "epochs": str(args.epochs),
                "new_data_share": str(args.share), **dict(p.split("=", 1) for p in args.param)},
    )  # fmt: skip
    out["loadavg_before"] = Path("/proc/loadavg").read_text().split()[:3]
    started = time.perf_counter()
    fired = fire("local", verdict, settings)
    out["trigger_to_promoted_s"] = round(time.perf_counter() - started, 1)
    v2 = ModelStore(store).production_version()
    out["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    run_dir = Path(fired["details"]["run_dir"])
    out["steps_s"] = step_seconds(str(run_dir / "pipeline.log"))
    for config in run_dir.glob("**/preprocess/data/train_config.json"):  # what the recipe chose
        chosen = json.loads(config.read_text())
        out["train"] = {k: chosen.get(k) for k in ("model", "epochs", "augment", "lr")}
    out.update(new_images=args.new, v1=v1, v2=v2, gate_passed=fired["details"]["gate"],
               epochs=args.epochs, share=args.share, params=args.param)  # fmt: skip
    gate = json.loads((run_dir / "summary.json").read_text())["gate"]
    out["gate_reasons"] = gate["reasons"]
    shifted = _shifted_val(base, work / "shifted-val")
    clean = [(str(p), p.parent.name) for p in sorted((base / "val").glob("*/*.png"))]
    for name, version in (("v1", v1), ("v2", v2)):
        model = ModelStore(store).get(int(version)).model_uri  # type: ignore[arg-type]
        out[f"{name}_clean_val"] = _accuracy(model, clean)
        out[f"{name}_shifted_val"] = _accuracy(model, shifted)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
