"""Eval preprocessing: the ONLY way an RGB image becomes a model input at inference time.

Training's validation transform is this same function, so what a model is evaluated on during
training is exactly what it sees when served::

    from imgrec.data.pixels import PIL_FILTERS, resize_center_crop
from imgrec.models.card import Preprocessing
    tf = eval_transform(Preprocessing(input_size=224, resize_size=256, interpolation="bicubic"))
    x = tf(pil_image)                  # float32 tensor (3, 224, 224), normalized
    xb = batch_tensor([img1, img2], pre)   # (2, 3, 224, 224)

The NumPy and Pillow half (the PIL resize, the JPEG draft size, table-lookup normalization)
is :mod:`imgrec.data.pixels`, which batch prediction and the servers use without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import v2 as T

from imgrec.data.pixels import PIL_FILTERS, resize_center_crop
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
    resampled, about 1.7x faster for a 4:3 photo (:func:`imgrec.data.pixels.resize_center_crop`).
    Tensors, and crops larger than the resized image, take torchvision's two ops.
    """

    def __init__(self, resize_size: int, crop_size: int, mode: T.InterpolationMode) -> None:
        self.resize_size, self.crop_size, self.mode = resize_size, crop_size, mode
        self._ops = T.Compose([T.Resize(resize_size, interpolation=mode, antialias=True),
                               T.CenterCrop(crop_size)])  # fmt: skip
        self._resample = PIL_FILTERS[mode.value]

    def __call__(self, image: Any) -> Any:
        if not isinstance(image, Image.Image):
            return self._ops(image)
        out = resize_center_crop(image, self.resize_size, self.crop_size, self._resample)
        return self._ops(image) if out is None else out

    def __repr__(self) -> str:
        return f"ResizeCenterCrop({self.resize_size}, {self.crop_size}, {self.mode.value})"


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
