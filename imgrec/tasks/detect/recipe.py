"""The detection training config: typed, defaults documented, unknown keys refused.

The default recipe is the fast CPU one measured in ``benchmarks/detect_digits.py``: FCOS on the
offline ImageNet EfficientNet-Lite0 (frozen BatchNorm, stem and first two stages frozen), a
64-channel FPN over strides 8/16/32 with 2-conv heads, 256-pixel inputs, AdamW with warm-up and
a cosine schedule over the epochs, or over the steps planned to fit ``time_budget`` when set.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from imgrec.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class DetectConfig:
    """Options of ``imgrec train --task detect`` (``--set key=value`` or a YAML file)."""

    model: str = "fcos"  # a DETECTORS name (`imgrec architectures` lists them)
    backbone: str = (
        "efficientnet_lite0"  # a classifier-registry backbone for fcos/retinanet/fasterrcnn
    )
    pretrained: bool | str = True  # ImageNet backbone weights; "coco" for torchvision COCO models
    img_size: int = 256  # images are resized to img_size x img_size (aspect not kept)
    epochs: int = 12
    time_budget: float | None = None  # seconds from the start of training (feature caching
    # included) to its end: the steps are timed and the schedule planned to fit (max_seconds:
    # the older name); epochs is then the most it may plan
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 60
    grad_clip: float = 10.0
    augment: str = "light"  # none | light | strong (DETECTION_AUGMENT)
    hflip: float = (
        0.0  # horizontal-flip probability; 0 by default (digits and text are not symmetric)
    )
    fpn_channels: int = 64
    head_convs: int = 2
    freeze_stages: int = 2  # backbone stages frozen (with the stem) when pretrained
    cache_features: bool = True  # fcos on timm EfficientNet/MobileNet: cache frozen-block features
    cache_blocks: int = 5  # with cache_features: stem + this many blocks frozen and cached
    cache_views: int = 2  # with cache_features: versions cached per image (1 plain + augmented)
    score_threshold: float | None = None  # predict/evaluate threshold; None: best F1 on val
    val_every: int = 0  # also validate (mAP) every N epochs; 0: only after the last
    val_fraction: float = 0.2  # used only when the dataset has no val split
    seed: int = 0
    device: str = "auto"  # auto (cuda when available) | cpu | cuda
    threads: int | None = None  # torch threads; None: all cores (1 when they are busy)
    extra: dict[str, Any] = field(default_factory=dict)  # extra detector arch kwargs

    def arch_kwargs(self) -> dict[str, Any]:
        """The detector's build options, recorded in ``model.json``."""
        base: dict[str, Any] = {"image_size": self.img_size}
        if self.model in ("fcos", "retinanet", "fasterrcnn"):
            base.update(
                backbone=self.backbone,
                fpn_channels=self.fpn_channels,
                head_convs=self.head_convs,
                freeze_stages=self.frozen_blocks(),
                frozen_bn=bool(self.pretrained),
            )
        return {**base, **self.extra}

    def uses_cache(self) -> bool:
        """Feature caching applies to pretrained fcos only (frozen blocks must stay frozen)."""
        return bool(self.cache_features and self.pretrained and self.model == "fcos")

    def frozen_blocks(self) -> int:
        if not self.pretrained:
            return 0
        return self.cache_blocks if self.uses_cache() else self.freeze_stages

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_config(
    config: str | Path | dict[str, Any] | None = None, **overrides: Any
) -> DetectConfig:
    """A ``DetectConfig`` from a YAML file or dict, then keyword overrides (``None`` ignored)."""
    values: dict[str, Any] = {}
    if isinstance(config, (str, Path)):
        try:
            loaded = yaml.safe_load(Path(config).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"cannot read config {str(config)!r}: {exc}", hint="pass a YAML mapping"
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {str(config)!r} is not a mapping", hint="key: value lines")
        values.update(loaded)
    elif isinstance(config, dict):
        values.update(config)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "max_seconds" in values:  # the older name of time_budget
        values.setdefault("time_budget", values.pop("max_seconds"))
    known = {f.name for f in fields(DetectConfig)}
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}"
            raise ConfigError(f"unknown detection option {key!r}", hint=hint)
    cfg = DetectConfig(**values)
    if cfg.device not in DEVICES:
        raise ConfigError(f"unknown device {cfg.device!r}", hint=f"one of: {', '.join(DEVICES)}")
    if cfg.time_budget is not None and cfg.time_budget <= 0:
        raise ConfigError(f"time_budget={cfg.time_budget}", hint="seconds > 0, or leave it unset")
    if cfg.img_size < 32 or cfg.batch_size < 1 or cfg.epochs < 1:
        raise ConfigError(
            f"img_size={cfg.img_size}, batch_size={cfg.batch_size}, epochs={cfg.epochs}",
            hint="img_size >= 32, batch_size >= 1, epochs >= 1",
        )
    return cfg
