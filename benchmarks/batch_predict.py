"""Batch prediction speed: `imgrec predict` (library path) vs a plain PyTorch loop.

Prints one JSON object. Both sides classify the same folder of generated 1600x1200 JPEGs
(skimage's photos upscaled, with noise) with the offline ImageNet EfficientNet-Lite0 at 224 px,
batch 32, in the same process; runs are interleaved and medians reported.

* plain: PIL full decode, torchvision ``Resize(256) + CenterCrop(224) + ToTensor + Normalize``,
  PyTorch eager, one thread decoding, torch's default threads; on its own copy of the
  network as loaded (until 2026-11-26 it shared ``clf.module``, which imgrec's torch runtime
  converted to channels-last in place after the first repeat; no consistent speed change).
* imgrec: ``imgrec.tasks.classify.predict.predict`` exactly as ``imgrec predict DIR`` runs it,
  with its defaults (draft JPEG decode; one pool thread per core that decodes, resizes and
  normalizes images and runs ONNX Runtime, one intra-op thread per call, on batches of 4);
  also with ``batch_size=32`` (the plain loop's batch) and with ``runtime="torch"`` to show
  what the batch size and the runtime contribute.
* imgrec int8: the same with ``precision="int8"`` (``imgrec predict --precision int8``), the
  static-quantized model calibrated on ``--calibration-images`` other JPEGs made the same way
  with another noise seed (not the predicted files); calibration happens in the warm-up, and
  its top-1 agreement with the fp32 ``imgrec predict`` labels is reported. int8 is a
  precision trade-off, not a free speed-up.
* imgrec bf16: the same with ``precision="bf16"`` (OpenVINO in bf16 on CPUs with AMX /
  AVX512-BF16, checked against fp32 on the calibration images; no calibration needed).

Ratios are taken per repeat against the plain loop timed just before, then their median.
``cpu_ms_per_image_by_stage``: where the CPU goes per image (decode, resize + crop,
normalization, inference per precision), one stage at a time in one thread. ``--only``
picks the rows (the ``batch32`` and ``torch`` rows show what the batch size and the runtime
contribute; off by default to keep a round short on a shared machine).

The machine's load averages before and after are printed: the ratio is only meaningful
when both sides ran under the same load, and absolute rates drop when other work shares
the cores.

Usage: ``python benchmarks/batch_predict.py [--images 96] [--repeats 3] [--only ROW,...]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import cpu_model  # this script's folder is on sys.path

from imgrec.inference.onnx import cache_path
from imgrec.inference.runners import make_runner
from imgrec.predictor import load_model
from imgrec.tasks.classify.predict import predict

R = TypeVar("R")
PHOTOS = (
    "chelsea",
    "astronaut",
    "coffee",
    "rocket",
    "cat",
    "motorcycle_left",
    "immunohistochemistry",
)


def make_folder(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` 1600x1200 JPEGs (quality 90) from skimage photos, upscaled plus Gaussian noise."""
    from skimage import data

    rng = np.random.default_rng(seed)
    bases = []
    for name in PHOTOS:
        if hasattr(data, name):
            arr = getattr(data, name)()
            if arr.ndim == 3 and arr.shape[2] == 3:
                bases.append(Image.fromarray(arr).resize((1600, 1200), Image.Resampling.BICUBIC))
    paths = []
    for i in range(n):
        base = np.asarray(bases[i % len(bases)], dtype=np.int16)
        noisy = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"img_{i:04d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(path)
    return paths


def plain_loop(paths: list[Path], module: torch.nn.Module, batch_size: int = 32) -> list[int]:
    """The baseline: full decode, torchvision transforms, eager PyTorch, batch 32."""
    from torchvision import transforms as T

    tf = T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        ]
    )
    top1: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = [tf(Image.open(p).convert("RGB")) for p in paths[start : start + batch_size]]
            logits = module(torch.stack(batch))  # (B, 1000)
            top1.extend(logits.argmax(dim=1).tolist())
    return top1


