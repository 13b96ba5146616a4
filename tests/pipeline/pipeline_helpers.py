"""Helpers for the pipeline tests: tiny generated image datasets and model directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def make_imagefolder(
    root: Path,
    *,
    classes: tuple[str, ...] = ("circle", "square"),
    n_train: int = 12,
    n_val: int = 4,
    size: int = 16,
    seed: int = 0,
) -> Path:
    """``root/{train,val}/<class>/*.png``: each class a distinct, learnable noisy pattern."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    for split, n in (("train", n_train), ("val", n_val)):
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                if k % 2 == 0:
                    base = ((xx - c) ** 2 + (yy - c) ** 2 < (size / 3) ** 2) * 200.0
                else:
                    base = ((abs(xx - c) < size / 3) & (abs(yy - c) < size / 3)) * 200.0
                base = np.roll(base, k // 2 * 3, axis=1)
                img = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{split}_{name}_{i}.png")
    return root


def make_model_dir(root: Path, *, weights_bytes: int = 256, accuracy: float = 0.9) -> Path:
    """A directory with a ``model.json`` and a ``weights.safetensors`` of the requested size."""
    from safetensors.numpy import save_file

    root.mkdir(parents=True, exist_ok=True)
    n = max(1, weights_bytes // 4)
    save_file(
        {"w": np.random.default_rng(0).random(n, dtype=np.float32)}, root / "weights.safetensors"
    )
    card = {
        "format": "imgrec.model/v1",
        "task": "classify",
        "classes": ["a", "b"],
        "metrics": {"accuracy": accuracy},
    }
    (root / "model.json").write_text(json.dumps(card))
    return root
