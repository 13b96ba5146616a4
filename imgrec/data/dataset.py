"""Classification datasets: detect the format, scan every image, split, report, fingerprint.

::

    from imgrec.data.dataset import load_classification_data

    data = load_classification_data("data/mnist5k")          # or s3://bucket/prefix, x.csv
    data.classes                  # ['0', '1', ..., '9']
    data.splits["train"][0]       # ImageRecord(path='data/mnist5k/train/0/00012.png', label=0, ...)
    data.report.bad               # files that failed to decode, with code and reason
    data.fingerprint              # 'sha256:...' over (path, label, split, file sha256)

Bad files (empty, not an image, corrupt, too large) are found by decoding each file once,
listed in ``data.report`` and dropped; more than ``max_bad_fraction`` bad raises
``DatasetError``. Layout problems (no classes, an empty class folder, a single class, a class
only in val) raise ``DatasetError`` naming the class and split.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from imgrec import storage
from imgrec.data.formats import DATASET_FORMATS, SPLITS, Entry, Listing, detect_format
from imgrec.data.images import decode_image, max_pixels_setting
from imgrec.errors import DatasetError, ImgrecError

DEFAULT_VAL_FRACTION = 0.2
"""Share of each class moved to ``val`` when the data has no val split of its own."""


@dataclass(frozen=True)
class ImageRecord:
    """One usable image: ``path`` (local path or ``s3://`` URI), ``label`` (index into
    ``classes``) and ``split`` (train / val / test)."""

    path: str
    label: int
    split: str


@dataclass(frozen=True)
class BadFile:
    """A file that could not be used, with the decoder's error code and reason."""

    path: str
    code: str
    reason: str
    label: str
    split: str | None


@dataclass
class DataReport:
    """What the scan found: counts per split and class, bad files, leakage, notes."""

    uri: str
    format: str
    classes: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    n_files: int = 0
    bad: list[BadFile] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    leakage: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""
    scanned: bool = True
    seconds: float = 0.0

    @property
    def n_bad(self) -> int:
        """Number of bad files."""
        return len(self.bad)

    @property
    def bad_fraction(self) -> float:
        """Bad files / image files listed (0 when nothing was listed)."""
        return self.n_bad / self.n_files if self.n_files else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the content of ``data_report.json``)."""
        return {
            "uri": self.uri,
            "format": self.format,
            "classes": list(self.classes),
            "counts": {s: dict(c) for s, c in self.counts.items()},
            "n_files": self.n_files,
            "n_bad": self.n_bad,
            "bad_fraction": round(self.bad_fraction, 6),
            "bad": [asdict(b) for b in self.bad],
            "n_ignored": len(self.ignored),
            "ignored": list(self.ignored[:100]),
            "leakage": list(self.leakage),
            "notes": list(self.notes),
            "fingerprint": self.fingerprint,
            "scanned": self.scanned,
            "seconds": round(self.seconds, 3),
        }

    def write(self, path: str) -> None:
        """Write ``to_dict()`` as indented JSON (atomic for local paths)."""
        storage.write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")


@dataclass
class ClassificationData:
    """A loaded classification dataset; see ``load_classification_data``."""

    uri: str
    format: str
    classes: list[str]
    splits: dict[str, list[ImageRecord]]
    report: DataReport
    fingerprint: str

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name -> label index."""
        return {c: i for i, c in enumerate(self.classes)}

    def counts(self) -> dict[str, int]:
        """Number of images per split."""
        return {s: len(r) for s, r in self.splits.items()}


@dataclass(frozen=True)
class ScanResult:
    """Outcome of reading (and decoding) one file: its sha256, or an error code and reason."""

    sha256: str | None
    code: str | None = None
    reason: str | None = None


def _scan_one(path: str, decode: bool) -> ScanResult:
    try:
        data = storage.read_bytes(path)
        digest = hashlib.sha256(data).hexdigest()
        if decode:
            decode_image(data).close()
    except ImgrecError as exc:
        return ScanResult(None, exc.code, exc.message)
    except Exception as exc:  # a decoder bug must not stop the scan of a dataset
        return ScanResult(None, "corrupt_image", f"{type(exc).__name__}: {exc}")
    return ScanResult(digest)


