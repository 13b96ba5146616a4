"""ImageFolder: ``ROOT/<split>/<class>/<image>`` or flat ``ROOT/<class>/<image>``.

Split folders are ``train``, ``val`` (also ``valid`` / ``validation``) and ``test``. Images may
sit in sub-folders of a class folder. Hidden files (``.DS_Store``) are skipped; files whose
names do not end like an image are listed as ignored; a non-image *named* like an image is
kept and reported as bad by the scan.
"""

from __future__ import annotations

import posixpath

from imgrec import storage
from imgrec.data.formats.base import (
    DATASET_FORMATS,
    SPLIT_ALIASES,
    Entry,
    Listing,
)
from imgrec.data.images import IMAGE_SUFFIXES


def relative(root: str, path: str) -> str:
    """``path`` relative to ``root`` with ``/`` separators (works for local and s3://)."""
    if storage.is_s3(root):
        return path[len(root.rstrip("/")) + 1 :]
    import os

    return os.path.relpath(path, root).replace(os.sep, "/")


def _is_split_layout(subdirs: list[str]) -> bool:
    names = {d.lower() for d in subdirs}
    return "train" in names and names <= set(SPLIT_ALIASES)


class ImageFolderFormat:
    """Class folders, optionally inside train/val/test folders."""

    name = "imagefolder"
    description = "ROOT/train/<class>/*, ROOT/val/<class>/* (optional test/), or ROOT/<class>/*"
    priority = 50

    def detect(self, uri: str) -> bool:
        """A folder (or s3 prefix) is read as an ImageFolder."""
        return storage.is_dir(uri)

    def read(self, uri: str) -> Listing:
        """List images with labels from folder names; splits from split folders if present."""
        root = uri.rstrip("/") if storage.is_s3(uri) else uri
        subdirs = storage.list_dirs(root)
        split_layout = _is_split_layout(subdirs)
        declared: dict[str, list[str]] = {}
        if split_layout:
            for d in subdirs:
                declared[SPLIT_ALIASES[d.lower()]] = storage.list_dirs(storage.join(root, d))
        else:
            declared[""] = subdirs
        entries: list[Entry] = []
        ignored: list[str] = []
        notes: list[str] = []
        depth = 2 if split_layout else 1
        for path in storage.list_files(root):
            rel = relative(root, path)
            parts = rel.split("/")
            if len(parts) <= depth:
                ignored.append(path)  # a file outside any class folder
                continue
            if not rel.lower().endswith(IMAGE_SUFFIXES):
                ignored.append(path)
                continue
            if split_layout:
                split: str | None = SPLIT_ALIASES[parts[0].lower()]
                label = parts[1]
            else:
                split, label = None, parts[0]
            entries.append(Entry(path=path, rel=posixpath.normpath(rel), label=label, split=split))
        if ignored:
            notes.append(
                f"{len(ignored)} file(s) ignored: not in a class folder or not an image name"
            )
        return Listing(entries=entries, declared=declared, ignored=ignored, notes=notes)


DATASET_FORMATS.add("imagefolder", ImageFolderFormat())
