"""The capture store's layout: served images kept by their fingerprint (docs/capture.md).

``imgrec serve --capture DEST`` writes, ``imgrec label`` reads::

    DEST/3f/3fa1c0d2e4b59a17.png        # fingerprint sha256:3fa1c0d2e4b59a17, bytes as received

    captured_images("captures/")       # {"sha256:3fa1c0d2e4b59a17": "captures/3f/3fa1...png"}
"""

from __future__ import annotations

import hashlib

from imgrec import storage

# Magic bytes -> file suffix of the stored copy (the bytes themselves are never re-encoded).
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)
_HEX = frozenset("0123456789abcdef")


def fingerprint(data: bytes) -> str:
    """An image's fingerprint in the prediction log and the capture store: ``sha256:`` + the
    first 16 hex digits of the encoded bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def normalize_fingerprint(text: str) -> str | None:
    """``sha256:<16 hex>`` from that form or the bare 16 hex digits; ``None`` if neither."""
    digits = text.strip().lower().removeprefix("sha256:")
    return f"sha256:{digits}" if len(digits) == 16 and set(digits) <= _HEX else None


def image_suffix(data: bytes) -> str:
    """``.png``, ``.jpg``, ... from the bytes' signature (``.webp`` too); ``.img`` if unknown."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    return ".img"


def capture_key(fp: str, data: bytes) -> str:
    """``ab/abcdef0123456789.png``: where an image with fingerprint ``fp`` is stored."""
    digits = fp.split(":", 1)[-1]
    return f"{digits[:2]}/{digits}{image_suffix(data)}"


def fingerprint_of_name(name: str) -> str | None:
    """The fingerprint a capture file (or a URL ending in one) is named after, else ``None``."""
    stem = name.rsplit("/", 1)[-1].split("?", 1)[0].partition(".")[0]
    return normalize_fingerprint(stem)


def captured_images(uri: str) -> dict[str, str]:
    """``{fingerprint: file URI}`` of every image stored under a capture folder or prefix."""
    out: dict[str, str] = {}
    for path in storage.list_files(uri):
        fp = fingerprint_of_name(storage.basename(path))
        if fp is not None:
            out[fp] = path
    return out
