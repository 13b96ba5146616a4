"""Training augmentation presets (torchvision transforms v2) and MixUp / CutMix.

Presets work on ``uint8`` images that already went through the eval resize
(:func:`imgrec.data.transforms.resize_ops`), either one image ``(3, H, W)`` or a batch
``(B, 3, H, W)`` (each image gets its own random parameters). Normalization happens after
augmentation and is exactly :func:`imgrec.data.transforms.normalize_uint8`, i.e. the same
mean/std as ``eval_transform``::

    aug = build_augment("light")
    x = normalize_uint8(aug(batch_uint8), pre)        # float (B, 3, H, W)
    mix = batch_mixer(num_classes=10, mixup_alpha=0.2, cutmix_alpha=1.0)
    x, y_soft = mix(x, y)                              # y_soft: (B, 10) probabilities

Presets (``AUGMENT_PRESETS``):

* ``none``: identity.
* ``light``: small random affine (rotate 10 deg, shift 5%, scale 0.9-1.1), no flip, so safe
  for digits and text (on mnist5k a 5% shift beat 10%); applied batched (one ``grid_sample``
  per batch), cheap enough for CPU.
* ``strong``: random resized crop (35-100% area) + horizontal flip + RandAugment (2 ops,
  magnitude 9); per image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from imgrec.registry import Registry

AUGMENT_PRESETS: Registry[Callable[[int], v2.Transform]] = Registry(
    "augmentation preset", list_hint="none, light, strong"
)


class RandomAffineBatch(v2.Transform):
    """Random affine with its own parameters per image, applied in one ``grid_sample``.

    Accepts ``uint8`` or float images ``(C, H, W)`` or ``(B, C, H, W)``; returns the same dtype
    and shape. Areas moved in from outside the image are filled with 0, as ``v2.RandomAffine``.
    """

    def __init__(
        self,
        degrees: float = 10.0,
        translate: float = 0.1,
        scale: tuple[float, float] = (0.9, 1.1),
    ) -> None:
        super().__init__()
        self.degrees = degrees
        self.translate = translate
        self.scale = scale

    def forward(self, *inputs: Any) -> Any:
        x = inputs[0] if len(inputs) == 1 else inputs
        if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
            raise TypeError(f"RandomAffineBatch expects a (B,)C,H,W tensor, got {type(x)}")
        single = x.ndim == 3
        batch = x.unsqueeze(0) if single else x
        b = batch.shape[0]
        angle = (torch.rand(b) * 2 - 1) * math.radians(self.degrees)
        lo, hi = self.scale
        # grid_sample maps output -> input coordinates, so zoom in by 1/scale.
        inv_scale = 1.0 / (lo + torch.rand(b) * (hi - lo))
        shift = (torch.rand(b, 2) * 2 - 1) * (2 * self.translate)  # in [-1, 1] grid units
        cos, sin = torch.cos(angle) * inv_scale, torch.sin(angle) * inv_scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )  # (B, 2, 3)
        src = batch.float()
        grid = F.affine_grid(theta, list(src.shape), align_corners=False)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if batch.dtype == torch.uint8:
            out = out.round_().clamp_(0, 255).to(torch.uint8)
        return out[0] if single else out


class PerImage(v2.Transform):
    """Apply a single-image transform to every image of a ``(B, C, H, W)`` batch separately."""

    def __init__(self, transform: v2.Transform) -> None:
        super().__init__()
        self.inner = transform

    def forward(self, *inputs: Any) -> Any:
        x = inputs[0] if len(inputs) == 1 else inputs
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            return torch.stack([self.inner(img) for img in x])
        return self.inner(x)


@AUGMENT_PRESETS.register("none")
def _none(input_size: int) -> v2.Transform:
    return v2.Identity()


@AUGMENT_PRESETS.register("light")
def _light(input_size: int) -> v2.Transform:
    return RandomAffineBatch(degrees=10.0, translate=0.05, scale=(0.9, 1.1))


@AUGMENT_PRESETS.register("strong")
def _strong(input_size: int) -> v2.Transform:
    return PerImage(
        v2.Compose(
            [
                v2.RandomResizedCrop(input_size, scale=(0.35, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.RandAugment(num_ops=2, magnitude=9),
            ]
        )
    )


def build_augment(preset: str, input_size: int = 224) -> v2.Transform:
    """The augmentation transform for ``preset`` (``none``/``light``/``strong``) at a size.

    Example: ``build_augment("light")(torch.zeros(8, 3, 28, 28, dtype=torch.uint8))``
    """
    return AUGMENT_PRESETS.get(preset)(input_size)


class _SoftTargets(v2.Transform):
    """One-hot labels for batches that are not mixed (so every batch has soft targets)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, *inputs: Any) -> Any:
        x, y = inputs
        return x, F.one_hot(y, self.num_classes).to(x.dtype)


def batch_mixer(
    num_classes: int, *, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0
) -> v2.Transform | None:
    """``v2.MixUp`` / ``v2.CutMix`` (chosen at random when both are on), or None when off.

    The returned transform maps ``(x float (B,3,H,W), y long (B,))`` to ``(x, y_soft (B, K))``.
    """
    mixers: list[v2.Transform] = []
    if mixup_alpha > 0:
        mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


def soft_targets(num_classes: int) -> v2.Transform:
    """Transform ``(x, y)`` -> ``(x, one_hot(y))``; pairs with :func:`batch_mixer`."""
    return _SoftTargets(num_classes)
