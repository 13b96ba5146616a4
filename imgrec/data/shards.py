"""Datasets as WebDataset tar shards on a local folder or ``s3://``: written once, streamed.

A dataset too big for one disk is stored as tar files of ~1000 images each (the WebDataset
layout: the members of a sample share a key, ``000042.png`` holds the image and ``000042.cls``
its class index), plus an index ``shards.json`` with the classes, the shards of each split and
their image counts. Training streams the shards it is given sequentially (one GET per shard)
and never needs the whole dataset locally; ``webdataset``/``wids``, ``torchdata`` and plain
``tar`` read the same files::

    samples = [Sample(functools.partial(storage.read_bytes, path), label, "train"), ...]
    index = write_shards(samples, "s3://bucket/imagenet/shards", classes=names)
    index = read_index("s3://bucket/imagenet/shards")        # ShardIndex
    for key, image_bytes, label in read_shard(index.shards("train")[0].uri): ...

:class:`ShardCache` keeps a bounded local copy of shards already read (LRU by bytes), so a
later epoch can read them from disk; with a limit of 0 every shard streams from S3 each time.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import random
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from imgrec import storage
from imgrec.data.dataset import ClassificationData, DataReport
from imgrec.data.images import sniff_format
from imgrec.errors import DatasetError

INDEX_FILE = "shards.json"
FORMAT = "webdataset"
SHARD_SAMPLES = 1000  # images per shard: ~100 MB of 100 kB JPEGs, one GET each
LABEL_EXT = "cls"
_EXT = {"jpeg": "jpg", "png": "png", "webp": "webp", "bmp": "bmp", "gif": "gif", "tiff": "tif"}


@dataclass(frozen=True)
class Shard:
    """One tar file: its URI, how many samples it holds and its size in bytes."""

    uri: str
    count: int
    bytes: int


@dataclass
class ShardIndex:
    """The content of ``shards.json``: classes, shards per split, fingerprint, image stats."""

    uri: str
    classes: list[str]
    splits: dict[str, list[Shard]]
    fingerprint: str = ""
    class_counts: dict[str, list[int]] = field(default_factory=dict)  # split -> per class
    image_stats: dict[str, Any] = field(default_factory=dict)  # median size, grayscale

    def shards(self, split: str) -> list[Shard]:
        """The shards of ``split`` (``[]`` when the split has none)."""
        return list(self.splits.get(split, []))

    def counts(self) -> dict[str, int]:
        """Images per split."""
        return {s: sum(sh.count for sh in shards) for s, shards in self.splits.items()}

    @property
    def report(self) -> DataReport:
        """A data report from the index (the images were checked when the shards were written)."""
        counts = {
            split: dict(zip(self.classes, per_class, strict=True))
            for split, per_class in self.class_counts.items()
        }
        return DataReport(
            uri=self.uri,
            format=FORMAT,
            classes=list(self.classes),
            counts=counts,
            n_files=sum(self.counts().values()),
            fingerprint=self.fingerprint,
            scanned=False,
            notes=[f"{len(v)} {k} shards" for k, v in self.splits.items()],
        )


def is_shards(uri: Any) -> bool:
    """True when ``uri`` is a folder or ``s3://`` prefix holding a ``shards.json`` index."""
    if not isinstance(uri, str | os.PathLike):
        return False
    path = os.fspath(uri)
    if path.endswith(INDEX_FILE):
        return storage.exists(path)
    return not path.endswith((".csv", ".yaml")) and storage.exists(storage.join(path, INDEX_FILE))


