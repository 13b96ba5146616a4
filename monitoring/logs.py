"""Read a prediction log (docs/prediction-log.md) as a stream and select a window of it.

SOURCE is a log folder (the server's ``predictions-YYYYMMDD.jsonl`` files, or a copy of the S3
layout ``YYYY/MM/DD/HHMMSS-<id>.jsonl``), one ``.jsonl`` file, or an ``s3://`` prefix. Files are
read in name order, which is time order in both layouts.

Nothing is loaded whole (BAD-INPUTS row 34):

* ``last=N`` reads the files newest first, each local file backwards from its end, and stops
  once N records are found;
* ``since``/``until`` skip files whose names date them outside the range, binary-search each
  local file for the first line at ``since`` and stop reading a file at ``until``; a window
  larger than ``MAX_WINDOW`` records keeps a uniform (reservoir) sample of them.

Bad lines never stop a report (row 31): empty lines, a cut last line (the server may be
writing it) and other garbage are counted and reported; records of a schema this reader does
not know, and of another model version, are counted and left out (row 32)::

    window = read_window("logs/", WindowSpec(last=500), version="3")
    window.rows[0]["confidence"], window.counts.to_dict()
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from imgrec import storage
from imgrec.errors import ConfigError, EmptyWindowError, NotFoundError

SCHEMAS = ("imgrec.predlog/v1", "imgrec.predlog/v2")  # every log schema this reader reads
INPUT_FIELDS = ("brightness", "contrast", "sharpness", "width", "height")
NUMERIC_FIELDS = (
    "confidence",
    "brightness",
    "contrast",
    "sharpness",
    "width",
    "height",
    "embedding_norm",
)
MAX_WINDOW = 50_000  # larger time windows keep a uniform sample of this many records
PROGRESS_EVERY = 1_000_000  # lines between progress callbacks
_BLOCK = 1 << 16
_DAY_FILE = re.compile(r"predictions-(\d{8})\.jsonl$")
_FLUSH_FILE = re.compile(r"(\d{4})/(\d{2})/(\d{2})/(\d{6})-[^/]*\.jsonl$")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO-8601 time (``2026-11-30T12:00:00Z``; no zone means UTC) or a span back from now
    (``90s``, ``30m``, ``6h``, ``7d``) as an aware UTC ``datetime``."""
    value = text.strip()
    rel = _RELATIVE.match(value)
    if rel:
        base = now or datetime.now(timezone.utc)
        return base - timedelta(**{_UNITS[rel.group(2)]: float(rel.group(1))})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"cannot read the time {text!r}",
            hint="use ISO-8601 (2026-11-30T12:00:00Z) or a span back from now (30m, 6h, 7d)",
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class WindowSpec:
    """Which records to read: the newest ``last``, or those with ``since <= time < until``."""

    last: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.last is not None and (self.since or self.until):
            raise ConfigError("--last cannot be combined with --since/--until", hint="pick one")
        if self.last is not None and self.last < 1:
            raise ConfigError(f"--last must be at least 1, got {self.last}")
        if self.since and self.until and self.since >= self.until:
            raise ConfigError(f"--since {self.since} is not before --until {self.until}")

    @property
    def by_time(self) -> bool:
        return self.last is None


@dataclass
class LogCounts:
    """What was read and what was left out, reported in ``summary.json["log"]``."""

    files: int = 0
    lines: int = 0
    empty: int = 0
    truncated: int = 0  # a cut last line (no newline, not JSON)
    garbage: int = 0  # other lines that are not a JSON object
    invalid: int = 0  # a known schema with a missing or ill-typed field
    unknown_schema: Counter[str] = field(default_factory=Counter)
    other_versions: Counter[str] = field(default_factory=Counter)
    schemas: Counter[str] = field(default_factory=Counter)  # records used, per schema
    in_range: int = 0  # records of the window before any sampling
    nan: Counter[str] = field(default_factory=Counter)  # NaN/inf values per field (excluded)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "lines": self.lines,
            "empty_lines": self.empty,
            "truncated_lines": self.truncated,
            "garbage_lines": self.garbage,
            "invalid_records": self.invalid,
            "unknown_schema": dict(self.unknown_schema),
            "other_versions": dict(self.other_versions),
            "schemas": dict(self.schemas),
            "records_in_window": self.in_range,
            "nan_values": dict(self.nan),
        }


