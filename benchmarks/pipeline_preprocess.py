"""What the pipeline's preprocess step saves the train step: decoding + resizing the training
images into the trainer's uint8 cache, from the originals vs from the preprocessed cache.

Generates photo-sized JPEGs (default 240 images of 1024x768, smooth content plus noise), runs
ingest + preprocess for ``efficientnet_lite0`` at 224 px (the photo recipe), then times
``imgrec.engine.batches.decode_to_cache`` (what ``imgrec.train`` runs before the first epoch)
on both path lists, compares the tensors (equal up to one grey level: the trainer resizes and
crops an original in one resample), and prints one JSON object::

    .venv/bin/python benchmarks/pipeline_preprocess.py --images 240 --size 1024x768
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_photos(root: Path, n: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    for i in range(n):
        split = "val" if i % 5 == 0 else "train"
        label = f"c{i % 3}"
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        fx, fy = rng.uniform(0.002, 0.02, 2).tolist()
        phase = rng.uniform(0, 6.28)
        base = 127 + 100 * np.sin(xx * fx + yy * fy + phase)
        img = np.stack([base, np.roll(base, i * 7, axis=1), base[::-1]], axis=-1)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--size", default="1024x768")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--img-size", type=int, default=224)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(2)

    from imgrec.engine.batches import decode_to_cache
    from imgrec.mlops.ingest import ingest
    from imgrec.mlops.preprocess import preprocess
    from imgrec.models import ARCHITECTURES

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_photos(root / "photos", args.images, width, height)
        manifest = ingest(str(root / "photos"))
        t0 = time.perf_counter()
        result = preprocess(manifest, str(root / "pre"), model=args.model, img_size=args.img_size)
        prep_s = time.perf_counter() - t0
        pre = ARCHITECTURES.get(args.model).default_preprocessing(args.img_size)
        originals = [r["path"] for r in manifest.rows]
        lines = (root / "pre" / "data.csv").read_text().splitlines()[1:]
        cached = [str(root / "pre" / line.split(",")[0]) for line in lines]
        t0 = time.perf_counter()
        a = decode_to_cache(originals, pre, quiet=True)
        orig_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        b = decode_to_cache(cached, pre, quiet=True)
        cached_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "images": args.images,
                "original_size": args.size,
                "model": args.model,
                "img_size": args.img_size,
                "resize_size": pre.resize_size,
                "preprocess_seconds_once": round(prep_s, 2),
                "train_decode_seconds_original": round(orig_s, 2),
                "train_decode_seconds_preprocessed": round(cached_s, 2),
                "speedup": round(orig_s / cached_s, 1),
                "bytes_original": result.stats["bytes_before"],
                "bytes_preprocessed": result.stats["bytes_after"],
                "identical_pixels": bool(torch.equal(a, b)),
                "max_pixel_diff": int((a.int() - b.int()).abs().max()),
                "pixels_differing": round(float((a != b).float().mean()), 5),
            }
        )
    )


if __name__ == "__main__":
    main()
