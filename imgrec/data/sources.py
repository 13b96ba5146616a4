"""What to predict on and where annotated copies go, for every task's ``predict``.

``expand_sources`` turns the CLI's SOURCE arguments (files, folders, globs, ``s3://``
prefixes) into files in argument order, a missing one becoming an error entry in its place;
``saved_name`` names an annotated copy safely (BAD-INPUTS row 10)::

    expand_sources(["photos/", "extra/*.jpg", "missing.png"])   # [..., NotFoundError(...)]
    saved_name(12, "../../etc/passwd")                          # "00012_passwd.jpg"
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable

from imgrec import storage
from imgrec.data.images import IMAGE_SUFFIXES
from imgrec.errors import ImgrecError, NotFoundError

_GLOB_CHARS = re.compile(r"[*?\[]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def expand_sources(sources: Iterable[str | os.PathLike[str]]) -> list[str | ImgrecError]:
    """Files to predict, in argument order: folders and ``s3://`` prefixes are listed
    recursively (image suffixes only), globs expanded (``**`` allowed), files kept as given.

    A path that does not exist (or a glob or folder without images) becomes a
    ``NotFoundError`` entry, so it is reported in order like any bad image.
    """
    out: list[str | ImgrecError] = []
    for item in sources:
        text = os.fspath(item)
        try:
            out.extend(_expand_one(text))
        except ImgrecError as exc:
            exc.source = text  # type: ignore[attr-defined]
            out.append(exc)
    return out


def _expand_one(text: str) -> list[str]:
    if storage.is_s3(text):
        if text.lower().endswith(IMAGE_SUFFIXES) and storage.exists(text):
            return [text]
        files = storage.list_files(text, suffixes=IMAGE_SUFFIXES)
        if not files:
            raise NotFoundError(f"no images under {text}", hint="check the bucket and prefix")
        return files
    if os.path.isdir(text):
        files = storage.list_files(text, suffixes=IMAGE_SUFFIXES)
        if not files:
            suffixes = ", ".join(IMAGE_SUFFIXES)
            raise NotFoundError(
                f"no images in folder {text}", hint=f"image files end in {suffixes}"
            )
        return files
    if os.path.exists(text):
        return [text]
    if _GLOB_CHARS.search(text):
        found: list[str] = []
        for match in sorted(glob.glob(text, recursive=True)):
            if os.path.isdir(match):
                found.extend(storage.list_files(match, suffixes=IMAGE_SUFFIXES))
            elif match.lower().endswith(IMAGE_SUFFIXES):
                found.append(match)
        if not found:
            raise NotFoundError(f"no image files match {text!r}", hint="check the pattern")
        return list(dict.fromkeys(found))
    raise NotFoundError(f"{text} does not exist", hint="pass image files, folders or globs")


def saved_name(index: int, source: str) -> str:
    """A safe file name for the annotated copy of ``source``: ``00012_<cleaned stem>.jpg``.

    Only the last path component is used and reduced to ``[A-Za-z0-9._-]``, so names like
    ``../../x`` or ``C:\\evil`` cannot leave the save folder (BAD-INPUTS row 10).
    """
    base = re.split(r"[\\/]", source.rstrip("/\\"))[-1]
    stem = os.path.splitext(base)[0]
    cleaned = _UNSAFE_NAME.sub("_", stem).strip("._")[:60] or "image"
    return f"{index:05d}_{cleaned}.jpg"
