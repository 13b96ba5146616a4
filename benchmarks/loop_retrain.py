"""The loop on mnist5k: trigger -> promoted model time, and accuracy on shifted traffic.

1. the training pipeline on mnist5k (not timed: production v1 exists before the day);
2. 500 training digits through the "new camera" (``monitoring.day.new_camera``) labelled, as
   ``imgrec label import`` writes them;
3. timed: ``monitoring.trigger.fire("local", drift verdict)`` -> the retraining pipeline
   (new data, ``init_from=production``, ``--epochs``, two-set gate, register) -> promoted;
4. accuracy of v1 and of the promoted version on all 1,000 mnist5k val digits, plain and
   through the new camera (never trained on in either form).

Prints one JSON object::

    python benchmarks/loop_retrain.py --work /tmp/imgrec-loop-bench [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def _shifted_val(base: Path, out: Path) -> list[tuple[str, str]]:
    """All 1,000 val digits through the new camera: (path, label)."""
    from monitoring.day import encode, pick

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="/tmp/imgrec-loop-bench")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from imgrec.data.samples import write_sample
    from imgrec.mlops import run_local
    from imgrec.store import ModelStore
    from monitoring.day import encode, pick
    from monitoring.trigger import TriggerSettings, fire

    work = Path(args.work)
    base, store = work / "mnist5k", str(work / "store")
    write_sample("mnist5k", str(base), progress=False)
    out: dict[str, Any] = {}
    if ModelStore(store).production_version() is None:
        started = time.perf_counter()
        first = run_local(str(base), store, {}, runs_dir=str(work / "runs"))
        out["first_pipeline_s"] = round(time.perf_counter() - started, 1)
        assert first["status"] == "succeeded", first
    v1 = ModelStore(store).production_version()
    new = work / f"new-camera-{int(time.time())}"
    for i, (data, label) in enumerate(encode(pick(str(base), "train", 500, 0), True, 0)):
        (new / label).mkdir(parents=True, exist_ok=True)
        (new / label / f"n{i:04d}.png").write_bytes(data)
    verdict = {"drift": True, "model_version": str(v1), "window": {"n": 500},
               "signals": [{"name": "sharpness", "drifted": True}]}  # fmt: skip
    settings = TriggerSettings(
        store=store, data=str(base), runs_dir=str(work / "runs"), force=True,
        params={"new_data_uri": str(new), "init_from": "production", "epochs": str(args.epochs)},
    )  # fmt: skip
    started = time.perf_counter()
    fired = fire("local", verdict, settings)
    out["trigger_to_promoted_s"] = round(time.perf_counter() - started, 1)
    v2 = ModelStore(store).production_version()
    out.update(v1=v1, v2=v2, gate_passed=fired["details"]["gate"], epochs=args.epochs)
    gate = json.loads(Path(fired["details"]["run_dir"], "summary.json").read_text())["gate"]
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