def scan_images(
    paths: Sequence[str],
    *,
    decode: bool = True,
    workers: int | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[ScanResult]:
    """Read (and decode, by default) every file in a thread pool; results in input order."""
    if workers is None:
        remote = any(storage.is_s3(p) for p in paths[:1])
        workers = 16 if remote else max(1, os.cpu_count() or 1)
    if workers <= 1 or len(paths) < 32:
        results = []
        for p in paths:
            results.append(_scan_one(p, decode))
            if on_done:
                on_done(1)
        return results
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imgrec-scan") as pool:
        chunk = 64
        futures = [
            pool.submit(lambda ps: [_scan_one(p, decode) for p in ps], paths[i : i + chunk])
            for i in range(0, len(paths), chunk)
        ]
        out: list[ScanResult] = []
        for fut in futures:
            part = fut.result()
            out.extend(part)
            if on_done:
                on_done(len(part))
    return out


def stratified_split(
    items: Sequence[Entry], fraction: float, seed: int
) -> tuple[list[Entry], list[Entry]]:
    """Seeded, stratified (train, val) split: each class keeps ``fraction`` of its items in val.

    A class with n >= 2 items gives ``max(1, round(n * fraction))`` (at most n - 1) to val; a
    class with one item stays in train. Items are ordered by path first so the result only
    depends on the data and the seed.
    """
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Entry]] = defaultdict(list)
    for e in sorted(items, key=lambda e: e.rel):
        by_class[e.label].append(e)
    train: list[Entry] = []
    val: list[Entry] = []
    for label in sorted(by_class):
        group = by_class[label]
        n = len(group)
        n_val = 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, round(n * fraction)))
        order = rng.permutation(n)
        val_idx = set(order[:n_val].tolist())
        for i, e in enumerate(group):
            (val if i in val_idx else train).append(e)
    return train, val


