"""Dataset formats for classification, one module per format, registered in ``DATASET_FORMATS``.

A format turns a URI (local path or ``s3://`` prefix / file) into a flat list of ``Entry``
(image path, class name, split or ``None``); ``imgrec.data.dataset`` does the rest (scan,
split, report, fingerprint)::

    fmt = detect_format("data/mnist5k")     # -> the "imagefolder" format
    entries = fmt.read("data/mnist5k")

A new format is one module whose format object is added with ``DATASET_FORMATS.add(name, obj)``
(the types are in ``formats/base.py``) and imported in this file.
"""

from __future__ import annotations

from imgrec.data.formats import csv_manifest, imagefolder  # register themselves on import
from imgrec.data.formats.base import (
    DATASET_FORMATS,
    SPLIT_ALIASES,
    SPLITS,
    DatasetFormat,
    Entry,
    Listing,
    detect_format,
    normalize_split,
)

__all__ = [
    "DATASET_FORMATS",
    "SPLITS",
    "SPLIT_ALIASES",
    "DatasetFormat",
    "Entry",
    "Listing",
    "csv_manifest",
    "detect_format",
    "imagefolder",
    "normalize_split",
]
