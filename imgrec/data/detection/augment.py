"""Box-aware augmentation and the detection training dataset, on torchvision transforms v2.

Boxes travel with the image as ``tv_tensors.BoundingBoxes`` (STYLE 3): every geometric op
(zoom-out, IoU crop, flips, the final resize) moves them with the pixels; crops clip them and
``SanitizeBoundingBoxes`` drops the ones left without area, with their labels.

Presets (``DETECTION_AUGMENT``): ``none`` (resize only), ``light`` (colour jitter, scale jitter
by zoom-out, flips as configured), ``strong`` (light + IoU crops that keep boxes consistent).
Horizontal flips are off by default (``hflip=0``): they change the meaning of digits, text and
signs; pass ``hflip=0.5`` for mirror-symmetric objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2 as T

from imgrec.data.detection.types import DetectionRecord
from imgrec.errors import ImageError
from imgrec.models.card import Preprocessing
from imgrec.registry import Registry

Transform = Callable[..., Any]
DETECTION_AUGMENT: Registry[Callable[..., list[T.Transform]]] = Registry(
    "detection augmentation preset", list_hint="imgrec train --help"
)


def _fill(pre: Preprocessing) -> tuple[int, int, int]:
    return tuple(round(m * 255) for m in pre.mean)  # type: ignore[return-value]


@DETECTION_AUGMENT.register("none")
def _none(pre: Preprocessing, hflip: float = 0.0) -> list[T.Transform]:
    return [T.RandomHorizontalFlip(hflip)] if hflip else []


@DETECTION_AUGMENT.register("light")
def _light(pre: Preprocessing, hflip: float = 0.0) -> list[T.Transform]:
    return [
        T.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05),
        T.RandomApply([T.RandomZoomOut(fill=_fill(pre), side_range=(1.0, 1.6))], p=0.4),
        *_none(pre, hflip),
    ]


@DETECTION_AUGMENT.register("strong")
def _strong(pre: Preprocessing, hflip: float = 0.0) -> list[T.Transform]:
    return [
        T.RandomPhotometricDistort(p=0.5),
        T.RandomApply([T.RandomZoomOut(fill=_fill(pre), side_range=(1.0, 2.0))], p=0.4),
        # 1.0 means "keep the image": without it RandomIoUCrop retries forever on scenes where
        # no crop reaches the sampled IoU (it hung the property test).
        T.RandomApply(
            [T.RandomIoUCrop(min_scale=0.5, sampler_options=[0.5, 0.7, 0.9, 1.0])], p=0.3
        ),
        *_none(pre, hflip),
    ]


def train_transform(pre: Preprocessing, preset: str = "light", *, hflip: float = 0.0) -> T.Compose:
    """``(PIL image, {"boxes", "labels"}) -> (normalized tensor, target)`` for training.

    The geometry ends like ``eval_transform``: the whole image resized to ``input_size``
    square, so training and inference see the same scale.
    """
    return T.Compose(
        [
            T.ToImage(),
            *DETECTION_AUGMENT.get(preset)(pre, hflip),
            T.Resize((pre.input_size, pre.input_size), antialias=True),
            T.ClampBoundingBoxes(),
            T.SanitizeBoundingBoxes(min_size=2.0),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=list(pre.mean), std=list(pre.std)),
        ]
    )


def make_target(record: DetectionRecord, height: int, width: int) -> dict[str, Any]:
    """The v2 target for a record: boxes as ``BoundingBoxes`` on the image's canvas."""
    boxes = tv_tensors.BoundingBoxes(
        torch.as_tensor(record.boxes, dtype=torch.float32).reshape(-1, 4),
        format="XYXY",
        canvas_size=(height, width),
    )
    return {"boxes": boxes, "labels": torch.as_tensor(record.labels, dtype=torch.int64)}


class DetectionDataset(Dataset):
    """Records -> ``(tensor, target)``; an image that fails to decode yields ``None``.

    Undecodable images never stop an epoch: ``collate`` drops them and ``bad`` lists them
    (path and error code) for the data report.
    """

    def __init__(self, records: list[DetectionRecord], transform: Transform) -> None:
        from imgrec.data.images import load_image

        self.records = records
        self.transform = transform
        self.bad: dict[str, str] = {}
        self._load = load_image

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]] | None:
        record = self.records[i]
        try:
            image = self._load(record.path)  # RGB, EXIF orientation applied
        except ImageError as exc:
            self.bad[record.path] = exc.code
            return None
        target = make_target(record, image.height, image.width)
        x, target = self.transform(image, target)
        return x, {"boxes": target["boxes"].as_subclass(torch.Tensor), "labels": target["labels"]}


def collate(items: list[Any]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Stack images ``(B, 3, S, S)`` and keep targets as a list; ``None`` items are dropped."""
    kept = [item for item in items if item is not None]
    if not kept:
        return torch.zeros(0), []
    return torch.stack([x for x, _ in kept]), [t for _, t in kept]
