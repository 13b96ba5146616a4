"""The types every dataset format shares: ``Entry``, ``Listing``, ``DatasetFormat`` and the
``DATASET_FORMATS`` registry (the format modules import these; ``formats/__init__`` loads the
format modules, so neither imports the other back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from imgrec.errors import DatasetError
from imgrec.registry import Registry

SPLITS = ("train", "val", "test")
"""Split names used everywhere; folder / CSV aliases are mapped onto them."""
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@dataclass(frozen=True)
class Entry:
    """One listed image: ``path`` (readable path/URI), ``rel`` (path relative to the dataset
    root, used for the fingerprint and reports), ``label`` (class name), ``split`` or None."""

    path: str
    rel: str
    label: str
    split: str | None


@dataclass
class Listing:
    """What a format found: the entries, class names declared by the layout (including empty
    ones), files ignored (not images by name), and notes for the report."""

    entries: list[Entry]
    declared: dict[str, list[str]]  # split ("" for unsplit) -> class names seen as folders/rows
    ignored: list[str]
    notes: list[str]


class DatasetFormat(Protocol):
    """What each registered format provides."""

    name: str
    description: str
    priority: int  # detection order: lower is tried first

    def detect(self, uri: str) -> bool:
        """True when ``uri`` looks like this format (cheap: listing, no decoding)."""
        ...

    def read(self, uri: str) -> Listing:
        """List every image with its label and split."""
        ...


DATASET_FORMATS: Registry[DatasetFormat] = Registry("dataset format", list_hint="")


def normalize_split(name: str, where: str) -> str:
    """Map ``valid`` / ``validation`` / ``training``... to train/val/test or raise."""
    key = name.strip().lower()
    if key in SPLIT_ALIASES:
        return SPLIT_ALIASES[key]
    raise DatasetError(
        f"unknown split {name!r} in {where}",
        hint=f"use one of {', '.join(SPLITS)} (or leave it empty to split by --val-fraction)",
    )


def detect_format(uri: str) -> DatasetFormat:
    """The first registered format (by priority) that recognises ``uri``."""
    formats = sorted((f for _, f in DATASET_FORMATS.items()), key=lambda f: f.priority)
    for fmt in formats:
        if fmt.detect(uri):
            return fmt
    raise DatasetError(
        f"cannot tell the dataset format of {uri}",
        hint="expected a folder with train/ and val/ class folders, a folder of class folders, "
        "or a CSV manifest with columns path,label[,split]",
    )
