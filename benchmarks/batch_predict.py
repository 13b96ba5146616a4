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

The machine's load averages before and after are printed: the ratio is only meaningful
when both sides ran under the same load, and absolute rates drop when other work shares
the cores.

Usage: ``python benchmarks/batch_predict.py [--images 96] [--repeats 3]``
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
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgrec.inference.onnx import cache_path
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
) -> list[str]:
    records = list(
        predict(
            [str(folder)],
            model=clf,
            top_k=5,
            batch_size=batch_size,
            runtime=runtime,
            precision="fp32" if calibration is None else "int8",
            calibration=calibration,
        )
    )
    assert all("predictions" in r for r in records), "an image failed"
    return [r["predictions"][0]["label"] for r in records]


def timed(fn: Callable[[], R]) -> tuple[float, R]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calibration-images", type=int, default=32)
    args = parser.parse_args()

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
        # warm-up (not timed): ONNX export into the cache on first use, allocator, page cache
        export_s, _ = timed(lambda: imgrec_predict(folder, clf, "auto"))
        calibrate_s, _ = timed(lambda: imgrec_predict(folder, clf, "auto", calibration=calib))
        plain_loop(paths[:32], plain_module)

        seconds: dict[str, list[float]] = {
            "plain": [],
            "imgrec": [],
            "imgrec_batch32": [],
            "imgrec_torch": [],
            "imgrec_int8": [],
        }
        labels: dict[str, list[str]] = {}
        for _ in range(args.repeats):
            t, plain_ids = timed(lambda: plain_loop(paths, plain_module))
            seconds["plain"].append(t)
            labels["plain"] = [clf.classes[i] for i in plain_ids]
            t, labels["imgrec"] = timed(lambda: imgrec_predict(folder, clf, "auto"))
            seconds["imgrec"].append(t)
            t, labels["imgrec_batch32"] = timed(lambda: imgrec_predict(folder, clf, "auto", 32))
            seconds["imgrec_batch32"].append(t)
            t, labels["imgrec_torch"] = timed(lambda: imgrec_predict(folder, clf, "torch"))
            seconds["imgrec_torch"].append(t)
            t, labels["imgrec_int8"] = timed(
                lambda: imgrec_predict(folder, clf, "auto", calibration=calib)
            )
            seconds["imgrec_int8"].append(t)

        # what the reduced (draft) decode changes: imgrec's labels vs the full-decode path
        full_preds = clf.predict([str(p) for p in paths], top_k=1)
        full = [p.labels[0] for p in full_preds]
        confident = [p.scores[0] >= 0.5 for p in full_preds]

    rate = {k: args.images / statistics.median(v) for k, v in seconds.items()}
    same = [a == b for a, b in zip(full, labels["imgrec"], strict=True)]
    agree_full = np.mean(same)
    kept = [float(s) for s, c in zip(same, confident, strict=True) if c]
    agree_confident = np.mean(kept) if kept else float("nan")
    agree = np.mean([a == b for a, b in zip(labels["plain"], labels["imgrec"], strict=True)])
    int8_same = [a == b for a, b in zip(labels["imgrec"], labels["imgrec_int8"], strict=True)]
    assert labels["imgrec_batch32"] == labels["imgrec"], "the batch size changed a label"
    print(
        json.dumps(
            {
                "benchmark": "batch_predict",
                "images": args.images,
                "image_size": [1600, 1200],
                "model": "efficientnet_lite0 (offline ImageNet weights), 224 px, batch 32",
                "repeats": args.repeats,
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "plain_images_per_s": round(rate["plain"], 2),
                "imgrec_images_per_s": round(rate["imgrec"], 2),
                "imgrec_batch32_images_per_s": round(rate["imgrec_batch32"], 2),
                "imgrec_torch_runtime_images_per_s": round(rate["imgrec_torch"], 2),
                "speedup": round(rate["imgrec"] / rate["plain"], 2),
                "speedup_batch32": round(rate["imgrec_batch32"] / rate["plain"], 2),
                "speedup_torch_runtime": round(rate["imgrec_torch"] / rate["plain"], 2),
                "imgrec_int8_images_per_s": round(rate["imgrec_int8"], 2),
                "speedup_int8": round(rate["imgrec_int8"] / rate["plain"], 2),
                "int8_top1_agreement_with_fp32_predict": round(float(np.mean(int8_same)), 4),
                "int8_calibration_images": args.calibration_images,
                "int8_first_run_seconds": round(calibrate_s, 2),
                "top1_agreement_with_full_decode": round(float(agree_full), 4),
                "top1_agreement_with_full_decode_when_confident": round(float(agree_confident), 4),
                "confident_images": int(sum(confident)),
                "top1_agreement_with_plain_loop": round(float(agree), 4),
                "seconds": {k: [round(s, 3) for s in v] for k, v in seconds.items()},
                "first_run_seconds": round(export_s, 2),
                "onnx_cache_was_warm": cache_was_warm,
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
