"""Turn request images into model inputs, exactly as ``imgrec.data.transforms.eval_transform``.

The server splits ``eval_transform`` at its natural seam: the geometric part (``resize_ops``:
resize + center crop, on the PIL image) runs per image in a decode thread and yields ``uint8
(3, H, W)``; the numeric part (``to_tensor_ops``: scale to [0, 1], normalize) runs once per
batch in the batching thread with the same float32 operations in the same order, so the result
is bit-identical to ``eval_transform(pre)(image)`` (tested). JPEGs are decoded with Pillow's
``draft`` at the smallest power-of-two scale that still covers the resize target, so a
12-megapixel photo is never decoded at full size for a 224-pixel model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from imgrec.data.captures import fingerprint
from imgrec.data.images import decode_image, source_size
from imgrec.data.pixels import draft_size, resize_image
from imgrec.errors import ImgrecError
from imgrec.models.card import Preprocessing

STATS_SIDE = 64  # image statistics for the prediction log are computed on a 64-px thumbnail


@dataclass
class ImageStats:
    """What the prediction log records about an input image (see docs/prediction-log.md)."""

    fingerprint: str  # "sha256:<first 16 hex>" of the encoded bytes
    width: int
    height: int
    brightness: float  # mean luminance, 0..1
    contrast: float  # standard deviation of luminance, 0..1
    sharpness: float  # variance of the Laplacian of the luminance thumbnail, 0..1 scale


@dataclass
class PreparedImage:
    """One request item: model-ready pixels, or the error that made it unusable."""

    pixels: np.ndarray | None = None  # uint8 (3, H, W) or float32 (3, H, W) already normalized
    error: ImgrecError | None = None
    size: tuple[int, int] | None = None  # (width, height) of the encoded image, EXIF-oriented
    stats: ImageStats | None = None  # only when asked for (the prediction log is on)
    image: Image.Image | None = field(default=None, repr=False)  # kept only to annotate
    data: bytes | None = field(default=None, repr=False)  # encoded bytes, kept only to capture


def geometric(image: Image.Image, pre: Preprocessing) -> np.ndarray:
    """``resize_image(image, pre)`` (a PIL RGB image) -> ``uint8 (3, H, W)`` (what ``ToImage``
    makes of it)."""
    out = resize_image(image, pre)
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8).transpose(2, 0, 1))


def image_stats(data: bytes, image: Image.Image) -> ImageStats:
    """Fingerprint and simple quality statistics of a decoded image (cheap: 64-px thumbnail)."""
    thumb = image.convert("L")
    thumb.thumbnail((STATS_SIDE, STATS_SIDE))
    lum = np.asarray(thumb, dtype=np.float32) / 255.0
    sharpness = 0.0
    if lum.shape[0] >= 3 and lum.shape[1] >= 3:  # 4-neighbour Laplacian, (h-2, w-2)
        lap = lum[:-2, 1:-1] + lum[2:, 1:-1] + lum[1:-1, :-2] + lum[1:-1, 2:] - 4 * lum[1:-1, 1:-1]
        sharpness = float(lap.var())
    width, height = source_size(image)  # the file's size, not the draft-reduced decode's
    return ImageStats(
        fingerprint=fingerprint(data),
        width=width,
        height=height,
        brightness=round(float(lum.mean()), 4),
        contrast=round(float(lum.std()), 4),
        sharpness=round(sharpness, 6),
    )


def prepare_image(
    data: bytes,
    pre: Preprocessing,
    *,
    keep_image: bool = False,
    max_pixels: int | None = None,
    draft: bool = True,
    stats: bool = True,
) -> PreparedImage:
    """Decode encoded image bytes and apply the geometric preprocessing; errors are returned.

    Runs in a worker thread (Pillow releases the GIL while decoding and resizing).
    ``draft=False`` decodes at full size (detectors map boxes back to the image's pixels);
    ``stats=False`` skips :func:`image_stats` (about a millisecond) when nothing logs them.
    """
    try:
        target = draft_size(pre) if draft else None
        image = decode_image(data, max_pixels=max_pixels, draft=target)
        return PreparedImage(
            pixels=geometric(image, pre),
            size=source_size(image),
            stats=image_stats(data, image) if stats else None,
            image=image if keep_image else None,
        )
    except ImgrecError as exc:
        return PreparedImage(error=exc)