def fingerprint(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """``sha256:`` over sorted (relative path, label, split, file sha256) rows."""
    h = hashlib.sha256()
    for row in sorted(rows):
        h.update(json.dumps(list(row), ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return f"sha256:{h.hexdigest()}"


def _check_layout(listing: Listing, uri: str) -> None:
    """Empty class folders, classes only in val/test, no or one class (BAD-INPUTS row 11)."""
    present: dict[str, Counter[str]] = defaultdict(Counter)
    for e in listing.entries:
        present[e.split or ""][e.label] += 1
    for split, declared in listing.declared.items():
        for cls in declared:
            if present[split][cls] == 0:
                where = f"{split}/{cls}" if split else cls
                raise DatasetError(
                    f"class folder {where!r} in {uri} holds no images (split "
                    f"{split or 'unsplit'!r}, class {cls!r})",
                    hint="add images or remove the empty folder",
                )
    classes = sorted({e.label for e in listing.entries})
    if not classes:
        raise DatasetError(
            f"no classes found in {uri}",
            hint="put images in one folder per class (ROOT/<class>/*.jpg or "
            "ROOT/train/<class>/*), or list them in a CSV path,label[,split]",
        )
    trainable = set(present["train"]) | set(present[""])
    for split in ("val", "test"):
        for cls in sorted(set(present[split]) - trainable):
            raise DatasetError(
                f"class {cls!r} appears only in split {split!r} of {uri}, not in 'train'",
                hint=f"add training images for {cls!r} or remove it from {split}",
            )
    if len(classes) < 2:
        raise DatasetError(
            f"only one class ({classes[0]!r}) found in {uri}; classification needs at least two",
            hint="add a folder (or CSV label) per class",
        )


def _assign_splits(
    good: list[Entry], val_fraction: float | None, seed: int, report: DataReport
) -> dict[str, list[Entry]]:
    has_val = any(e.split == "val" for e in good)
    unsplit = [e for e in good if e.split is None]
    # With no val split of its own, train (or unsplit) images are split by val_fraction.
    to_split = unsplit if has_val else [e for e in good if e.split in (None, "train")]
    moving = set(to_split)
    fixed = [e for e in good if e not in moving]
    fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
    if val_fraction is not None and has_val and not unsplit:
        report.notes.append("val_fraction ignored: the data has its own val split")
    out: dict[str, list[Entry]] = {s: [] for s in SPLITS}
    for e in fixed:
        out[e.split or "train"].append(e)
    if to_split:
        train, val = stratified_split(to_split, fraction, seed)
        out["train"].extend(train)
        out["val"].extend(val)
        report.notes.append(
            f"{len(val)} of {len(to_split)} images moved to val "
            f"(val_fraction={fraction}, seed={seed}, stratified)"
        )
    if not out["test"]:
        del out["test"]
    return out


def _too_many_bad(report: DataReport, max_bad_fraction: float) -> DatasetError:
    shown = "; ".join(f"{b.path}: {b.code}" for b in report.bad[:3])
    more = f" (+{report.n_bad - 3} more)" if report.n_bad > 3 else ""
    exc = DatasetError(
        f"{report.n_bad} of {report.n_files} images in {report.uri} are unusable "
        f"({report.bad_fraction:.0%} > max_bad_fraction {max_bad_fraction:.0%}): {shown}{more}",
        hint="fix or remove the bad files (`imgrec data report DATA` lists them all), "
        "or raise max_bad_fraction",
    )
    exc.report = report  # type: ignore[attr-defined]
    return exc


def load_classification_data(
    uri: str | os.PathLike[str],
    *,
    val_fraction: float | None = None,
    seed: int = 0,
    max_bad_fraction: float = 0.2,
    scan: bool = True,
    format: str | None = None,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ClassificationData:
    """Load a classification dataset from a folder, ``s3://`` prefix or CSV manifest.

    ``scan=False`` skips decoding (files are still read for the fingerprint). ``format``
    forces a registered format ("imagefolder", "csv") instead of detection.
    ``on_progress(done, total)`` is called as files are scanned.
    """
    uri = os.fspath(uri)
    if val_fraction is not None and not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}", hint="e.g. 0.2")
    if not storage.exists(uri):
        raise DatasetError(f"dataset {uri} does not exist", hint="check the path or URI")
    max_pixels_setting()  # a bad IMGREC_MAX_PIXELS fails here, not as N "bad" files
    started = time.perf_counter()
    fmt = DATASET_FORMATS.get(format) if format else detect_format(uri)
    listing = fmt.read(uri)
    _check_layout(listing, uri)
    report = DataReport(uri=uri, format=fmt.name, ignored=listing.ignored, notes=listing.notes)
    report.n_files = len(listing.entries)
    report.scanned = scan

    total, done = len(listing.entries), 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if on_progress:
            on_progress(done, total)

    results = scan_images(
        [e.path for e in listing.entries], decode=scan, workers=workers, on_done=tick
    )
    good: list[Entry] = []
    digests: dict[str, str] = {}
    for e, r in zip(listing.entries, results, strict=True):
        if r.sha256 is None:
            report.bad.append(BadFile(e.path, r.code or "", r.reason or "", e.label, e.split))
        else:
            good.append(e)
            digests[e.path] = r.sha256
    if report.bad_fraction > max_bad_fraction:
        raise _too_many_bad(report, max_bad_fraction)
    return _finish(uri, fmt.name, good, digests, report, val_fraction, seed, started)


def _finish(
    uri: str,
    fmt_name: str,
    good: list[Entry],
    digests: dict[str, str],
    report: DataReport,
    val_fraction: float | None,
    seed: int,
    started: float,
) -> ClassificationData:
    classes = sorted({e.label for e in good})
    if len(classes) < 2:
        raise DatasetError(
            f"after dropping {report.n_bad} bad file(s), {uri} has {len(classes)} usable "
            "class(es); at least two are needed",
            hint="`imgrec data report DATA` lists the bad files",
        )
    split_entries = _assign_splits(good, val_fraction, seed, report)
    missing = sorted(set(classes) - {e.label for e in split_entries["train"]})
    if missing:
        raise DatasetError(
            f"class {missing[0]!r} has no usable image in split 'train' of {uri}",
            hint="add training images for it (bad files were dropped; see the data report)",
        )
    index = {c: i for i, c in enumerate(classes)}
    splits = {
        s: [ImageRecord(e.path, index[e.label], s) for e in sorted(es, key=lambda e: e.rel)]
        for s, es in split_entries.items()
    }
    rows = [(e.rel, e.label, s, digests[e.path]) for s, es in split_entries.items() for e in es]
    report.classes = classes
    report.counts = {
        s: {c: n for c, n in sorted(Counter(e.label for e in es).items())}
        for s, es in split_entries.items()
    }
    report.leakage = _leakage(split_entries, digests)
    if report.leakage:
        report.notes.append(
            f"{len(report.leakage)} identical image(s) appear in more than one split (leakage)"
        )
    report.fingerprint = fingerprint(rows)
    report.seconds = time.perf_counter() - started
    return ClassificationData(uri, fmt_name, classes, splits, report, report.fingerprint)


def _leakage(
    split_entries: dict[str, list[Entry]], digests: dict[str, str]
) -> list[dict[str, Any]]:
    """Identical file contents found in more than one split (BAD-INPUTS row 14)."""
    seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for s, es in split_entries.items():
        for e in es:
            seen[digests[e.path]].append((s, e.path))
    out = []
    for digest, where in sorted(seen.items()):
        if len({s for s, _ in where}) > 1:
            out.append({"sha256": digest, "files": [{"split": s, "path": p} for s, p in where]})
    return out
