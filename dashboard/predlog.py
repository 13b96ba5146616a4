"""An incremental, persisted index of the prediction log (docs/prediction-log.md) by hour.

The log can hold millions of records; pages must not read it. :class:`LogIndex` reads each
file once, from where it stopped last time (a byte offset at the end of the last complete
line), and keeps per-hour aggregates: request count, latency histogram, confidence histogram,
label and model-version counts. The aggregates are saved to a cache file, so a restarted
dashboard reads only what was appended since. A cut last line is left for the next read; a
line that is not a JSON record is counted as bad, never fatal (BAD-INPUTS row 31)::

    index = LogIndex("logs/predictions")
    index.refresh()                      # reads only new bytes
    for hour, bucket in index.hours(last=24):
        print(hour, bucket.n, bucket.latency_quantile(0.95))
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from imgrec import storage

CONF_BINS = 10
# Latency histogram edges in ms (upper bounds); quantiles are read back at bin resolution.
LATENCY_EDGES = (2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000)
CHUNK_BYTES = 8 * 1024 * 1024
INDEX_VERSION = 2
RECENT = 50_000  # latest records kept by fingerprint, to join captures written just after them
Prediction = tuple[str, float | None, str, str]  # label, confidence, time, model version


@dataclass
class HourBucket:
    """Aggregates of the records made in one UTC hour."""

    n: int = 0
    latency_sum: float = 0.0
    latency_hist: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES) + 1))
    confidence_sum: float = 0.0
    confidence_hist: list[int] = field(default_factory=lambda: [0] * CONF_BINS)
    labels: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def add(self, latency: float | None, confidence: float | None, label: str, version: str):
        self.n += 1
        if latency is not None:
            self.latency_sum += latency
            i = 0
            while i < len(LATENCY_EDGES) and latency > LATENCY_EDGES[i]:
                i += 1
            self.latency_hist[i] += 1
        if confidence is not None:
            self.confidence_sum += confidence
            self.confidence_hist[min(CONF_BINS - 1, max(0, int(confidence * CONF_BINS)))] += 1
        self.labels[label] = self.labels.get(label, 0) + 1
        self.versions[version] = self.versions.get(version, 0) + 1

    def merge(self, other: HourBucket) -> None:
        self.n += other.n
        self.latency_sum += other.latency_sum
        self.confidence_sum += other.confidence_sum
        self.latency_hist = [
            a + b for a, b in zip(self.latency_hist, other.latency_hist, strict=True)
        ]
        self.confidence_hist = [
            a + b for a, b in zip(self.confidence_hist, other.confidence_hist, strict=True)
        ]
        for key, value in other.labels.items():
            self.labels[key] = self.labels.get(key, 0) + value
        for key, value in other.versions.items():
            self.versions[key] = self.versions.get(key, 0) + value

    def latency_quantile(self, q: float) -> float | None:
        """Upper edge (ms) of the histogram bin holding quantile ``q``."""
        total = sum(self.latency_hist)
        if not total:
            return None
        seen = 0
        for i, count in enumerate(self.latency_hist):
            seen += count
            if seen >= q * total:
                return float(LATENCY_EDGES[i]) if i < len(LATENCY_EDGES) else float("inf")
        return None

    @property
    def mean_latency(self) -> float | None:
        timed = sum(self.latency_hist)
        return self.latency_sum / timed if timed else None

    @property
    def mean_confidence(self) -> float | None:
        scored = sum(self.confidence_hist)
        return self.confidence_sum / scored if scored else None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> HourBucket:
        return cls(**doc)


@dataclass
class _FileState:
    offset: int = 0
    head: str = ""  # hash of the first bytes: a replaced (rotated) file starts over
    buckets: dict[str, HourBucket] = field(default_factory=dict)
    bad_lines: int = 0


def _head_hash(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha1(fh.read(256)).hexdigest()


def default_cache_dir() -> Path:
    """``$IMGREC_CACHE/dashboard``: where saved log indexes live."""
    return storage.cache_folder("dashboard")


class LogIndex:
    """Hourly aggregates of a local prediction log (a folder of ``*.jsonl`` or one file)."""

    def __init__(
        self,
        source: str | os.PathLike[str],
        cache_dir: Path | None = None,
        interest: Callable[[], set[str]] | None = None,
    ) -> None:
        """``interest()`` names fingerprints (captured or labelled images) whose latest
        prediction is kept in :attr:`known`; the other records are only aggregated."""
        self.source = os.path.abspath(str(source))
        self._interest = interest
        self.known: dict[str, Prediction] = {}
        self._recent: OrderedDict[str, Prediction] = OrderedDict()
        key = hashlib.sha1(self.source.encode()).hexdigest()[:16]
        self.cache_path = (cache_dir or default_cache_dir()) / f"predlog-{key}.json"
        self._files: dict[str, _FileState] = {}
        self._merged: dict[str, HourBucket] | None = None  # all files' hours, until changed
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self.progress: tuple[int, int] = (0, 0)  # bytes read, bytes to read (during a refresh)
        self.last_refresh = 0.0
        self._load_cache()

    # --- files and cache -------------------------------------------------------------
    def files(self) -> list[str]:
        if storage.is_s3(self.source):
            return []
        if os.path.isdir(self.source):
            return sorted(str(p) for p in Path(self.source).glob("*.jsonl"))
        return [self.source] if os.path.isfile(self.source) else []

    def _load_cache(self) -> None:
        try:
            doc = json.loads(self.cache_path.read_text())
        except (OSError, ValueError):
            return
        if doc.get("version") != INDEX_VERSION or doc.get("source") != self.source:
            return
        if self._interest is not None and not doc.get("interest"):
            return  # made without the fingerprints of interest: read the log again
        self.known = {fp: tuple(p) for fp, p in doc.get("known", {}).items()}  # type: ignore[misc]
        for path, st in doc.get("files", {}).items():
            self._files[path] = _FileState(
                offset=int(st["offset"]),
                head=str(st["head"]),
                buckets={h: HourBucket.from_json(b) for h, b in st["buckets"].items()},
                bad_lines=int(st.get("bad_lines", 0)),
            )

    def save(self) -> None:
        """Write the aggregates to the cache file (atomically)."""
        with self._lock:
            doc = {
                "version": INDEX_VERSION,
                "source": self.source,
                "interest": self._interest is not None,
                "known": self.known,
                "files": {
                    path: {
                        "offset": st.offset,
                        "head": st.head,
                        "bad_lines": st.bad_lines,
                        "buckets": {h: b.to_json() for h, b in st.buckets.items()},
                    }
                    for path, st in self._files.items()
                },
            }
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(doc))
        os.replace(tmp, self.cache_path)

    # --- reading ---------------------------------------------------------------------
    def pending_bytes(self) -> int:
        """How many bytes were appended since the last read (a cheap ``stat`` per file)."""
        total = 0
        for path in self.files():
            st = self._files.get(path)
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            total += size - (st.offset if st and size >= st.offset else 0)
        return total

    def refresh(self) -> int:
        """Read what was appended to every file since the last call; returns records read."""
        if not self._refreshing.acquire(blocking=False):
            return 0  # another thread is already reading
        try:
            read = 0
            todo = self.pending_bytes()
            done = 0
            self.progress = (0, todo)
            present = set(self.files())
            wanted = self._interest() if self._interest is not None else None
            self._wanted = wanted
            with self._lock:
                for gone in set(self._files) - present:
                    del self._files[gone]
                    self._merged = None
            for path in sorted(present):
                n, nbytes = self._read_file(path, done, todo)
                read += n
                done += nbytes
            joined = 0
            if wanted:  # captured after their record was read: join from the recent records
                with self._lock:
                    for fp in wanted.difference(self.known).intersection(self._recent):
                        self.known[fp] = self._recent[fp]
                        joined += 1
            self.progress = (todo, todo)
            self.last_refresh = time.time()
            if read or todo or joined:
                self.save()
            return read
        finally:
            self._refreshing.release()

    def _read_file(self, path: str, done: int, todo: int) -> tuple[int, int]:
        try:
            size = os.path.getsize(path)
            head = _head_hash(path) if size else ""
        except OSError:
            return 0, 0
        with self._lock:
            state = self._files.get(path)
            if state is None or size < state.offset or (state.offset and state.head != head):
                state = _FileState(head=head)  # new, truncated or replaced: start over
                self._files[path] = state
                self._merged = None
        if size <= state.offset:
            return 0, 0
        start = state.offset
        read = 0
        with open(path, "rb") as fh:
            fh.seek(start)
            carry = b""
            while True:
                chunk = fh.read(CHUNK_BYTES)
                if not chunk:
                    break
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                carry = data[cut + 1 :]
                fresh: dict[str, HourBucket] = {}
                seen: list[tuple[str, Prediction]] = []
                bad = 0
                for line in data[:cut].split(b"\n"):
                    if not line.strip():
                        continue
                    if not _add_line(line, fresh, seen):
                        bad += 1
                    read += 1
                with self._lock:
                    for hour, bucket in fresh.items():
                        state.buckets.setdefault(hour, HourBucket()).merge(bucket)
                        if self._merged is not None:
                            self._merged.setdefault(hour, HourBucket()).merge(bucket)
                    state.bad_lines += bad
                    self._remember(seen)
                    state.offset = fh.tell() - len(carry)
                    state.head = head
                self.progress = (done + state.offset - start, todo)
        return read, state.offset - start

    def _remember(self, seen: list[tuple[str, Prediction]]) -> None:
        """Keep the latest records by fingerprint; those of interest for good (lock held)."""
        wanted = getattr(self, "_wanted", None)
        recent = self._recent
        for fp, pred in seen:
            recent[fp] = pred
            recent.move_to_end(fp)
            if wanted and fp in wanted:
                self.known[fp] = pred
        while len(recent) > RECENT:
            recent.popitem(last=False)

    # --- queries ---------------------------------------------------------------------
    def buckets(self) -> dict[str, HourBucket]:
        """Every hour's aggregate over all files, keyed ``YYYY-MM-DDTHH`` (kept merged between
        reads; callers must not modify the buckets)."""
        with self._lock:
            if self._merged is None:
                merged: dict[str, HourBucket] = {}
                for st in self._files.values():
                    for hour, bucket in st.buckets.items():
                        merged.setdefault(hour, HourBucket()).merge(bucket)
                self._merged = merged
            return self._merged

    def hours(self, last: int = 24) -> list[tuple[str, HourBucket]]:
        """The ``last`` hours up to the newest logged hour, oldest first (empty hours included)."""
        merged = self.buckets()
        if not merged:
            return []
        newest = max(merged)
        end = time.mktime(time.strptime(newest, "%Y-%m-%dT%H")) - time.timezone
        out = []
        for i in range(last - 1, -1, -1):
            hour = time.strftime("%Y-%m-%dT%H", time.gmtime(end - i * 3600))
            out.append((hour, merged.get(hour, HourBucket())))
        return out

    @property
    def bad_lines(self) -> int:
        with self._lock:
            return sum(st.bad_lines for st in self._files.values())

    @property
    def total(self) -> int:
        with self._lock:
            return sum(b.n for st in self._files.values() for b in st.buckets.values())


def _add_line(
    line: bytes, buckets: dict[str, HourBucket], seen: list[tuple[str, Prediction]]
) -> bool:
    try:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:  # Python's json writes NaN, which orjson refuses
            rec = json.loads(line)
        stamp = rec["time"]
        hour = stamp[:13]
        if not isinstance(stamp, str) or len(hour) != 13 or hour[10] != "T":
            return False
        latency = rec.get("latency_ms")
        confidence = rec.get("confidence")
        label = rec.get("label")
        if label is None and isinstance(rec.get("labels"), list):  # detection records
            label = ",".join(sorted(set(map(str, rec["labels"])))) or "(none)"
        bucket = buckets.get(hour)
        if bucket is None:
            bucket = buckets[hour] = HourBucket()
        label = str(label if label is not None else "(none)")
        version = str(rec.get("model_version", ""))
        bucket.add(_finite(latency), _finite(confidence), label, version)
        fp = rec.get("fingerprint")
        if isinstance(fp, str):
            seen.append((fp, (label, _finite(confidence), stamp, version)))
        return True
    except (KeyError, TypeError, ValueError):  # JSONDecodeError is a ValueError
        return False


def _finite(value: Any) -> float | None:
    """A number from a record, or ``None`` for missing, non-numeric, NaN or infinite values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
