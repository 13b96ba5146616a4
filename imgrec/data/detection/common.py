"""Small pieces every detection format shares: image listing, oriented sizes, unique names."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted for a stable order."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def oriented_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` after EXIF orientation, from the header only; ``None`` if unreadable.

    Boxes in every format refer to the oriented image (BAD-INPUTS row 7), so a portrait photo
    stored landscape with orientation 6 reports its portrait size here.
    """
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # unreadable header: the record is reported and skipped by the caller
        return None
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, used to find the same image in two splits (leakage)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class UniqueNames:
    """Hands out file names that do not collide within one output folder."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def take(self, name: str, prefix: str) -> str:
        stem, suffix = Path(name).stem, Path(name).suffix
        # Stems must be unique too: YOLO label files and VOC XML files are named by stem.
        candidate = stem
        if candidate.lower() in self._used:
            candidate = f"{prefix}_{stem}"
        n = 1
        while candidate.lower() in self._used:
            candidate = f"{prefix}_{stem}_{n}"
            n += 1
        self._used.add(candidate.lower())
        return f"{candidate}{suffix}"