def imgrec_predict(
    folder: Path,
    clf: object,
    runtime: str,
    batch_size: int | None = None,
    calibration: Path | None = None,
    precision: str | None = None,
) -> list[str]:
    records = list(
        predict(
            [str(folder)],
            model=clf,
            top_k=5,
            batch_size=batch_size,
            runtime=runtime,
            precision=precision or ("fp32" if calibration is None else "int8"),
            calibration=calibration,
        )
    )
    assert all("predictions" in r for r in records), "an image failed"
    return [r["predictions"][0]["label"] for r in records]


def stage_breakdown(
    paths: list[Path], clf: Any, runners: dict[str, Any], batch: int = 4
) -> dict[str, float]:
    """CPU ms per image of each stage of ``imgrec predict``'s per-image work, one stage at a
    time in this thread (process CPU time, so threads a runtime starts count too): read +
    draft decode, resize + center crop, normalization, and inference at ``batch`` for each
    runner (one intra-op thread, as the pool runs it)."""
    from imgrec.data.images import load_image
    from imgrec.data.pixels import draft_size, normalize_lookup, normalize_table, resize_image

    pre = clf.card.preprocessing
    size, table = draft_size(pre), normalize_table(pre)
    out: dict[str, float] = {}

    def per_image(name: str, fn: Callable[[], R]) -> R:
        started = time.process_time()
        result = fn()
        out[name] = round((time.process_time() - started) * 1000 / len(paths), 2)
        return result

    images = per_image("decode", lambda: [load_image(str(p), draft=size) for p in paths])

    crops = per_image("resize_crop", lambda: [np.asarray(resize_image(im, pre)) for im in images])
    pixels = per_image("normalize", lambda: [normalize_lookup(c, table) for c in crops])
    x = torch.from_numpy(np.stack(pixels))  # (N, 3, S, S)
    for name, run in runners.items():
        run(x[:batch])  # warm-up

        def infer(run: Any = run) -> list[Any]:
            return [run(x[i : i + batch]) for i in range(0, len(x), batch)]

        per_image(f"infer_{name}", infer)
    return out


def timed(fn: Callable[[], R]) -> tuple[float, R]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


