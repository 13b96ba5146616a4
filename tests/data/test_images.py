"""load_image / decode_image against BAD-INPUTS rows 1-9, with independent Pillow references."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from image_fixtures import (
    BAD_CODES,
    EXIF_KEYS,
    GOOD_KEYS,
    exif_base,
    quadrant_colors,
)
from PIL import Image, ImageOps

from imgrec.data.images import decode_image, load_image, sniff_format, source_size, to_rgb
from imgrec.errors import (
    EmptyFileError,
    ImageError,
    ImageTooLargeError,
    UnsupportedMediaTypeError,
)


@pytest.mark.parametrize("key", sorted(BAD_CODES))
def test_bad_files_raise_their_code_and_name_the_file(
    key: str, bad_image_files: dict[str, Path]
) -> None:
    path = bad_image_files[key]
    before = path.read_bytes()
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert info.value.code == BAD_CODES[key]
    assert str(path) in info.value.message
    assert info.value.hint
    assert path.read_bytes() == before  # never modified


@pytest.mark.parametrize("key", sorted(BAD_CODES))
def test_bad_bytes_raise_the_same_code(key: str, bad_image_files: dict[str, Path]) -> None:
    with pytest.raises(ImageError) as info:
        decode_image(bad_image_files[key].read_bytes())
    assert info.value.code == BAD_CODES[key]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_files_load_as_plain_rgb_without_metadata(
    key: str, bad_image_files: dict[str, Path]
) -> None:
    img = load_image(str(bad_image_files[key]))
    assert img.mode == "RGB"
    assert img.info == {"source_size": img.size}  # the only metadata kept
    assert type(img) is Image.Image  # detached from the file and its EXIF
    assert np.asarray(img).shape == (img.height, img.width, 3)


def test_sniff_format_by_magic_bytes_not_name() -> None:
    png = _encode(Image.new("RGB", (2, 2)), "PNG")
    assert sniff_format(png) == "png"
    assert sniff_format(_encode(Image.new("RGB", (2, 2)), "JPEG")) == "jpeg"
    assert sniff_format(_encode(Image.new("RGB", (2, 2)), "GIF")) == "gif"
    assert sniff_format(_encode(Image.new("RGB", (2, 2)), "TIFF")) == "tiff"
    assert sniff_format(_encode(Image.new("RGB", (2, 2)), "BMP")) == "bmp"
    assert sniff_format(_encode(Image.new("RGB", (2, 2)), "WEBP")) == "webp"
    with pytest.raises(EmptyFileError):
        sniff_format(b"")
    for data, words in [
        (b"%PDF-1.7", "PDF"),
        (b"PK\x03\x04rest", "ZIP"),
        (b"  <html><body>", "HTML"),
        (b"<svg xmlns='x'>", "SVG"),
        (b"\x00\x01\x02\xff\xfe", "binary"),
        (_encode(Image.new("RGB", (2, 2)), "PPM"), "text"),  # allowed by Pillow, not by us
    ]:
        with pytest.raises(UnsupportedMediaTypeError, match=words):
            sniff_format(data)


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("key", EXIF_KEYS)
def test_exif_orientation_is_applied_exactly_once(
    key: str, bad_image_files: dict[str, Path]
) -> None:
    img = load_image(bad_image_files[key])
    assert img.size == exif_base().size
    got = np.array(quadrant_colors(img))
    want = np.array(quadrant_colors(exif_base()))
    assert np.abs(got - want).max() <= 12, (key, got.tolist())
    # Independent reference: Pillow's own ImageOps.exif_transpose on the raw file.
    with Image.open(bad_image_files[key]) as raw:
        ref = ImageOps.exif_transpose(raw).convert("RGB")
    assert np.array_equal(np.asarray(img), np.asarray(ref))


def test_16_bit_png_is_scaled_by_its_range_not_clipped(bad_image_files: dict[str, Path]) -> None:
    img = np.asarray(load_image(bad_image_files["gray16"]))[..., 0].astype(np.float64)
    raw = np.linspace(1000, 3000, 32 * 64).reshape(32, 64).astype(np.uint16).astype(np.float64)
    want = np.rint((raw - raw.min()) * 255.0 / (raw.max() - raw.min()))
    assert np.abs(img - want).max() <= 1
    assert img.min() == 0 and img.max() == 255
    assert len(np.unique(img)) > 200  # a ramp, not a white (clipped) image


def test_float_tiff_is_scaled_by_its_range(bad_image_files: dict[str, Path]) -> None:
    img = np.asarray(load_image(bad_image_files["float_tiff"]))[..., 0].astype(np.float64)
    raw = np.linspace(-3.0, 5.0, 32 * 64, dtype=np.float32).reshape(32, 64).astype(np.float64)
    want = np.rint((raw + 3.0) * 255.0 / 8.0)
    assert np.abs(img - want).max() <= 1


def test_constant_and_non_finite_float_images() -> None:
    const = to_rgb(Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)))
    assert np.asarray(const)[0, 0].tolist() == [128, 128, 128]
    arr = np.array([[np.nan, 0.0], [np.inf, 1.0]], dtype=np.float32)
    out = np.asarray(to_rgb(Image.fromarray(arr)))[..., 0]
    assert out[0, 1] == 0 and out[1, 1] == 255


@pytest.mark.parametrize("key", ["rgba", "la", "palette_transparent"])
def test_alpha_is_composited_on_white(key: str, bad_image_files: dict[str, Path]) -> None:
    img = np.asarray(load_image(bad_image_files[key]))
    assert (img[:, :16] == 255).all()  # the transparent left half
    assert (img[:, 16:] < 250).all()  # the opaque right half keeps its colour


def test_rgba_matches_reference_alpha_composite(bad_image_files: dict[str, Path]) -> None:
    with Image.open(bad_image_files["rgba"]) as raw:
        ref = Image.alpha_composite(Image.new("RGBA", raw.size, (255, 255, 255, 255)), raw)
    got = load_image(bad_image_files["rgba"])
    assert np.array_equal(np.asarray(got), np.asarray(ref.convert("RGB")))


def test_cmyk_jpeg_matches_pillow_conversion(bad_image_files: dict[str, Path]) -> None:
    with Image.open(bad_image_files["cmyk"]) as raw:
        assert raw.mode == "CMYK"
        ref = raw.convert("RGB")
    got = load_image(bad_image_files["cmyk"])
    assert np.array_equal(np.asarray(got), np.asarray(ref))
    assert np.asarray(got)[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("key", ["animated_gif", "apng", "multipage_tiff"])
def test_first_frame_is_used(key: str, bad_image_files: dict[str, Path]) -> None:
    img = np.asarray(load_image(bad_image_files[key])).reshape(-1, 3).mean(axis=0)
    assert img[0] > 200 and img[1] < 40 and img[2] < 40  # red, the first frame


def test_frame_cap(bad_image_files: dict[str, Path]) -> None:
    with pytest.raises(ImageTooLargeError, match="3 frames"):
        load_image(bad_image_files["animated_gif"], max_frames=2)
    load_image(bad_image_files["animated_gif"], max_frames=3)


def test_pixel_cap_is_per_call(bad_image_files: dict[str, Path]) -> None:
    with pytest.raises(ImageTooLargeError, match="48x32"):
        load_image(bad_image_files["rgb"], max_pixels=48 * 32 - 1)
    assert load_image(bad_image_files["rgb"], max_pixels=48 * 32).size == (48, 32)
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS > 80_000_000


def _gif_header(w: int, h: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02\x00"
    return screen + frame + b"\x3b"


def _bmp_header(w: int, h: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


@pytest.mark.parametrize("data", [_gif_header(65535, 65535), _bmp_header(60000, 60000)])
def test_bombs_in_other_formats_are_refused_from_the_header(data: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError):
        decode_image(data)
    assert time.perf_counter() - started < 1.0  # nothing of the declared size was allocated


def test_bomb_refused_fast(bad_image_files: dict[str, Path]) -> None:
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="50000x50000"):
        load_image(bad_image_files["bomb"], max_pixels=10**9)
    assert time.perf_counter() - started < 1.0


def test_draft_decodes_jpeg_smaller_but_not_below_request() -> None:
    rng = np.random.default_rng(0)
    data = _encode(Image.fromarray(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)), "JPEG")
    full = load_image(data)
    small = load_image(data, draft=(200, 150))
    assert full.size == (800, 600)
    assert small.size == (200, 150)
    assert load_image(data, draft=(300, 300)).size == (400, 300)
    assert source_size(small) == (800, 600)  # the file's size survives the reduced decode


def test_source_size_is_oriented_after_a_draft_decode() -> None:
    rng = np.random.default_rng(1)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the oriented image is 600 wide, 800 high
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)).save(
        buf, "JPEG", exif=exif
    )
    small = load_image(buf.getvalue(), draft=(200, 200))
    assert small.size == (300, 400)  # decoded at 1/2, then turned
    assert source_size(small) == (600, 800)


def test_hostile_metadata_is_dropped(bad_image_files: dict[str, Path]) -> None:
    img = load_image(bad_image_files["hostile_metadata"])
    assert set(img.info) == {"source_size"}
    assert "exif" not in img.info and not img.getexif()


def test_bytes_and_path_give_the_same_pixels(bad_image_files: dict[str, Path]) -> None:
    path = bad_image_files["exif_6"]
    a = load_image(path)
    b = load_image(path.read_bytes())
    c = load_image(str(path))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.array_equal(np.asarray(a), np.asarray(c))


def test_missing_file_is_a_not_found_error(tmp_path: Path) -> None:
    from imgrec.errors import NotFoundError

    with pytest.raises(NotFoundError, match=r"nope\.png"):
        load_image(tmp_path / "nope.png")


def test_pixel_cap_from_environment(
    bad_image_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgrec.errors import ConfigError

    monkeypatch.setenv("IMGREC_MAX_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError, match="limit 1,000"):
        load_image(bad_image_files["rgb"])
    monkeypatch.setenv("IMGREC_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="IMGREC_MAX_PIXELS"):
        load_image(bad_image_files["rgb"])
    monkeypatch.delenv("IMGREC_MAX_PIXELS")
    assert load_image(bad_image_files["rgb"]).size == (48, 32)


@pytest.mark.parametrize(("size", "compressed"), [(2_000_000, True), (70_000_000, False)])
def test_huge_png_text_is_ignored_not_fatal(size: int, compressed: bool) -> None:
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    meta.add_text("Big", "A" * size, zip=compressed)
    meta.add_text("Evil", "<script>alert(1)</script>\x00")
    data = _encode(exif_base(), "PNG", pnginfo=meta)
    img = load_image(data)
    assert img.info == {"source_size": img.size}
    assert quadrant_colors(img) == quadrant_colors(exif_base())