@dataclass
class Window:
    """The selected records, oldest first, as rows of the fields the monitor uses."""

    rows: list[dict[str, Any]]
    counts: LogCounts
    version: str | None

    @property
    def start(self) -> str | None:
        return min((r["time"] for r in self.rows), default=None)

    @property
    def end(self) -> str | None:
        return max((r["time"] for r in self.rows), default=None)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _numbers_into(
    row: dict[str, Any], record: dict[str, Any], names: tuple[str, ...], counts: LogCounts
) -> None:
    for name in names:
        value = _number(record.get(name, math.nan))
        if name in record and not math.isfinite(value):
            counts.nan[name] += 1
            value = math.nan
        row[name] = value
    w, h = row["width"], row["height"]
    row["aspect"] = w / h if h and math.isfinite(w) and math.isfinite(h) else math.nan


def to_row(record: dict[str, Any], counts: LogCounts) -> dict[str, Any] | None:
    """The monitor's view of one record (numbers as floats, NaN where absent or not finite);
    ``None`` when a required field is unusable (time, model_version; a classification
    record's label and confidence; a detection record's labels, scores and box_area)."""
    version, stamp = record.get("model_version"), record.get("time")
    if not isinstance(stamp, str) or version is None:
        return None
    if record.get("task") == "detect":
        return _detection_row(record, str(version), stamp, counts)
    label = record.get("label")
    if not isinstance(label, str):
        return None
    row: dict[str, Any] = {
        "time": stamp, "model_version": str(version), "task": "classify", "label": label
    }  # fmt: skip
    _numbers_into(row, record, NUMERIC_FIELDS, counts)
    emb = record.get("embedding")
    if isinstance(emb, list) and emb and all(isinstance(v, (int, float)) for v in emb):
        vec = [float(v) for v in emb]
        if all(math.isfinite(v) for v in vec):
            row["embedding"] = vec
        else:
            counts.nan["embedding"] += 1
    return row


def _detection_row(
    record: dict[str, Any], version: str, stamp: str, counts: LogCounts
) -> dict[str, Any] | None:
    """A detection record's row: the boxes' ``labels``, ``scores`` and ``box_area`` lists and
    per-image numbers ``boxes`` (count), ``mean_score``, ``max_score``, ``mean_box_area``
    (NaN without boxes) -- the image, not the box, is the unit the tests sample."""
    labels, scores, areas = record.get("labels"), record.get("scores"), record.get("box_area")
    lists = (labels, scores, areas)
    if not all(isinstance(v, list) for v in lists) or not len(labels) == len(scores) == len(areas):  # type: ignore[arg-type]
        return None
    assert isinstance(labels, list) and isinstance(scores, list) and isinstance(areas, list)
    if not all(isinstance(v, str) for v in labels):
        return None
    score_v, area_v = [_number(v) for v in scores], [_number(v) for v in areas]
    for name, values in (("scores", score_v), ("box_area", area_v)):
        if not all(math.isfinite(v) for v in values):
            counts.nan[name] += 1
            return None
    row: dict[str, Any] = {
        "time": stamp, "model_version": version, "task": "detect", "labels": labels,
        "scores": score_v, "box_area": area_v, "boxes": float(len(labels)),
        "mean_score": sum(score_v) / len(score_v) if score_v else math.nan,
        "max_score": max(score_v, default=math.nan),
        "mean_box_area": sum(area_v) / len(area_v) if area_v else math.nan,
        "top_label": labels[0] if labels else "(none)",
    }  # fmt: skip
    _numbers_into(row, record, INPUT_FIELDS, counts)
    return row


