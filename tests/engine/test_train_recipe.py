"""The default recipe: chosen from the data, explicit values always win."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imgrec.tasks.classify.recipe as recipe
from imgrec.config import load_config
from imgrec.errors import ConfigError
from imgrec.tasks.classify.recipe import ImageStats, inspect_images, native_bf16, resolve


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
    assert cfg.augment == "elastic" and cfg.freeze == "none"
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


def test_small_images_train_in_bf16_on_one_thread_where_the_cpu_has_it() -> None:
    small = ImageStats(64, 28, 28, True)
    cfg, notes = resolve(load_config(), small, "cpu")
    assert cfg.amp is native_bf16()
    assert cfg.threads == (1 if native_bf16() else None)
    assert any("amp=bf16 with threads=1" in note for note in notes) is native_bf16()
    # float32 asked for: the threads stay the engine's (every core)
    fp32, _ = resolve(load_config(sets=["amp=false"]), small, "cpu")
    assert fp32.amp is False and fp32.threads is None
    # a frozen backbone (its features may be cached in float32): no bf16
    head, _ = resolve(load_config(sets=["model=small_resnet", "freeze=backbone"]), small, "cpu")
    assert head.amp is False and head.threads is None
    # photos on the CPU train only a head on cached features: no bf16
    photos, _ = resolve(load_config(), ImageStats(64, 500, 375, False), "cpu")
    assert photos.amp is False and photos.threads is None
    cuda, _ = resolve(load_config(), small, "cuda")
    assert cuda.amp is True and cuda.threads is None


def test_amp_on_a_cpu_without_native_bf16_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # the capability probe answers as on a CPU without AVX512-BF16/AMX
    monkeypatch.setattr(recipe, "native_bf16", lambda: False)
    small = ImageStats(64, 28, 28, True)
    cfg, _ = resolve(load_config(), small, "cpu")
    assert cfg.amp is False and cfg.threads is None
    with pytest.raises(ConfigError, match="amp=true on the CPU") as err:
        resolve(load_config(sets=["amp=true"]), small, "cpu")
    assert "amp=false" in err.value.hint
