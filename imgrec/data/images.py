"""The one robust image decoder used by training, evaluation, prediction and the servers.

``load_image`` always returns a fully loaded RGB ``PIL.Image`` or raises an ``ImageError``
subclass with a stable code (BAD-INPUTS rows 1-9)::

    from imgrec.data.images import load_image

    img = load_image("photo.jpg")                 # path, str URI (local or s3://) or bytes
    img = load_image(data, max_pixels=10_000_000)

What happens, in order:

1. empty input -> ``EmptyFileError`` (``empty_file``);
2. the first bytes are checked against an allow-list (JPEG, PNG, GIF, BMP, TIFF, WebP);
   anything else (PDF, ZIP, HTML, SVG, text...) -> ``UnsupportedMediaTypeError``;
3. only the header is parsed; width x height above ``max_pixels`` -> ``ImageTooLargeError``
   before any pixel buffer exists; more than ``max_frames`` frames is refused the same way;
4. the first frame is decoded completely (truncation is an error, never padded) ->
   ``CorruptImageError`` with the decoder's reason;
5. EXIF orientation is applied once; every mode becomes RGB: alpha is composited on white
   ``(255, 255, 255)``, 16-bit and float images are scaled by their actual value range;
6. metadata (EXIF, PNG text, ICC...) is dropped from the result: it is never used.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from imgrec import storage
from imgrec.errors import (
    ConfigError,
    CorruptImageError,
    EmptyFileError,
    ImageError,
    ImageTooLargeError,
    UnsupportedMediaTypeError,
)

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]

DEFAULT_MAX_PIXELS = 40_000_000
"""Largest accepted width x height (40 megapixels); override with env ``IMGREC_MAX_PIXELS``
or per call with ``max_pixels``."""
DEFAULT_MAX_FRAMES = 1000
"""Largest accepted frame count of animated GIF / APNG / multi-page TIFF / WebP."""
BACKGROUND = (255, 255, 255)
"""Transparent pixels are composited on this colour (white), in training and inference alike."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")
"""File name endings treated as images when folders are listed."""

# Pillow plugin opening each allowed format. Calling the plugin's class directly parses only
# the header and skips Pillow's global MAX_IMAGE_PIXELS check, so our own per-call limit
# decides (no process-wide setting is touched).
_OPENERS: dict[str, Callable[..., Any]] = {
    "jpeg": JpegImagePlugin.jpeg_factory,
    "png": PngImagePlugin.PngImageFile,
    "gif": GifImagePlugin.GifImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
}

# Recognisable non-images, to say what the file is instead of "unknown".
_KNOWN_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7z archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "an executable"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image (not supported)"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream (not supported)"),
)


def sniff_format(data: bytes) -> str:
    """Name the image format from magic bytes: jpeg, png, gif, bmp, tiff or webp.

    Raises ``EmptyFileError`` for no bytes and ``UnsupportedMediaTypeError`` otherwise,
    naming what the data looks like::

        sniff_format(b"\\x89PNG\\r\\n\\x1a\\n...")  # -> "png"
    """
    if not data:
        raise EmptyFileError("the file is empty (0 bytes)", hint="re-export or remove it")
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM") and len(data) >= 26:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    raise UnsupportedMediaTypeError(
        f"not a supported image: the content is {_describe(data)}",
        hint="supported formats are JPEG, PNG, GIF, BMP, TIFF and WebP",
    )


def _describe(data: bytes) -> str:
    head = bytes(data[:512])
    for magic, what in _KNOWN_OTHERS:
        if head.startswith(magic):
            return what
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")) and b"<svg" in text:
        return "an SVG drawing"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "an HTML page"
    if text.startswith(b"<?xml"):
        return "an XML document"
    if text.startswith((b"{", b"[")):
        return "JSON or other text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"unknown binary data (starts with {head[:8].hex()})"
    return "plain text"


def max_pixels_setting() -> int:
    """The pixel cap in force: env ``IMGREC_MAX_PIXELS`` if set, else ``DEFAULT_MAX_PIXELS``."""
    raw = os.environ.get("IMGREC_MAX_PIXELS", "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(
            f"IMGREC_MAX_PIXELS must be a positive number of pixels, got {raw!r}",
            hint=f"e.g. IMGREC_MAX_PIXELS={DEFAULT_MAX_PIXELS}",
        )
    return value


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    draft: tuple[int, int] | None = None,
) -> Image.Image:
    """Load ``source`` (path, local/``s3://`` URI or bytes) as a fully decoded RGB image.

    ``max_pixels`` defaults to ``max_pixels_setting()`` (env ``IMGREC_MAX_PIXELS``, else
    40 MP); ``draft=(w, h)`` lets JPEG decoding shrink by a power of two while staying at least
    ``(w, h)``. Errors name the source::

        img = load_image("data/train/cat/1.jpg")   # PIL.Image.Image, mode "RGB"
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(
            bytes(source), max_pixels=max_pixels, max_frames=max_frames, draft=draft
        )
    name = os.fspath(source)
    data = storage.read_bytes(name)
    try:
        return decode_image(data, max_pixels=max_pixels, max_frames=max_frames, draft=draft)
    except ImageError as exc:
        raise type(exc)(f"{name}: {exc.message}", hint=exc.hint) from exc.__cause__


def decode_image(
    data: bytes,
    *,
    max_pixels: int | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    draft: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode image bytes into an RGB image; see the module docstring for every step."""
    limit = max_pixels_setting() if max_pixels is None else max_pixels
    fmt = sniff_format(data)
    try:
        im = _open_header(data, fmt)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(str(exc), limit) from exc
    except Exception as exc:
        raise _corrupt(fmt, exc) from exc
    try:
        return _decode_opened(im, fmt, limit, max_frames, draft)
    finally:
        im.close()