ROWS = ("plain", "imgrec", "imgrec_bf16", "imgrec_int8", "imgrec_batch32", "imgrec_torch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument(
        "--only",
        default="plain,imgrec,imgrec_bf16,imgrec_int8",
        help=f"rows to time (plain and imgrec always run), from {', '.join(ROWS)}",
    )
    args = parser.parse_args()
    rows = ["plain", "imgrec", *(r for r in args.only.split(",") if r not in ("plain", "imgrec"))]
    for row in rows:
        if row not in ROWS:
            parser.error(f"unknown row {row!r}; choose from {', '.join(ROWS)}")

    load_before = os.getloadavg()
    clf = load_model("efficientnet_lite0")
    # the baseline's own network, as loaded: nothing imgrec does to ``clf`` can change it
    plain_module = copy.deepcopy(clf.module).eval()
    cache_was_warm = cache_path(clf).exists()
    with tempfile.TemporaryDirectory(prefix="imgrec-bench-") as tmp:
        folder = Path(tmp) / "predict"
        calib = Path(tmp) / "calibration"
        folder.mkdir()
        calib.mkdir()
        paths = make_folder(folder, args.images)
        make_folder(calib, args.calibration_images, seed=1)  # other files, other noise
        runs: dict[str, Callable[[], list[str]]] = {
            "imgrec": lambda: imgrec_predict(folder, clf, "auto"),
            "imgrec_batch32": lambda: imgrec_predict(folder, clf, "auto", 32),
            "imgrec_torch": lambda: imgrec_predict(folder, clf, "torch"),
            "imgrec_int8": lambda: imgrec_predict(folder, clf, "auto", calibration=calib),
            # bf16 is checked against fp32 on the same calibration images
            "imgrec_bf16": lambda: imgrec_predict(
                folder, clf, "auto", calibration=calib, precision="bf16"
            ),
        }
        # warm-up (not timed): ONNX export into the cache on first use, int8 calibration,
        # OpenVINO compile, allocator, page cache
        first_s: dict[str, float] = {}
        for row in rows[1:]:
            first_s[row], _ = timed(runs[row])
        plain_loop(paths[:32], plain_module)

        seconds: dict[str, list[float]] = {row: [] for row in rows}
        labels: dict[str, list[str]] = {}
        for _ in range(args.repeats):
            t, plain_ids = timed(lambda: plain_loop(paths, plain_module))
            seconds["plain"].append(t)
            labels["plain"] = [clf.classes[i] for i in plain_ids]
            for row in rows[1:]:
                t, labels[row] = timed(runs[row])
                seconds[row].append(t)

        runners = {"fp32": make_runner(clf, "onnx", parallel=True)}
        for row, precision in (("imgrec_bf16", "bf16"), ("imgrec_int8", "int8")):
            if row in rows:
                runners[precision] = make_runner(
                    clf, "onnx", parallel=True, precision=precision, calibration=calib
                )
        stages = stage_breakdown(paths[:32], clf, runners)

        # what the reduced (draft) decode changes: imgrec's labels vs the full-decode path
        full_preds = clf.predict([str(p) for p in paths], top_k=1)
        full = [p.labels[0] for p in full_preds]
        confident = [p.scores[0] >= 0.5 for p in full_preds]

    rate = {k: args.images / statistics.median(v) for k, v in seconds.items()}
    # per repeat: the row against the plain loop timed just before it, then the median
    ratios = {
        row: [round(p / t, 2) for p, t in zip(seconds["plain"], seconds[row], strict=True)]
        for row in rows[1:]
    }
    same = [a == b for a, b in zip(full, labels["imgrec"], strict=True)]
    kept = [float(s) for s, c in zip(same, confident, strict=True) if c]

    def agreement(row: str) -> float:
        pairs = zip(labels["imgrec"], labels[row], strict=True)
        return round(float(np.mean([a == b for a, b in pairs])), 4)

    if "imgrec_batch32" in rows:
        assert labels["imgrec_batch32"] == labels["imgrec"], "the batch size changed a label"
    reduced = [r for r in ("imgrec_bf16", "imgrec_int8") if r in rows]
    print(
        json.dumps(
            {
                "benchmark": "batch_predict",
                "cpu_model": cpu_model(),
                "cpu_count": os.cpu_count(),
                "images": args.images,
                "image_size": [1600, 1200],
                "model": "efficientnet_lite0 (offline ImageNet weights), 224 px",
                "repeats": args.repeats,
                "torch_threads": torch.get_num_threads(),
                "images_per_s": {k: round(v, 2) for k, v in rate.items()},
                "speedup_vs_plain": {k: statistics.median(v) for k, v in ratios.items()},
                "speedup_vs_plain_per_repeat": ratios,
                "top1_agreement_with_fp32_predict": {r: agreement(r) for r in reduced},
                "reduced_precision_vs_fp32_speed": {
                    r: round(rate[r] / rate["imgrec"], 2) for r in reduced
                },
                "cpu_ms_per_image_by_stage": stages,
                "calibration_images": args.calibration_images,
                "first_run_seconds": {k: round(v, 2) for k, v in first_s.items()},
                "top1_agreement_with_full_decode": round(float(np.mean(same)), 4),
                "top1_agreement_with_full_decode_when_confident": round(
                    float(np.mean(kept)) if kept else float("nan"), 4
                ),
                "confident_images": int(sum(confident)),
                "top1_agreement_with_plain_loop": agreement("plain"),
                "seconds": {k: [round(s, 3) for s in v] for k, v in seconds.items()},
                "onnx_cache_was_warm": cache_was_warm,
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
