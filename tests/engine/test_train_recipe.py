"""The default recipe: chosen from the data, explicit values always win."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from imgrec.config import load_config
from imgrec.tasks.classify.recipe import ImageStats, inspect_images, resolve


def test_inspect_images_sees_size_and_gray(tmp_path: Path) -> None:
    gray = tmp_path / "g.png"
    Image.fromarray(np.full((28, 28), 9, dtype=np.uint8)).save(gray)
    color = tmp_path / "c.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), np.uint8)).save(color)
    assert inspect_images([str(gray)]) == ImageStats(1, 28, 28, True)
    stats = inspect_images([str(color)])
    assert (stats.median_width, stats.median_height, stats.grayscale) == (120, 90, False)


def test_small_grayscale_images_get_small_resnet_at_native_size() -> None:
    cfg, notes = resolve(load_config(), ImageStats(64, 28, 28, True), "cpu")
    assert cfg.model == "small_resnet" and cfg.img_size == 28 and cfg.pretrained is False
    assert cfg.augment == "light" and cfg.freeze == "none"
    assert all(v is not None for v in cfg.to_dict().values() if v != cfg.weights)
    assert "small grayscale images" in notes[0]


def test_photos_get_pretrained_transfer_frozen_on_cpu_finetuned_on_cuda() -> None:
    photos = ImageStats(64, 500, 375, False)
    cpu, _ = resolve(load_config(), photos, "cpu")
    assert (cpu.model, cpu.img_size, cpu.pretrained) == ("efficientnet_lite0", 224, True)
    assert cpu.freeze == "backbone" and cpu.feature_cache is True and cpu.augment == "none"
    gpu, _ = resolve(load_config(), photos, "cuda")
    assert gpu.freeze == "none" and gpu.amp is True and gpu.channels_last is True
    assert gpu.feature_cache is False


def test_explicit_values_win() -> None:
    cfg = load_config(sets=["epochs=3", "lr=0.5", "augment=strong", "img_size=40"])
    resolved, _ = resolve(cfg, ImageStats(64, 28, 28, True), "cpu")
    assert (resolved.epochs, resolved.lr, resolved.augment, resolved.img_size) == (
        3, 0.5, "strong", 40,
    )  # fmt: skip
    chosen, _ = resolve(load_config(sets=["model=resnet18"]), ImageStats(8, 300, 300, False), "cpu")
    assert chosen.model == "resnet18" and chosen.img_size == 224 and chosen.pretrained is False
