"""Tiny real models and datasets for the evaluation and prediction tests (generated in code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imgrec.models.architectures import build_model
from imgrec.models.card import ModelCard, Preprocessing, save_model_dir

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def write_color_images(folder: Path, name: str, n: int, seed: int, size: int = 20) -> list[Path]:
    """``n`` noisy images of colour ``name`` as PNG files in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        base = np.array(COLORS[name], dtype=np.float64)
        pixels = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{name} {i:03d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def write_color_dataset(root: Path, n_train: int = 4, n_val: int = 6) -> Path:
    """ImageFolder ``root/{train,val}/{red,green,blue}/*.png``."""
    for j, name in enumerate(COLORS):
        write_color_images(root / "train" / name, name, n_train, seed=j)
        write_color_images(root / "val" / name, name, n_val, seed=100 + j)
    return root


def write_tiny_model(path: Path, classes: list[str], seed: int = 0, size: int = 16) -> Path:
    """A seeded, untrained ``small_resnet`` model directory over ``classes``."""
    torch.manual_seed(seed)
    net = build_model("small_resnet", num_classes=len(classes), widths=(8, 16), depths=(1, 1))
    with torch.no_grad():  # spread the logits so predictions differ between images
        for p in net.parameters():
            p.mul_(3.0)
    card = ModelCard(
        architecture="small_resnet",
        arch_kwargs={"widths": [8, 16], "depths": [1, 1]},
        classes=classes,
        preprocessing=Preprocessing(
            input_size=size, resize_size=size, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
        ),
    )
    save_model_dir(net, card, path)
    return path
