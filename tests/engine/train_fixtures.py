"""Tiny learnable image datasets generated in code for the training tests.

Class ``k`` of ``n`` is a noisy image with a bright square in a class-specific position, so a
small CNN separates the classes within a couple of epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def class_image(k: int, n_classes: int, size: int, rng: np.random.Generator) -> Image.Image:
    """A grayscale-ish RGB image: noise plus a bright square whose place encodes ``k``."""
    pixels = rng.integers(0, 60, size=(size, size), dtype=np.uint8)
    cells = int(np.ceil(np.sqrt(n_classes)))
    step = size // cells
    row, col = divmod(k, cells)
    jitter = rng.integers(0, max(1, step // 4), size=2)
    top, left = row * step + jitter[0], col * step + jitter[1]
    pixels[top : top + step // 2 + 1, left : left + step // 2 + 1] = 230
    return Image.fromarray(np.stack([pixels] * 3, axis=-1))


def make_imagefolder(
    root: str | Path,
    *,
    classes: tuple[str, ...] = ("a", "b", "c"),
    n_train: int = 32,
    n_val: int = 6,
    size: int = 16,
    seed: int = 0,
) -> Path:
    """Write ``root/{train,val}/<class>/<i>.png``; returns ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in (("train", n_train), ("val", n_val)):
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                class_image(k, len(classes), size, rng).save(folder / f"{i}.png")
    return root


# A very small small_resnet: fast enough for many short runs on 2 busy CPU cores.
TINY = {
    "model": "small_resnet",
    "arch_kwargs": {"stem_width": 8, "widths": [8, 16], "depths": [1, 1]},
    "threads": 1,
    "batch_size": 16,
    "lr": 0.01,
    "scheduler": "constant",
    "warmup_epochs": 0,
    "quiet": True,
    "report": False,
}