def parse_line(raw: bytes, terminated: bool, counts: LogCounts) -> dict[str, Any] | None:
    """One log line -> a row, or ``None`` (counted under the reason it was left out)."""
    text = raw.strip()
    if not text:
        counts.empty += 1
        return None
    try:
        record = json.loads(text)
    except ValueError:
        if terminated:
            counts.garbage += 1
        else:
            counts.truncated += 1
        return None
    if not isinstance(record, dict):
        counts.garbage += 1
        return None
    schema = record.get("schema")
    if schema not in SCHEMAS:
        counts.unknown_schema[str(schema)] += 1
        return None
    row = to_row(record, counts)
    if row is None:
        counts.invalid += 1
        return None
    row["schema"] = schema
    return row


# --- files --------------------------------------------------------------------------------
def log_files(source: str) -> list[str]:
    """The ``.jsonl`` files of SOURCE in time (name) order; ``NotFoundError`` when none."""
    if not storage.is_s3(source) and Path(source).is_file():
        return [source]
    if not storage.is_s3(source) and not Path(source).exists():
        raise NotFoundError(
            f"prediction log {source} does not exist",
            hint="pass the folder, .jsonl file or s3:// prefix given to `imgrec serve "
            "--prediction-log`",
        )
    files = storage.list_files(source, suffixes=[".jsonl"])
    if not files:
        raise EmptyWindowError(
            f"no records in window: {source} holds no .jsonl prediction log files",
            hint="serve with `imgrec serve MODEL --prediction-log DEST` and send traffic first",
        )
    return sorted(files)


def file_time_range(uri: str) -> tuple[datetime, datetime] | None:
    """The span a log file's name dates it to (with an hour of slack for queued records)."""
    slack = timedelta(hours=1)
    day = _DAY_FILE.search(uri)
    if day:
        start = datetime.strptime(day.group(1), "%Y%m%d").replace(tzinfo=timezone.utc)
        return start - slack, start + timedelta(days=1) + slack
    flush = _FLUSH_FILE.search(uri.replace("\\", "/"))
    if flush:
        stamp = datetime.strptime("".join(flush.groups()), "%Y%m%d%H%M%S")
        at = stamp.replace(tzinfo=timezone.utc)
        return at - slack, at + slack
    return None


def _lines_forward(uri: str, start: int = 0) -> Iterator[tuple[bytes, bool]]:
    """``(line, ends_with_newline)`` from byte ``start`` (local) or the whole object (S3)."""
    with storage.open_read(uri) as fh:
        if start:
            fh.seek(start)
        for line in fh:
            yield line, line.endswith(b"\n")


def _lines_backward(uri: str) -> Iterator[tuple[bytes, bool]]:
    """``(line, ends_with_newline)`` from the last line to the first, reading blocks from the
    end (local files) so the newest records cost nothing more than themselves."""
    if storage.is_s3(uri):
        lines = list(_lines_forward(uri))
        yield from reversed(lines)
        return
    with open(uri, "rb") as fh:
        pos = fh.seek(0, 2)
        tail = b""
        newest = True
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            parts = (fh.read(step) + tail).split(b"\n")
            tail = parts[0]
            for i in range(len(parts) - 1, 0, -1):
                if newest:
                    newest = False
                    if parts[i]:  # bytes after the last newline: an unterminated last line
                        yield parts[i], False
                    continue
                yield parts[i], True
        if tail or not newest:
            yield tail, not newest


def _probe_time(fh: Any, pos: int) -> datetime | None:
    """The time of the first record after byte ``pos`` (blank runs skipped block-wise)."""
    fh.seek(pos)
    if pos:
        fh.readline()  # the rest of a line cut by the seek
    while True:  # skip blank lines a block at a time
        start = fh.tell()
        block = fh.read(_BLOCK)
        if not block:
            return None
        rest = block.lstrip(b"\r\n \t")
        if rest:
            fh.seek(start + len(block) - len(rest))
            break
    for _ in range(64):  # the first line with a readable time
        line = fh.readline()
        if not line:
            return None
        try:
            return parse_time(str(json.loads(line)["time"]))
        except (ValueError, KeyError, TypeError, ConfigError):
            continue
    return None


