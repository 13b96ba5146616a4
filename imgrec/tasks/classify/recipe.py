"""The default training recipe, chosen from the data (every ``auto`` config value).

Looking at a sample of the training images decides the whole recipe, and the choice is logged:

* **small images** (median longest side <= 64 px, e.g. MNIST digits, icons): ``small_resnet``
  trained from scratch at the native size with a one-cycle schedule planned to fit a time
  budget (``time_budget``: the step speed of this machine decides the epochs) and light
  augmentation with an elastic warp (``elastic``; no flips: digits and text are not
  mirror-symmetric). Small grayscale images
  are never pushed through a 224-pixel ImageNet pipeline. On a CPU with native bf16
  (AVX512-BF16 or AMX) it trains under bf16 autocast on one thread (``amp``, ``threads``),
  which fits more epochs into the budget; elsewhere in float32 on every core.
* **larger images** (photos): ImageNet-pretrained ``efficientnet_lite0`` (offline weights) at
  224 px. On CPU the backbone is frozen and its pooled features are computed once and cached,
  so only the head trains (seconds per epoch); on CUDA the whole network is fine-tuned with
  light augmentation.

Explicit values (arguments, ``--set``, YAML) always win over the recipe; an explicit ``epochs``
without ``time_budget`` turns the recipe's budget off, and with a budget ``epochs`` is the most
the plan may use (the recipe's ``max_epochs`` when not given)::

    cfg, notes = resolve(load_config(), inspect_images(paths), device="cpu")
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgrec.config import TrainConfig

SMALL_IMAGE_MAX_SIDE = 64
SAMPLE_SIZE = 64

# small_resnet at native size: tuned on mnist5k (see benchmarks/mnist5k.py). Its schedule is
# planned to fit a 45 s budget for the whole run on the machine at hand.
SMALL = {
    "model": "small_resnet",
    "pretrained": False,
    "freeze": "none",
    "time_budget": 45.0,
    "max_epochs": 30,  # the most epochs planned (tiny data gains nothing more)
    # the fewest, even past the budget: at load 14-17 on 2 cores 45 s bought ~1 epoch, 35 %
    # on mnist5k, and make run's gate refused the model; 6 epochs of batch 64 give ~98 %
    "min_epochs": 6,
    # 64, not 128: twice the updates per epoch; on mnist5k at 2 epochs 94.3% vs 87.8%, at 8
    # epochs 98.3% vs 98.1% (a slow or busy machine affords only a few epochs in a budget)
    "batch_size": 64,
    "lr": 6e-3,
    "scheduler": "onecycle",
    # "light" (rotate, shift, scale) plus an elastic warp of the strokes: on mnist5k, 25 epochs,
    # bf16, seeds 0/1/2: 99.2/99.1/99.3% against 99.1/98.7/98.9% with "light"
    "augment": "elastic",
    # oneDNN's convolutions run 1.4-1.7x faster channels-last on the CPU too (2-core Xeon,
    # small_resnet, batch 128): more steps in the same budget
    "channels_last": True,
}
# On a CPU with native bf16 (AVX512-BF16 or AMX) the small recipe trains under bf16 autocast
# on one thread: small_resnet's step at batch 64 took 0.66x the CPU time of fp32 on the 2-core
# AMD EPYC (oneDNN's avx512_core_bf16 kernels), while two threads gained nothing over one in
# fp32 and were 2-4x *slower* in bf16 on a shared machine (BENCHMARKS.md, mnist5k).
SMALL_CPU_BF16 = {"bf16_threads": 1}  # amp auto is on when the whole network trains
SMALL_ARCH_KWARGS: dict[str, Any] = {"stem_width": 16, "widths": [32, 64, 96]}
TRANSFER_CPU = {
    "model": "efficientnet_lite0",
    "pretrained": True,
    "freeze": "backbone",
    "img_size": 224,
    "epochs": 30,
    "batch_size": 64,
    "lr": 3e-3,
    "scheduler": "cosine",
    "augment": "none",
}
TRANSFER_GPU = {
    **TRANSFER_CPU,
    "freeze": "none",
    "epochs": 15,
    "lr": 1e-3,
    "augment": "light",
}


@dataclass(frozen=True)
class ImageStats:
    """What the recipe looks at: sizes and colour of a sample of training images."""

    n_sampled: int
    median_width: int
    median_height: int
    grayscale: bool

    @property
    def max_side(self) -> int:
        return max(self.median_width, self.median_height)

    @property
    def small(self) -> bool:
        return self.max_side <= SMALL_IMAGE_MAX_SIDE


def inspect_images(paths: Sequence[str], sample: int = SAMPLE_SIZE) -> ImageStats:
    """Decode up to ``sample`` evenly spaced images and summarize their size and colour."""
    from imgrec.data.images import load_image

    if not paths:
        return ImageStats(0, 224, 224, False)
    step = max(1, len(paths) // sample)
    widths, heights, gray = [], [], True
    for path in list(paths)[::step][:sample]:
        image = load_image(path)
        widths.append(image.width)
        heights.append(image.height)
        if gray:
            px = np.asarray(image)
            gray = bool((px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all())
    return ImageStats(
        n_sampled=len(widths),
        median_width=int(statistics.median(widths)),
        median_height=int(statistics.median(heights)),
        grayscale=gray,
    )


def _base_recipe(cfg: TrainConfig, stats: ImageStats, device: str) -> tuple[dict, str]:
    if cfg.model == "auto":
        if stats.small:
            why = (
                f"small {'grayscale ' if stats.grayscale else ''}images "
                f"({stats.median_width}x{stats.median_height} median): small_resnet from "
                "scratch at native size"
            )
            small = {**SMALL, **_cpu_bf16(device)}
            return {**small, "arch_kwargs": SMALL_ARCH_KWARGS, "img_size": stats.max_side}, why
        recipe = TRANSFER_GPU if device == "cuda" else TRANSFER_CPU
        why = (
            f"images of {stats.median_width}x{stats.median_height} median: pretrained "
            f"efficientnet_lite0 transfer learning at 224 px, freeze={recipe['freeze']} on {device}"
        )
        return dict(recipe), why
    # A user-chosen architecture: its own defaults; from scratch when it has no weights.
    from imgrec.models.architectures import ARCHITECTURES

    spec = ARCHITECTURES.get(cfg.model)
    pretrained = cfg.pretrained if cfg.pretrained is not None else False
    native_ok = stats.small and not pretrained and stats.max_side >= spec.min_input_size
    size = stats.max_side if native_ok else spec.input_size
    base = dict(SMALL if native_ok else TRANSFER_GPU)
    base.update(model=cfg.model, pretrained=pretrained, img_size=size, freeze="none")
    if cfg.model == "small_resnet" and native_ok:
        base.update(_cpu_bf16(device))
    if cfg.model == "small_resnet" and not cfg.arch_kwargs:
        base["arch_kwargs"] = SMALL_ARCH_KWARGS
    return base, f"{cfg.model} as requested, {size} px, pretrained={pretrained}"


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), as torch reads it."""
    import torch

    caps = torch.cpu.get_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def _cpu_bf16(device: str) -> dict[str, Any]:
    """The small recipe's precision and threads on this device (see ``SMALL_CPU_BF16``)."""
    return dict(SMALL_CPU_BF16) if device == "cpu" and native_bf16() else {}


