"""Bad and tricky image files generated in code (BAD-INPUTS rows 1-9); no binaries in the repo.

``write_bad_images(folder) -> dict[key, Path]`` writes every case below. Tests elsewhere use the
``bad_images`` fixture from ``tests/conftest.py``, which returns this function.

Bad files (``BAD_CODES[key]`` is the expected ``ImgrecError.code``):

====================  =====================================  ==========================
key                   file                                   expected code
====================  =====================================  ==========================
empty                 empty.jpg (0 bytes)                    empty_file
truncated_jpeg        truncated.jpg (first half of a JPEG)   corrupt_image
truncated_png         truncated.png (first half of a PNG)    corrupt_image
bad_crc_png           bad_crc.png (pixel data bytes flipped) corrupt_image
pdf / zip / html      pdf.jpg / zip.jpg / html.jpg           unsupported_media_type
svg / text            svg.jpg / text.jpg                     unsupported_media_type
bomb                  bomb.png: 50,000 x 50,000 IHDR, ~70 B  image_too_large
====================  =====================================  ==========================

Good files (``GOOD_KEYS``; each must load as RGB): ``rgb`` (JPEG), ``cmyk`` (CMYK JPEG),
``gray`` (L PNG), ``gray16`` (I;16 PNG, gradient 1000..3000), ``float_tiff`` (F TIFF,
gradient -3..5), ``rgba`` / ``la`` (alpha, left half transparent), ``palette_transparent``
(P PNG, index 0 transparent on the left half), ``exif_2`` ... ``exif_8`` (JPEGs whose pixels,
once their EXIF orientation is applied, equal ``exif_base()``), ``animated_gif`` (3 frames:
red, green, blue), ``apng`` (2 frames: red, green), ``multipage_tiff`` (2 pages: red, green),
``hostile_metadata`` (PNG with script tags, NUL bytes and 200 KB of text in its chunks),
``webp`` and ``bmp``.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

BAD_CODES: dict[str, str] = {
    "empty": "empty_file",
    "truncated_jpeg": "corrupt_image",
    "truncated_png": "corrupt_image",
    "bad_crc_png": "corrupt_image",
    "pdf": "unsupported_media_type",
    "zip": "unsupported_media_type",
    "html": "unsupported_media_type",
    "svg": "unsupported_media_type",
    "text": "unsupported_media_type",
    "bomb": "image_too_large",
}
EXIF_KEYS = [f"exif_{n}" for n in range(2, 9)]
GOOD_KEYS = [
    "rgb",
    "cmyk",
    "gray",
    "gray16",
    "float_tiff",
    "rgba",
    "la",
    "palette_transparent",
    *EXIF_KEYS,
    "animated_gif",
    "apng",
    "multipage_tiff",
    "hostile_metadata",
    "webp",
    "bmp",
]

RED, GREEN, BLUE, WHITE = (220, 20, 20), (20, 200, 20), (20, 20, 220), (250, 250, 250)

# The stored pixels of exif_N are the *inverse* of orientation N applied to exif_base(), so a
# correct loader (apply orientation N once) gets exif_base() back.
_INVERSE_OF_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def exif_base() -> Image.Image:
    """A 48x32 RGB image with four differently coloured quadrants (asymmetric)."""
    arr = np.zeros((32, 48, 3), dtype=np.uint8)
    arr[:16, :24] = RED
    arr[:16, 24:] = GREEN
    arr[16:, :24] = BLUE
    arr[16:, 24:] = WHITE
    return Image.fromarray(arr)


def quadrant_colors(img: Image.Image) -> list[tuple[int, int, int]]:
    """Mean colour at the centre of each quadrant: TL, TR, BL, BR."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float64)
    h, w = arr.shape[:2]
    out = []
    for cy, cx in (
        (h // 4, w // 4),
        (h // 4, 3 * w // 4),
        (3 * h // 4, w // 4),
        (3 * h // 4, 3 * w // 4),
    ):
        patch = arr[cy - 2 : cy + 2, cx - 2 : cx + 2].reshape(-1, 3).mean(axis=0)
        out.append((int(patch[0]), int(patch[1]), int(patch[2])))
    return out


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid-looking PNG header declaring ``width x height`` RGB with almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _bad_files() -> dict[str, tuple[str, bytes]]:
    jpeg = _encode(Image.fromarray(_noise(64, 64)), "JPEG", quality=90)
    png = _encode(Image.fromarray(_noise(64, 64, 1)), "PNG")
    idat = png.index(b"IDAT")
    bad_crc = bytearray(png)
    for i in range(idat + 20, idat + 40):  # flip bytes inside the compressed pixel data
        bad_crc[i] ^= 0xFF
    zip_buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(zip_buf, "w") as zf:
        zf.writestr("a.txt", "hello")
    return {
        "empty": ("empty.jpg", b""),
        "truncated_jpeg": ("truncated.jpg", jpeg[: len(jpeg) // 2]),
        "truncated_png": ("truncated.png", png[: len(png) // 2]),
        "bad_crc_png": ("bad_crc.png", bytes(bad_crc)),
        "pdf": ("pdf.jpg", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"),
        "zip": ("zip.jpg", zip_buf.getvalue()),
        "html": ("html.jpg", b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"),
        "svg": ("svg.jpg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'),
        "text": ("text.jpg", b"just some text, not an image\n"),
        "bomb": ("bomb.png", bomb_png()),
    }


def _half_transparent(mode: str) -> Image.Image:
    rgba = np.zeros((16, 32, 4), dtype=np.uint8)
    rgba[..., :3] = (30, 60, 90)
    rgba[:, 16:, 3] = 255  # left half fully transparent, right half opaque
    return Image.fromarray(rgba).convert(mode)


def _frames(colors: list[tuple[int, int, int]]) -> list[Image.Image]:
    return [Image.new("RGB", (24, 16), c) for c in colors]


def _good_files() -> dict[str, tuple[str, bytes]]:
    gray16 = np.linspace(1000, 3000, 32 * 64).reshape(32, 64).astype(np.uint16)
    floats = np.linspace(-3.0, 5.0, 32 * 64, dtype=np.float32).reshape(32, 64)
    pal = Image.new("P", (32, 16), 1)
    pal.putpalette([255, 0, 255, 10, 120, 200] + [0] * (256 * 3 - 6))
    pal.paste(0, (0, 0, 16, 16))
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Comment", "<script>alert('x')</script>\x00\x00 evil")
    meta.add_text("Big", "A" * 200_000, zip=True)
    meta.add_text("Title", "<img src=x onerror=alert(1)>")
    animated, apng, pages = (
        _frames([RED, GREEN, BLUE]),
        _frames([RED, GREEN]),
        _frames([RED, GREEN]),
    )
    files = {
        "rgb": ("rgb.jpg", _encode(Image.fromarray(_noise(32, 48, 2)), "JPEG", quality=92)),
        "cmyk": ("cmyk.jpg", _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG")),
        "gray": ("gray.png", _encode(Image.fromarray(_noise(16, 16)[..., 0]), "PNG")),
        "gray16": ("gray16.png", _encode(Image.fromarray(gray16), "PNG")),
        "float_tiff": ("float.tif", _encode(Image.fromarray(floats), "TIFF")),
        "rgba": ("rgba.png", _encode(_half_transparent("RGBA"), "PNG")),
        "la": ("la.png", _encode(_half_transparent("LA"), "PNG")),
        "palette_transparent": ("palette.png", _encode(pal, "PNG", transparency=0)),
        "animated_gif": (
            "animated.gif",
            _encode(animated[0], "GIF", save_all=True, append_images=animated[1:], duration=50),
        ),
        "apng": ("anim.png", _encode(apng[0], "PNG", save_all=True, append_images=apng[1:])),
        "multipage_tiff": (
            "pages.tif",
            _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]),
        ),
        "hostile_metadata": ("metadata.png", _encode(exif_base(), "PNG", pnginfo=meta)),
        "webp": ("photo.webp", _encode(exif_base(), "WEBP", lossless=True)),
        "bmp": ("photo.bmp", _encode(exif_base(), "BMP")),
    }
    for n, op in _INVERSE_OF_ORIENTATION.items():
        exif = Image.Exif()
        exif[0x0112] = n
        stored = exif_base().transpose(op)
        files[f"exif_{n}"] = (f"exif_{n}.jpg", _encode(stored, "JPEG", quality=95, exif=exif))
    return files


def write_bad_images(folder: str | Path) -> dict[str, Path]:
    """Write every bad and good case into ``folder``; returns key -> file path."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for key, (name, data) in {**_bad_files(), **_good_files()}.items():
        path = root / name
        path.write_bytes(data)
        out[key] = path
    return out
