"""Eval preprocessing: the ONLY way an RGB image becomes a model input at inference time.

Training's validation transform is this same function, so what a model is evaluated on during
training is exactly what it sees when served::

    from imgrec.models.card import Preprocessing
    tf = eval_transform(Preprocessing(input_size=224, resize_size=256, interpolation="bicubic"))
    x = tf(pil_image)                  # float32 tensor (3, 224, 224), normalized
    xb = batch_tensor([img1, img2], pre)   # (2, 3, 224, 224)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2 as T

from imgrec.models.card import Preprocessing

INTERPOLATION_MODES = {
    "nearest": T.InterpolationMode.NEAREST,
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "lanczos": T.InterpolationMode.LANCZOS,
}


def resize_ops(pre: Preprocessing) -> list[Callable[[Any], Any]]:
    """The geometric part of :func:`eval_transform` (resize, then center crop or squash)."""
    mode = INTERPOLATION_MODES[pre.interpolation]
    if pre.crop == "none":
        return [T.Resize((pre.input_size, pre.input_size), interpolation=mode, antialias=True)]
    return [ResizeCenterCrop(pre.resize_size, pre.input_size, mode)]


def resize_op(pre: Preprocessing) -> T.Transform:
    """The resize alone (shorter side to ``resize_size``), without the crop: what
    ``imgrec.mlops.preprocess`` stores so training still crops (and augments) itself."""
    mode = INTERPOLATION_MODES[pre.interpolation]
    if pre.crop == "none":
        return T.Resize((pre.input_size, pre.input_size), interpolation=mode, antialias=True)
    return T.Resize(pre.resize_size, interpolation=mode, antialias=True)


class ResizeCenterCrop:
    """``Resize(resize_size)`` then ``CenterCrop(crop_size)``, computed in one Pillow resample
    of only the source region the crop keeps.

    For a PIL image the output pixels are sampled at the same positions with the same
    antialiasing filter as resizing the whole image and cropping (up to float rounding of the
    sample positions: at most one gray level on a few pixels), but only the kept region is
    resampled, about 1.7x faster for a 4:3 photo. Tensors, and crops larger than the resized
    image, take torchvision's two ops.
    """

    def __init__(self, resize_size: int, crop_size: int, mode: T.InterpolationMode) -> None:
        self.resize_size, self.crop_size, self.mode = resize_size, crop_size, mode
        self._ops = T.Compose([T.Resize(resize_size, interpolation=mode, antialias=True),
                               T.CenterCrop(crop_size)])  # fmt: skip

    def __call__(self, image: Any) -> Any:
        if not isinstance(image, Image.Image):
            return self._ops(image)
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.resize_size * long / short)  # torchvision's Resize(int) rule
        side = self.resize_size
        new_w, new_h = (side, new_long) if width <= height else (new_long, side)
        size = self.crop_size
        if new_w < size or new_h < size:
            return self._ops(image)
        left = round((new_w - size) / 2.0)  # torchvision's CenterCrop anchor
        top = round((new_h - size) / 2.0)
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
        return image.resize((size, size), _PIL_FILTERS[self.mode], box=box)

    def __repr__(self) -> str:
        return f"ResizeCenterCrop({self.resize_size}, {self.crop_size}, {self.mode.value})"


_PIL_FILTERS = {
    T.InterpolationMode.NEAREST: Image.Resampling.NEAREST,
    T.InterpolationMode.BILINEAR: Image.Resampling.BILINEAR,
    T.InterpolationMode.BICUBIC: Image.Resampling.BICUBIC,
    T.InterpolationMode.LANCZOS: Image.Resampling.LANCZOS,
}


class NormalizePixels:
    """uint8 ``(3, H, W)`` -> float32 ``(x / 255 - mean) / std``: :func:`normalize_uint8`'s
    arithmetic, so eval, training batches, batch predict and the servers agree bit for bit.
    A float image is taken as already scaled to [0, 1]. Picklable (DataLoader workers)."""

    def __init__(self, pre: Preprocessing) -> None:
        self.mean = torch.tensor(pre.mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(pre.std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        x = image.as_subclass(torch.Tensor)
        x = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        mean, std = self.mean.flatten().tolist(), self.std.flatten().tolist()
        return f"NormalizePixels(mean={mean}, std={std})"


def to_tensor_ops(pre: Preprocessing) -> list[Callable[[Any], Any]]:
    """PIL/uint8 -> float32 ``(x / 255 - mean) / std`` with ``pre.mean`` / ``pre.std``."""
    return [T.ToImage(), NormalizePixels(pre)]


def eval_transform(pre: Preprocessing) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalized float tensor ``(3, input_size, input_size)``.

    Picklable (safe for DataLoader workers). Resize uses Pillow with antialiasing for PIL
    inputs. Example: ``eval_transform(card.preprocessing)(load_image("cat.jpg"))``.
    """
    return T.Compose([*resize_ops(pre), *to_tensor_ops(pre)])