def _open_header(data: bytes, fmt: str) -> Any:
    # Parses the header only: no pixel buffer is allocated yet.
    if fmt == "png":
        data = strip_png_text(data)
    return _OPENERS[fmt](io.BytesIO(data))


_PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def strip_png_text(data: bytes) -> bytes:
    """Drop PNG text chunks (tEXt/zTXt/iTXt) before Pillow sees them.

    Text is metadata we never use; removing it means a PNG with megabytes of (compressed)
    text still decodes instead of failing on Pillow's text-size limits. Malformed chunk
    structure is left untouched for the decoder to report.
    """
    if not any(kind in data for kind in _PNG_TEXT_CHUNKS):
        return data
    out = [data[:8]]
    pos, end = 8, len(data)
    while pos + 12 <= end:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        stop = pos + 12 + length
        if stop > end:
            out.append(data[pos:])
            return b"".join(out)
        if kind not in _PNG_TEXT_CHUNKS:
            out.append(data[pos:stop])
        pos = stop
        if kind == b"IEND":
            break
    out.append(data[pos:])
    return b"".join(out)


def _decode_opened(
    im: Any, fmt: str, limit: int, max_frames: int, draft: tuple[int, int] | None
) -> Image.Image:
    width, height = im.size
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"{fmt.upper()} header declares an empty size {width}x{height}")
    if width * height > limit:
        raise _too_large(f"{width}x{height} = {width * height:,} pixels", limit)
    try:
        frames = int(getattr(im, "n_frames", 1))
        if frames > max_frames:
            raise ImageTooLargeError(
                f"{frames} frames exceed the limit of {max_frames}",
                hint="only the first frame is used; pass max_frames to allow more",
            )
        if frames > 1:
            im.seek(0)
        if draft is not None and fmt == "jpeg":
            im.draft("RGB", draft)
        im.load()
        if im.width * im.height > limit:  # e.g. a GIF frame larger than its screen
            raise _too_large(f"{im.width}x{im.height} after decoding", limit)
        oriented = _apply_orientation(im)
        rgb = to_rgb(oriented)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(str(exc), limit) from exc
    except MemoryError as exc:
        raise _too_large("not enough memory to decode", limit) from exc
    except Exception as exc:
        raise _corrupt(fmt, exc) from exc
    if rgb is im:
        # Detach from the file object: a plain Image without EXIF/text the caller could reuse.
        rgb = im.copy()
    # The only metadata kept: the oriented size before any draft reduction, so callers that
    # decoded small (servers, batch predict) still report the image's real dimensions.
    turned = oriented.size != im.size
    rgb.info = {"source_size": (height, width) if turned else (width, height)}
    return rgb


def source_size(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of the decoded file (EXIF-oriented), even after a draft decode."""
    size = image.info.get("source_size")
    return (int(size[0]), int(size[1])) if size else image.size


def _too_large(what: str, limit: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"image too large: {what} (limit {limit:,} pixels)",
        hint="resize it, or raise the limit with IMGREC_MAX_PIXELS / max_pixels",
    )


def _corrupt(fmt: str, exc: BaseException) -> CorruptImageError:
    reason = str(exc).strip() or type(exc).__name__
    return CorruptImageError(
        f"corrupt or truncated {fmt.upper()}: {reason}",
        hint="re-export the file or remove it from the dataset",
    )


_ORIENTATION_OPS: dict[int, tuple[Image.Transpose, ...]] = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1-8); 1 when absent or unreadable (hostile EXIF is ignored)."""
    try:
        value = im.getexif().get(0x0112, 1)
        orientation = int(value)
    except Exception:
        return 1
    return orientation if orientation in _ORIENTATION_OPS else 1


def _apply_orientation(im: Image.Image) -> Image.Image:
    ops = _ORIENTATION_OPS.get(exif_orientation(im), ())
    out = im
    for op in ops:
        out = out.transpose(op)
    return out


def to_rgb(im: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Convert any Pillow mode to RGB: alpha over ``background``, high bit depths rescaled."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _scale_to_rgb(im)
    if mode == "1":
        return im.convert("L").convert("RGB")
    if mode == "P" or "transparency" in im.info:
        im = im.convert("RGBA" if _has_transparency(im) else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        base = Image.new("RGB", rgba.size, background)
        base.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return base
    return im.convert("RGB")


def _has_transparency(im: Image.Image) -> bool:
    if "transparency" in im.info:
        return True
    return im.mode == "P" and im.palette is not None and im.palette.mode == "RGBA"


def _scale_to_rgb(im: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float -> 8 bits by the image's own min..max (NaN/inf ignored)."""
    arr = np.asarray(im, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return Image.new("RGB", im.size, (0, 0, 0))
    lo = float(arr[finite].min())
    hi = float(arr[finite].max())
    if hi > lo:
        scaled = (np.where(finite, arr, lo) - lo) * (255.0 / (hi - lo))
    else:
        # A constant image has no range: place it within the format's nominal range.
        nominal = 1.0 if im.mode == "F" and 0.0 <= lo <= 1.0 else 65535.0
        scaled = np.full(arr.shape, min(max(lo, 0.0), nominal) * 255.0 / nominal)
    gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def image_files(folder: str | Path) -> list[str]:
    """Sorted image files (by suffix) under a local folder or ``s3://`` prefix, recursively."""
    return storage.list_files(str(folder), suffixes=IMAGE_SUFFIXES)
