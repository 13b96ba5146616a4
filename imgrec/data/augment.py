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
* ``elastic``: ``light`` plus an elastic warp of the strokes (a smooth random displacement,
  bicubic over a 4x4 grid of knots, in the same ``grid_sample``); the small-image recipe's
  preset (handwriting and glyphs bend; on mnist5k it beat ``light`` at 15 and 25 epochs).
* ``strong``: random resized crop (35-100% area) + horizontal flip + RandAugment (2 ops,
  magnitude 9); per image.
* ``camera``: what a different camera does (:class:`CameraShift`): thicker strokes (3x3 max
  filter) on half of the images, rotation up to 30 deg, small shift and scale, Gaussian blur on
  half of the images, each image its own; batched, no flip. The retraining pipeline picks it
  for a warm start with new labelled data (:data:`imgrec.mlops.new_data.NEW_DATA_AUGMENT`): the
  replayed base images then look like the new camera's, so 350 labelled new images are not all
  the model sees of the shift.
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
    "augmentation preset", list_hint="none, light, elastic, strong, camera"
)
WARP_KNOTS = 4  # the elastic warp's knots per side (a smooth bend, not pixel noise)


class RandomAffineBatch(v2.Transform):
    """Random affine with its own parameters per image, applied in one ``grid_sample``.

    Accepts ``uint8`` or float images ``(C, H, W)`` or ``(B, C, H, W)``; returns the same dtype
    and shape. Areas moved in from outside the image are filled with 0, as ``v2.RandomAffine``.

    ``warp``: also an elastic distortion, a smooth random displacement (see
    :func:`_random_affine`); 0 leaves it out.
    """

    def __init__(
        self,
        degrees: float = 10.0,
        translate: float = 0.1,
        scale: tuple[float, float] = (0.9, 1.1),
        warp: float = 0.0,
    ) -> None:
        super().__init__()
        self.degrees = degrees
        self.translate = translate
        self.scale = scale
        self.warp = warp

    def forward(self, *inputs: Any) -> Any:
        batch, single, dtype = _as_batch(inputs, "RandomAffineBatch")
        out = _random_affine(batch.float(), self.degrees, self.translate, self.scale, self.warp)
        return _from_batch(out, single, dtype)


def _as_batch(inputs: tuple[Any, ...], who: str) -> tuple[torch.Tensor, bool, torch.dtype]:
    """``(B, C, H, W)`` view of one image or a batch; whether it was one image; its dtype."""
    x = inputs[0] if len(inputs) == 1 else inputs
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
        raise TypeError(f"{who} expects a (B,)C,H,W tensor, got {type(x)}")
    single = x.ndim == 3
    return (x.unsqueeze(0) if single else x), single, x.dtype


