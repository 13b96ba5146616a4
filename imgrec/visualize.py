"""Draw predictions on images: a label banner for classification, boxes for detection.

Both functions return a new RGB image and leave the input untouched. Text uses Pillow's
built-in scalable font (``ImageFont.load_default(size=...)``), so nothing is downloaded.

Example::

    from PIL import Image
    from imgrec.visualize import draw_boxes, draw_label

    shown = draw_label(Image.open("cat.jpg"), "tabby 0.93")
    boxed = draw_boxes(img, [[10, 20, 110, 140]], ["cat"], [0.88])
"""

from __future__ import annotations

import unicodedata
import zlib
from collections.abc import Sequence
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

# Tableau-like palette with enough contrast for white text on it.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
    (188, 189, 34),
    (127, 127, 127),
)
MAX_TEXT = 60  # characters kept from one label (names are metadata, not layout)


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def safe_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` with control characters (NUL, newlines...) as ``?``, cut to ``limit`` chars."""
    cleaned = "".join("?" if unicodedata.category(ch).startswith("C") else ch for ch in str(text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def color_for(label: str) -> tuple[int, int, int]:
    """A stable palette colour for ``label`` (same label, same colour, across runs)."""
    return PALETTE[zlib.crc32(str(label).encode("utf-8", "replace")) % len(PALETTE)]


def default_font_size(image: Image.Image) -> int:
    """A readable font size for ``image``: about 1/20 of its shorter side, at least 10 px."""
    return max(10, round(min(image.size) / 20))


def draw_label(
    image: Image.Image,
    text: str,
    *,
    font_size: int | None = None,
    color: tuple[int, int, int] = (0, 0, 0),
    text_color: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Return a copy of ``image`` with ``text`` on a solid banner across its top-left corner.

    >>> from PIL import Image
    >>> draw_label(Image.new("RGB", (200, 100)), "tabby 0.93").size
    (200, 100)
    """
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    font = _font(font_size or default_font_size(out))
    shown = safe_text(text)
    pad = max(2, (font_size or default_font_size(out)) // 4)
    _, _, right, bottom = draw.textbbox((pad, pad), shown, font=font)
    draw.rectangle([0, 0, min(right + pad, out.width - 1), bottom + pad], fill=color)
    draw.text((pad, pad), shown, font=font, fill=text_color)
    return out


def draw_boxes(
    image: Image.Image,
    boxes: Sequence[Sequence[float]],
    labels: Sequence[str] | None = None,
    scores: Sequence[float] | None = None,
    *,
    width: int = 2,
    colors: Sequence[tuple[int, int, int]] | None = None,
    font_size: int | None = None,
) -> Image.Image:
    """Return a copy of ``image`` with ``boxes`` (``[x0, y0, x1, y1]`` in pixels) drawn on it.

    Coordinates are rounded to whole pixels; the outline's outer edge runs exactly through
    pixels ``x0..x1`` and ``y0..y1`` (inclusive) and grows inwards by ``width``, so the box
    covers what it marks. Parts outside the image are clipped. Each box gets a caption
    ``label score`` above it (inside, when the box touches the top edge), coloured per label.

    >>> from PIL import Image
    >>> img = draw_boxes(Image.new("RGB", (64, 64)), [[8, 8, 40, 30]], ["cat"], [0.9])
    >>> img.getpixel((8, 20))  # left edge of the box
    (44, 160, 44)
    """
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    n = len(boxes)
    if labels is not None and len(labels) != n:
        raise ValueError(f"{n} boxes but {len(labels)} labels")
    if scores is not None and len(scores) != n:
        raise ValueError(f"{n} boxes but {len(scores)} scores")
    font = _font(font_size or max(10, default_font_size(out) * 3 // 4))
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        label = safe_text(labels[i]) if labels is not None else ""
        color = colors[i % len(colors)] if colors else color_for(label)
        draw.rectangle([x0, y0, x1, y1], outline=color, width=width)
        caption = " ".join(p for p in (label, f"{scores[i]:.2f}" if scores else "") if p)
        if caption:
            _draw_caption(draw, font, caption, (x0, y0), color, out.size)
    return out


def _draw_caption(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    text: str,
    anchor: tuple[int, int],
    color: tuple[int, int, int],
    size: tuple[int, int],
) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 4, bottom - top + 4
    x = min(max(anchor[0], 0), max(size[0] - w, 0))
    y = anchor[1] - h if anchor[1] - h >= 0 else anchor[1]
    draw.rectangle([x, y, x + w - 1, y + h - 1], fill=color)
    draw.text((x + 2 - left, y + 2 - top), text, font=font, fill=(255, 255, 255))