def _seek_since(uri: str, since: datetime) -> int:
    """Byte offset of a line at or shortly before the first record with ``time >= since``
    (binary search; records are appended in time order up to the writer's batching)."""
    target = since - timedelta(minutes=5)  # slack for records queued out of order
    with open(uri, "rb") as fh:
        lo, hi = 0, fh.seek(0, 2)
        while hi - lo > _BLOCK:
            mid = (lo + hi) // 2
            stamp = _probe_time(fh, mid)
            if stamp is not None and stamp < target:
                lo = mid
            else:
                hi = mid
        if lo:
            fh.seek(lo)
            fh.readline()
            return fh.tell()
        return 0


# --- windows ------------------------------------------------------------------------------
def read_window(
    source: str,
    spec: WindowSpec,
    *,
    version: str | None,
    on_progress: Callable[[int], None] | None = None,
    seed: int = 0,
) -> Window:
    """Stream SOURCE and return the window ``spec`` selects, keeping only records of model
    ``version`` (``None``: every version). Raises ``EmptyWindowError`` when nothing is left."""
    files = log_files(source)
    counts = LogCounts()
    rows: list[dict[str, Any]] = []

    def lines_read() -> None:
        counts.lines += 1
        if on_progress and counts.lines % PROGRESS_EVERY == 0:
            on_progress(counts.lines)

    def keep(row: dict[str, Any] | None) -> bool:
        if row is None:
            return False
        if version is not None and row["model_version"] != version:
            counts.other_versions[row["model_version"]] += 1
            return False
        return True

    if spec.last is not None:
        for uri in reversed(files):
            counts.files += 1
            for raw, terminated in _lines_backward(uri):
                lines_read()
                row = parse_line(raw, terminated, counts)
                if keep(row):
                    assert row is not None
                    rows.append(row)
                    if len(rows) >= spec.last:
                        break
            if len(rows) >= spec.last:
                break
        rows.reverse()
        counts.in_range = len(rows)
    else:
        rng = random.Random(seed)
        for uri in files:
            span = file_time_range(uri)
            if span and (
                (spec.since and span[1] <= spec.since) or (spec.until and span[0] >= spec.until)
            ):
                continue
            counts.files += 1
            start = 0
            if spec.since and not storage.is_s3(uri):
                start = _seek_since(uri, spec.since)
            for raw, terminated in _lines_forward(uri, start):
                lines_read()
                row = parse_line(raw, terminated, counts)
                if row is None:
                    continue
                try:
                    stamp = parse_time(row["time"])
                except ConfigError:
                    counts.invalid += 1
                    continue
                if spec.since and stamp < spec.since:
                    continue
                if spec.until and stamp >= spec.until:
                    if stamp >= spec.until + timedelta(minutes=5):
                        break  # past the window (with slack for queued records)
                    continue
                if not keep(row):
                    continue
                counts.in_range += 1
                if len(rows) < MAX_WINDOW:
                    rows.append(row)
                else:  # reservoir sampling: every record of the range equally likely kept
                    j = rng.randrange(counts.in_range)
                    if j < MAX_WINDOW:
                        rows[j] = row
        rows.sort(key=lambda r: r["time"])
    for row in rows:
        counts.schemas[row["schema"]] += 1
    if not rows:
        raise EmptyWindowError(
            f"no records in window: {_describe_empty(source, spec, version, counts)}",
            hint="widen the window (--last / --since / --until), or check --model-version "
            "and the reference's model version",
        )
    return Window(rows=rows, counts=counts, version=version)


def _describe_empty(source: str, spec: WindowSpec, version: str | None, counts: LogCounts) -> str:
    parts = [f"{counts.lines} lines read from {counts.files} file(s) of {source}"]
    if spec.by_time:
        parts.append(f"time range {spec.since or '-inf'} .. {spec.until or 'now'}")
    if counts.other_versions:
        found = ", ".join(f"{v} ({n})" for v, n in counts.other_versions.most_common(5))
        parts.append(f"records of other model versions than {version}: {found}")
    bad = counts.garbage + counts.truncated + counts.invalid + sum(counts.unknown_schema.values())
    if bad:
        parts.append(f"{bad} unusable lines")
    return "; ".join(parts)