def batch_tensor(images: Sequence[Image.Image], pre: Preprocessing) -> torch.Tensor:
    """Preprocess several PIL images into one ``(B, 3, H, W)`` float tensor."""
    tf = eval_transform(pre)
    if not images:
        return torch.empty(0, 3, pre.input_size, pre.input_size)
    return torch.stack([tf(img) for img in images])


def normalize_uint8(batch: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """Already resized ``uint8 (B, 3, H, W)`` pixels (on any device) -> ``float32``
    ``(x / 255 - mean) / std``: the arithmetic of :class:`NormalizePixels`, so bit for bit what
    :func:`eval_transform` gives (training batches, the feature cache and augmentation use it)."""
    if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected uint8 (B, 3, H, W), got {batch.dtype} {tuple(batch.shape)}")
    mean = torch.tensor(pre.mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    return (batch.to(torch.float32) / 255.0 - mean) / std


def draft_size(pre: Preprocessing) -> tuple[int, int]:
    """The smallest JPEG decode size that still feeds ``resize_ops(pre)`` at full quality
    (the ``draft`` of :func:`imgrec.data.images.load_image`)."""
    side = pre.resize_size if pre.crop == "center" else pre.input_size
    return (side, side)


_TABLES: dict[tuple[Any, ...], np.ndarray] = {}


def normalize_table(pre: Preprocessing) -> np.ndarray:
    """``float32 (3, 256)``: row ``c`` holds the normalized value of channel ``c`` for each
    uint8 level, computed by :func:`normalize_uint8` itself, so looking pixels up in it gives
    the same floats bit for bit (the normalization is elementwise). Cached per mean/std."""
    key = (tuple(pre.mean), tuple(pre.std))
    if key not in _TABLES:
        levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256).expand(1, 3, 1, 256)
        _TABLES[key] = normalize_uint8(levels.contiguous(), pre)[0, :, 0, :].numpy().copy()
    return _TABLES[key]


def normalize_lookup(pixels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``uint8 (H, W, 3)`` pixels to normalized ``float32 (3, H, W)`` through ``table``
    (:func:`normalize_table`): one gather per channel, no temporaries, no transpose copy."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3), got {pixels.dtype} {pixels.shape}")
    out = np.empty((3, pixels.shape[0], pixels.shape[1]), dtype=np.float32)
    for channel in range(3):
        np.take(table[channel], pixels[:, :, channel], out=out[channel])
    return out


def normalize_batch(pixels: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """``uint8 (B, 3, H, W)`` -> normalized ``float32`` in NumPy, by :func:`normalize_table`
    lookup: bit for bit :func:`normalize_uint8`. NumPy rather than torch in the servers:
    torch's OpenMP pool would spin on the cores the decode threads and ONNX Runtime need."""
    table = normalize_table(pre)
    out = np.empty(pixels.shape, dtype=np.float32)
    for channel in range(3):
        np.take(table[channel], pixels[:, channel], out=out[:, channel])
    return out