def _from_batch(out: torch.Tensor, single: bool, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    return out[0] if single else out


def _random_affine(
    src: torch.Tensor,
    degrees: float | torch.Tensor,
    translate: float,
    scale: tuple[float, float],
    warp: float = 0.0,
) -> torch.Tensor:
    """Each image of a float ``(B, C, H, W)`` batch rotated (up to ``degrees`` either way; a
    ``(B,)`` tensor: each image its own limit), scaled and shifted at random, in one
    ``grid_sample``; 0 fills what comes in from outside. ``warp`` > 0 also bends each image
    elastically: normal offsets with that standard deviation (grid units, 1 = half the image)
    at a 4x4 grid of knots, interpolated bicubically over the image."""
    b = src.shape[0]
    limit = torch.deg2rad(degrees) if isinstance(degrees, torch.Tensor) else math.radians(degrees)
    angle = (torch.rand(b) * 2 - 1) * limit
    lo, hi = scale
    # grid_sample maps output -> input coordinates, so zoom in by 1/scale.
    inv_scale = 1.0 / (lo + torch.rand(b) * (hi - lo))
    shift = (torch.rand(b, 2) * 2 - 1) * (2 * translate)  # in [-1, 1] grid units
    cos, sin = torch.cos(angle) * inv_scale, torch.sin(angle) * inv_scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(src.shape), align_corners=False)
    if warp > 0:
        knots = torch.randn(b, 2, WARP_KNOTS, WARP_KNOTS) * warp
        shift = F.interpolate(knots, size=src.shape[-2:], mode="bicubic", align_corners=True)
        grid = grid + shift.permute(0, 2, 3, 1)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class CameraShift(v2.Transform):
    """A camera change, own random parameters per image, batched (one pass per effect).

    In the order a camera applies them: stroke thickness -- ``thicken`` of the images through a
    3x3 max filter (bright strokes on a dark ground get thicker), ``thin`` through a 3x3 min
    filter (off by default: at 28 px it erases a 2-px stroke; on the mnist5k loop ``thin``
    0.1 cost 0.4-1.2 points on shifted digits and made '7' the worst class) --, then a random
    affine (rotation up to ``degrees`` either way, ``translate``, ``scale``), then ``blur`` of
    them a Gaussian blur of sigma in ``sigma`` (px). Only ``p``
    of the images get the change; the others only the ``light`` preset's rotation (up to
    ``other_degrees``), shift and scale. Accepts ``uint8`` or float ``(C, H, W)`` /
    ``(B, C, H, W)``; returns the same dtype and shape.
    """

    def __init__(
        self,
        degrees: float = 30.0,
        translate: float = 0.05,
        scale: tuple[float, float] = (0.9, 1.1),
        thicken: float = 0.5,
        thin: float = 0.0,
        blur: float = 0.5,
        sigma: tuple[float, float] = (0.5, 1.5),
        p: float = 1.0,
        other_degrees: float = 10.0,
    ) -> None:
        super().__init__()
        probabilities = (thicken, thin, blur, p, thicken + thin)
        if not all(0 <= q <= 1 for q in probabilities):
            raise ValueError("thicken, thin, blur, p are probabilities (thicken + thin <= 1)")
        self.degrees, self.translate, self.scale = degrees, translate, scale
        self.thicken, self.thin, self.blur, self.sigma = thicken, thin, blur, sigma
        self.p, self.other_degrees = p, other_degrees

    def forward(self, *inputs: Any) -> Any:
        batch, single, dtype = _as_batch(inputs, "CameraShift")
        x = batch.float()
        b = x.shape[0]
        changed = torch.rand(b) < self.p if self.p < 1 else torch.ones(b, dtype=torch.bool)
        u = torch.rand(b)
        thick = ((u < self.thicken) & changed).nonzero().flatten()
        thin = ((u >= self.thicken) & (u < self.thicken + self.thin) & changed).nonzero().flatten()
        if len(thick) or len(thin):
            x = x.clone() if x is batch else x
        if len(thick):
            x[thick] = F.max_pool2d(x[thick], 3, stride=1, padding=1)
        if len(thin):
            x[thin] = -F.max_pool2d(-x[thin], 3, stride=1, padding=1)
        degrees = torch.where(changed, self.degrees, self.other_degrees)
        x = _random_affine(x, degrees, self.translate, self.scale)
        lo, hi = self.sigma
        sigma = lo + torch.rand(b) * (hi - lo)
        blurred = ((torch.rand(b) < self.blur) & changed).nonzero().flatten()
        if len(blurred):
            x[blurred] = gaussian_blur_batch(x[blurred], sigma[blurred])
        return _from_batch(x, single, dtype)


def _blur_matrices(sigma: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, n, n)``: row ``i`` of image ``b`` is the Gaussian of ``sigma[b]`` around pixel
    ``i``, edges replicated (the weights of pixels beyond the edge go to the edge pixel)."""
    b = sigma.shape[0]
    radius = max(1, math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1)
    s = sigma.float().clamp_min(1e-3).view(b, 1)
    kernel = torch.exp(-(offsets.view(1, -1).float() ** 2) / (2 * s**2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, K); sigma 0 -> [0, .., 1, .., 0]
    cols = (torch.arange(n).view(n, 1) + offsets.view(1, -1)).clamp(0, n - 1)  # (n, K)
    out = torch.zeros(b, n, n)
    k = kernel.shape[1]
    out.scatter_add_(2, cols.expand(b, n, k), kernel.view(b, 1, k).expand(b, n, k).contiguous())
    return out


def gaussian_blur_batch(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of a float ``(B, C, H, W)`` batch with its own Gaussian ``sigma[i]``
    (px; 0 leaves the image as it is), separably (two batched matrix products), edges
    replicated."""
    if not x.shape[0]:
        return x
    _, _, h, w = x.shape
    rows, cols = _blur_matrices(sigma, h).to(x.dtype), _blur_matrices(sigma, w).to(x.dtype)
    return rows.unsqueeze(1) @ x @ cols.transpose(1, 2).unsqueeze(1)


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


@AUGMENT_PRESETS.register("elastic")
def _elastic(input_size: int) -> v2.Transform:
    # "light" plus an elastic warp of the strokes (handwriting, glyphs: the small-image recipe).
    # On mnist5k, 25 epochs, it gained 0.1-0.4 pt per seed over "light" (BENCHMARKS.md).
    return RandomAffineBatch(degrees=10.0, translate=0.05, scale=(0.9, 1.1), warp=0.08)


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


@AUGMENT_PRESETS.register("camera")
def _camera(input_size: int) -> v2.Transform:
    return CameraShift()


def build_augment(preset: str, input_size: int = 224) -> v2.Transform:
    """The augmentation transform for ``preset`` (``none``/``light``/``strong``/``camera``).

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