def read_index(uri: str) -> ShardIndex:
    """The :class:`ShardIndex` of the shards at ``uri`` (the folder, or its ``shards.json``)."""
    root = storage.parent(uri) if uri.endswith(INDEX_FILE) else uri.rstrip("/")
    try:
        raw = json.loads(storage.read_text(storage.join(root, INDEX_FILE)))
        splits = {
            split: [Shard(storage.join(root, s["name"]), int(s["count"]), int(s["bytes"]))
                    for s in shards]
            for split, shards in raw["splits"].items()
        }  # fmt: skip
        return ShardIndex(
            uri=root,
            classes=list(raw["classes"]),
            splits=splits,
            fingerprint=str(raw.get("fingerprint", "")),
            class_counts={k: list(v) for k, v in raw.get("class_counts", {}).items()},
            image_stats=dict(raw.get("image_stats", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(
            f"{root}/{INDEX_FILE} is not a shard index: {exc}",
            hint="write the shards with `imgrec data shards` or the preprocess step",
        ) from exc


@dataclass(frozen=True)
class Sample:
    """One image to store: ``read()`` returns its encoded bytes (called when its shard is
    written, so only one shard's images are in memory); ``label`` is a class index."""

    read: Callable[[], bytes]
    label: int
    split: str


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # reproducible shards
    tar.addfile(info, io.BytesIO(data))


def _tar(samples: Sequence[Sample], first: int, pool: ThreadPoolExecutor) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i, (sample, data) in enumerate(zip(samples, pool.map(lambda s: s.read(), samples),
                                               strict=True), first):  # fmt: skip
            key = f"{i:08d}"
            _add(tar, f"{key}.{_EXT.get(sniff_format(data), 'img')}", data)
            _add(tar, f"{key}.{LABEL_EXT}", str(sample.label).encode())
    return buf.getvalue()


def write_shards(
    samples: Iterable[Sample],
    out: str,
    *,
    classes: list[str],
    shard_samples: int = SHARD_SAMPLES,
    fingerprint: str = "",
    image_stats: dict[str, Any] | None = None,
    seed: int = 0,
    workers: int = 4,
) -> ShardIndex:
    """Write ``samples`` as ``<split>-NNNNNN.tar`` shards of ``shard_samples`` images under
    ``out`` (folder or ``s3://`` prefix) and the index ``shards.json``; returns the index.

    Each split is shuffled (seeded) before it is cut, so every shard mixes the classes (a
    reader that shuffles shards and a small buffer then sees mixed batches). ``workers``
    threads read (decode, resize) a shard's images at once.
    """
    if shard_samples < 1:
        raise DatasetError(
            f"shard_samples={shard_samples} must be at least 1", hint="e.g. 1000 images"
        )
    by_split: dict[str, list[Sample]] = {}
    for sample in samples:
        by_split.setdefault(sample.split, []).append(sample)
    entries: dict[str, list[dict[str, Any]]] = {}
    class_counts: dict[str, list[int]] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for split, items in sorted(by_split.items()):
            random.Random(f"{seed}-{split}").shuffle(items)
            entries[split] = []
            for start in range(0, len(items), shard_samples):
                name = f"{split}-{start // shard_samples:06d}.tar"
                part = items[start : start + shard_samples]
                data = _tar(part, start, pool)
                storage.write_bytes(storage.join(out, name), data)
                entries[split].append({"name": name, "count": len(part), "bytes": len(data)})
            counts = [0] * len(classes)
            for sample in items:
                counts[sample.label] += 1
            class_counts[split] = counts
    index = {
        "format": FORMAT,
        "version": 1,
        "classes": list(classes),
        "splits": entries,
        "class_counts": class_counts,
        "fingerprint": fingerprint,
        "image_stats": dict(image_stats or {}),
    }
    storage.write_text(storage.join(out, INDEX_FILE), json.dumps(index, indent=1) + "\n")
    return read_index(out)


def read_shard(source: str | IO[bytes]) -> Iterator[tuple[str, bytes, int]]:
    """``(key, image bytes, label)`` of each sample of one shard, read sequentially (a path,
    an ``s3://`` URI streamed without a local copy, or an open binary stream)."""
    with contextlib.ExitStack() as stack:
        stream = (
            source
            if not isinstance(source, str)
            else stack.enter_context(storage.open_stream(source))
        )
        where = source if isinstance(source, str) else "shard"
        current: dict[str, Any] = {}
        key = ""
        try:
            # 1 MB reads: the default 10 kB record reads cost one HTTP read call each on S3
            tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20))
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name.rsplit("/", 1)[-1]
                stem, _, ext = name.partition(".")
                if stem != key:
                    if "image" in current and "label" in current:
                        yield key, current["image"], current["label"]
                    key, current = stem, {}
                fh = tar.extractfile(member)
                assert fh is not None
                data = fh.read()
                if ext == LABEL_EXT:
                    current["label"] = int(data)
                else:
                    current["image"] = data
        except (tarfile.TarError, ValueError) as exc:
            raise DatasetError(
                f"{where} is not a readable shard: {exc}", hint="rewrite the shards"
            ) from exc
        if "image" in current and "label" in current:
            yield key, current["image"], current["label"]


class ShardCache:
    """Local copies of shards read from S3, at most ``limit_bytes`` on disk (least recently
    used evicted first); ``limit_bytes=0`` streams every read and stores nothing.

    Several DataLoader workers may share the folder: each makes room before it downloads,
    so the folder holds at most ``limit_bytes`` plus the shards being downloaded at once.
    """

    def __init__(self, folder: str | os.PathLike[str], limit_bytes: int) -> None:
        self.folder, self.limit = Path(folder), int(limit_bytes)

    def __repr__(self) -> str:
        return f"ShardCache({str(self.folder)!r}, limit_bytes={self.limit})"

    def _files(self) -> list[Path]:
        return [p for p in self.folder.glob("*") if p.is_file()]

    def _make_room(self, need: int) -> None:
        files = []
        for path in self._files():
            with contextlib.suppress(FileNotFoundError):  # another worker evicted it
                files.append((path.stat().st_atime_ns, path.stat().st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total + need <= self.limit:
                break
            path.unlink(missing_ok=True)
            total -= size

    def open(self, shard: Shard) -> contextlib.AbstractContextManager[IO[bytes]]:
        """The shard's bytes: a cached copy, a fresh download kept when it fits the limit, or
        the S3 stream itself (local shards are read in place)."""
        if not storage.is_s3(shard.uri) or self.limit <= 0 or shard.bytes > self.limit:
            return storage.open_stream(shard.uri)
        bucket, key = storage.split_s3(shard.uri)
        local = self.folder / f"{bucket}-{key.replace('/', '-')}"
        if local.is_file() and local.stat().st_size == shard.bytes:
            os.utime(local)  # recently used
            return open(local, "rb")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._make_room(shard.bytes)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".part")
        with os.fdopen(fd, "wb") as out, storage.open_stream(shard.uri) as body:
            while chunk := body.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, local)
        return open(local, "rb")


def shard_dataset(
    data: ClassificationData,
    out: str,
    *,
    shard_samples: int = SHARD_SAMPLES,
    image_stats: dict[str, Any] | None = None,
    workers: int = 4,
) -> ShardIndex:
    """Write a loaded dataset's images (their original bytes) as shards under ``out``::

    index = shard_dataset(load_classification_data("data/photos"), "s3://b/photos-shards")
    """
    samples = [
        Sample(read=functools.partial(storage.read_bytes, r.path), label=r.label, split=split)
        for split, records in data.splits.items()
        for r in records
    ]
    return write_shards(
        samples, out, classes=list(data.classes), shard_samples=shard_samples,
        fingerprint=data.fingerprint, image_stats=image_stats, workers=workers,
    )  # fmt: skip
