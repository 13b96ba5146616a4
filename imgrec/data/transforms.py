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


def resize_ops(pre: Preprocessing) -> list[T.Transform]:
    """The geometric part of :func:`eval_transform` (resize, then center crop or squash)."""
    mode = INTERPOLATION_MODES[pre.interpolation]
    if pre.crop == "none":
        return [T.Resize((pre.input_size, pre.input_size), interpolation=mode, antialias=True)]
    return [
        T.Resize(pre.resize_size, interpolation=mode, antialias=True),
        T.CenterCrop(pre.input_size),
    ]


def to_tensor_ops(pre: Preprocessing) -> list[T.Transform]:
    """PIL/uint8 -> float32 in [0, 1] -> normalized with ``pre.mean`` / ``pre.std``."""
    return [
        T.ToImage(),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(mean=list(pre.mean), std=list(pre.std)),
    ]


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
    """Fast path for servers holding already resized ``uint8 (B, 3, H, W)`` pixels.

    Returns ``float32 (B, 3, H, W)`` normalized exactly as :func:`eval_transform` does.
    """
    if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected uint8 (B, 3, H, W), got {batch.dtype} {tuple(batch.shape)}")
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (batch.to(torch.float32) / 255.0 - mean) / std