def resolve(cfg: TrainConfig, stats: ImageStats, device: str) -> tuple[TrainConfig, list[str]]:
    """Fill every ``auto`` (None) field of ``cfg`` from the recipe; returns notes for the log."""
    base, why = _base_recipe(cfg, stats, device)
    values = cfg.to_dict()
    chosen = _schedule_length(values, base)
    bf16_threads = base.pop("bf16_threads", None)
    for key, value in base.items():
        current = values.get(key)
        if (
            current is None
            or (key == "model" and current == "auto")
            or (key == "arch_kwargs" and not current and cfg.model == "auto")
        ):
            values[key] = value
            chosen.append(f"{key}={value}")
    values["device"] = device
    if values["amp"] is None:  # on CUDA; bf16 for the small recipe's whole-network training
        values["amp"] = device == "cuda" or bool(bf16_threads and values["freeze"] == "none")
    if values["amp"] and device == "cpu" and not native_bf16():
        from imgrec.errors import ConfigError

        raise ConfigError(
            "amp=true on the CPU trains in bfloat16, which this CPU has no native arithmetic "
            "for (AVX512-BF16 or AMX); emulated it is slower than float32",
            hint="set amp=false (or leave it auto)",
        )
    if bf16_threads and values["amp"] and device == "cpu" and values["threads"] is None:
        values["threads"] = bf16_threads
        chosen.append(f"amp=bf16 with threads={bf16_threads} (native bf16 on this CPU)")
    if values["channels_last"] is None:
        values["channels_last"] = device == "cuda"
    if values["feature_cache"] is None:
        values["feature_cache"] = values["freeze"] == "backbone"
    if values["feature_cache"] and values["freeze"] == "backbone" and values["augment"] != "none":
        chosen.append("augment=none (features are computed once)")
        values["augment"] = "none"
    _fit_architecture(values)
    resolved = cfg.replace(**values)
    notes = [f"recipe: {why}"]
    if chosen:
        notes.append("auto: " + ", ".join(chosen))
    return resolved, notes


def _schedule_length(values: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """Epochs or a time budget: the user's, else the recipe's (its budget when it has one)."""
    budget, max_epochs = base.pop("time_budget", None), base.pop("max_epochs", None)
    min_epochs = base.pop("min_epochs", None)
    if values["epochs"] is not None and values["time_budget"] is None:
        return []  # a fixed length was asked for
    chosen = []
    if values["time_budget"] is None and budget is not None:
        values["time_budget"] = budget
        chosen.append(f"time_budget={budget:g}")
        if values.get("min_epochs") is None and min_epochs:  # the recipe's budget, its floor
            values["min_epochs"] = min_epochs
            chosen.append(f"epochs>={min_epochs}")
    if values["time_budget"] is not None and values["epochs"] is None and max_epochs:
        values["epochs"] = max_epochs
        chosen.append(f"epochs<={max_epochs}")
    return chosen


def _fit_architecture(values: dict[str, Any]) -> None:
    """Check the size against the architecture; add the builder's size kwargs (e.g. ViT)."""
    from imgrec.errors import ConfigError
    from imgrec.models.architectures import ARCHITECTURES

    spec = ARCHITECTURES.get(values["model"])
    size = values["img_size"]
    if size < spec.min_input_size:
        raise ConfigError(
            f"img_size {size} is below the {spec.min_input_size} px that {spec.name} accepts",
            hint=f"use --img-size {spec.min_input_size} or more, or model=small_resnet",
        )
    values["arch_kwargs"] = {**spec.size_kwargs(size), **(values["arch_kwargs"] or {})}
