"""CSV manifest: one row per image, ``path,label[,split]``.

A header row (``path,label,split``) is optional. ``path`` may be relative to the CSV's folder,
an absolute local path, or an ``s3://`` URI; the CSV itself may live on S3. An empty ``split``
cell means "split me by --val-fraction". Example::

    path,label,split
    cats/001.jpg,cat,train
    s3://bucket/dogs/7.png,dog,val
"""

from __future__ import annotations

import csv
import io
import os
import posixpath

from imgrec import storage
from imgrec.data.formats.base import DATASET_FORMATS, Entry, Listing, normalize_split
from imgrec.errors import DatasetError


def _resolve(base: str, raw: str) -> tuple[str, str]:
    """(readable path, path used in reports/fingerprint) for one manifest cell."""
    if storage.is_s3(raw) or os.path.isabs(raw):
        return raw, raw
    rel = posixpath.normpath(raw.replace("\\", "/"))
    return storage.join(base, rel), rel


class CsvManifestFormat:
    """``path,label[,split]`` rows in a ``.csv`` file."""

    name = "csv"
    description = "a .csv manifest with rows path,label[,split]"
    priority = 10

    def detect(self, uri: str) -> bool:
        """A ``.csv`` file."""
        return uri.lower().endswith(".csv") and storage.exists(uri)

    def read(self, uri: str) -> Listing:
        """Parse the manifest; malformed rows raise ``DatasetError`` naming the line."""
        text = storage.read_text(uri, encoding="utf-8-sig")
        base = storage.parent(uri)
        entries: list[Entry] = []
        for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            if lineno == 1 and cells[0].lower() in ("path", "file", "filename", "image"):
                continue  # header
            if len(cells) not in (2, 3):
                raise DatasetError(
                    f"{uri} line {lineno}: expected 2 or 3 columns (path,label[,split]), "
                    f"got {len(cells)}",
                    hint="quote paths that contain commas",
                )
            raw, label = cells[0], cells[1]
            if not raw or not label:
                raise DatasetError(
                    f"{uri} line {lineno}: empty {'path' if not raw else 'label'}",
                    hint="every row needs a path and a label",
                )
            if "\x00" in raw:
                raise DatasetError(f"{uri} line {lineno}: NUL byte in the path")
            split = cells[2] if len(cells) == 3 and cells[2] else None
            if split is not None:
                split = normalize_split(split, f"{uri} line {lineno}")
            path, rel = _resolve(base, raw)
            entries.append(Entry(path=path, rel=rel, label=label, split=split))
        if not entries:
            raise DatasetError(f"{uri} lists no images", hint="add rows path,label[,split]")
        return Listing(entries=entries, declared={}, ignored=[], notes=[])


DATASET_FORMATS.add("csv", CsvManifestFormat())
