"""Reading prediction logs: streaming, window selection, and every bad line counted (rows 31-34)."""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path

import pytest

from imgrec.errors import ConfigError, EmptyWindowError, NotFoundError
from imgrec.monitoring.logs import (
    WindowSpec,
    _lines_backward,
    _lines_forward,
    parse_time,
    read_window,
)


def record(i: int, version: str = "3", **extra: object) -> dict:
    return {
        "schema": "imgrec.predlog/v1",
        "time": f"2026-11-30T12:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z",
        "model_version": version,
        "label": "cat" if i % 3 else "dog",
        "class_id": 0,
        "confidence": 0.5 + (i % 7) / 20,
        "brightness": 0.4,
        "embedding": [0.1] * 8,
        **extra,
    }


def write(path: Path, lines: list[str], *, end: str = "\n") -> Path:
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


@pytest.mark.parametrize("end", ["\n", "", "\n\n"])
def test_backward_reading_is_forward_reversed(tmp_path: Path, end: str) -> None:
    long = "x" * 200_000  # longer than a read block
    path = write(tmp_path / "a.jsonl", ["a", "", long, "b", "c"], end=end)
    assert list(_lines_backward(str(path))) == [
        (line.rstrip(b"\n"), terminated)
        for line, terminated in reversed(list(_lines_forward(str(path))))
    ]


def test_bad_lines_are_counted_and_the_rest_used(tmp_path: Path) -> None:
    good = [json.dumps(record(i)) for i in range(40)]
    lines = [
        *good[:10],
        "",
        "not json at all",
        "[1, 2]",
        json.dumps({"schema": "imgrec.predlog/v9", "label": "x"}),
        json.dumps({"schema": "imgrec.predlog/v1", "label": 3}),  # known schema, bad field
        json.dumps(record(99, version="2")),
        *good[10:],
    ]
    path = write(tmp_path / "log.jsonl", lines, end='\n{"schema": "imgrec.pre')  # cut last line
    for spec in (WindowSpec(last=1000), WindowSpec(since=parse_time("2026-11-30T00:00:00Z"))):
        window = read_window(str(path), spec, version="3")
        counts = window.counts.to_dict()
        assert len(window.rows) == 40
        assert counts["empty_lines"] == 1
        assert counts["truncated_lines"] == 1
        assert counts["garbage_lines"] == 2
        assert counts["unknown_schema"] == {"imgrec.predlog/v9": 1}
        assert counts["invalid_records"] == 1
        assert counts["other_versions"] == {"2": 1}
        assert counts["schemas"] == {"imgrec.predlog/v1": 40}
        assert [r["time"] for r in window.rows] == sorted(r["time"] for r in window.rows)


def test_last_n_reads_newest_records_across_files(tmp_path: Path) -> None:
    write(tmp_path / "predictions-20261129.jsonl", [json.dumps(record(i)) for i in range(30)])
    write(tmp_path / "predictions-20261130.jsonl", [json.dumps(record(i)) for i in range(30, 50)])
    window = read_window(str(tmp_path), WindowSpec(last=25), version="3")
    assert [r["confidence"] for r in window.rows] == [
        record(i)["confidence"] for i in range(25, 50)
    ]
    assert window.counts.files == 2 and window.counts.lines == 25


def test_time_window_matches_a_plain_filter(tmp_path: Path) -> None:
    recs = [record(i) for i in range(3000)]  # about 300 kB: the binary search takes steps
    path = write(tmp_path / "log.jsonl", [json.dumps(r) for r in recs])
    since, until = "2026-11-30T12:20:00Z", "2026-11-30T12:30:00Z"
    window = read_window(
        str(path), WindowSpec(since=parse_time(since), until=parse_time(until)), version="3"
    )
    expected = [r for r in recs if parse_time(since) <= parse_time(r["time"]) < parse_time(until)]
    assert [r["time"] for r in window.rows] == sorted(r["time"] for r in expected)
    assert window.counts.lines < 3000  # the search skipped the start of the file


def test_nan_and_inf_are_counted_and_excluded(tmp_path: Path) -> None:
    lines = [json.dumps(record(i, brightness=float("nan") if i < 5 else 0.4)) for i in range(20)]
    lines.append(json.dumps(record(20, confidence=float("inf"))))
    lines.append(json.dumps(record(21, embedding=[float("nan")] * 8)))
    window = read_window(str(write(tmp_path / "l.jsonl", lines)), WindowSpec(last=100), version="3")
    assert window.counts.nan == {"brightness": 5, "confidence": 1, "embedding": 1}
    assert sum(math.isnan(r["brightness"]) for r in window.rows) == 5
    assert sum("embedding" not in r for r in window.rows) == 1


def test_v1_and_v2_records_classification_and_detection(tmp_path: Path) -> None:
    """A log that mixes schemas (a server upgraded mid-day): v1 and v2 classification records
    and v2 detection records are read, each by its own schema; v3 is counted and left out."""
    detection = {"schema": "imgrec.predlog/v2", "task": "detect", "model_version": "3",
                 "brightness": 0.5, "width": 640, "height": 480}  # fmt: skip
    lines = [
        json.dumps(record(0)),
        json.dumps({**record(1), "schema": "imgrec.predlog/v2", "task": "classify"}),
        json.dumps(
            {
                **detection,
                "time": record(2)["time"],
                "boxes": 2,
                "labels": ["7", "3"],
                "scores": [0.9, 0.5],
                "box_area": [0.01, 0.03],
            }
        ),
        json.dumps(
            {
                **detection,
                "time": record(3)["time"],
                "boxes": 0,
                "labels": [],
                "scores": [],
                "box_area": [],
            }
        ),
        json.dumps(
            {
                **detection,
                "time": record(4)["time"],
                "labels": ["7"],
                "scores": [0.9],
                "box_area": [0.1, 0.2],
            }
        ),  # lists of different lengths
        json.dumps(
            {
                **detection,
                "time": record(5)["time"],
                "labels": ["7"],
                "scores": [float("nan")],
                "box_area": [0.1],
            }
        ),
        json.dumps({**record(6), "schema": "imgrec.predlog/v3"}),
    ]
    window = read_window(str(write(tmp_path / "l.jsonl", lines)), WindowSpec(last=10), version="3")
    assert window.counts.schemas == {"imgrec.predlog/v1": 1, "imgrec.predlog/v2": 3}
    assert window.counts.unknown_schema == {"imgrec.predlog/v3": 1}
    assert window.counts.invalid == 2 and window.counts.nan == {"scores": 1}
    v1, v2, det, empty = window.rows
    assert v1["task"] == v2["task"] == "classify" and v1["label"] == "dog"
    assert det["task"] == "detect" and det["labels"] == ["7", "3"] and det["boxes"] == 2
    assert det["mean_score"] == pytest.approx(0.7) and det["max_score"] == 0.9
    assert det["mean_box_area"] == pytest.approx(0.02) and det["top_label"] == "7"
    assert det["aspect"] == pytest.approx(640 / 480) and det["brightness"] == 0.5
    assert empty["boxes"] == 0 and math.isnan(empty["mean_score"])
    assert empty["top_label"] == "(none)"


def test_empty_missing_and_other_version_logs(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        read_window(str(tmp_path / "nope"), WindowSpec(last=10), version="3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyWindowError, match="no records in window"):
        read_window(str(tmp_path / "empty"), WindowSpec(last=10), version="3")
    path = write(tmp_path / "empty.jsonl", [""], end="")
    with pytest.raises(EmptyWindowError, match="no records in window"):
        read_window(str(path), WindowSpec(last=10), version="3")
    other = write(tmp_path / "other.jsonl", [json.dumps(record(i, version="2")) for i in range(5)])
    with pytest.raises(EmptyWindowError, match=r"other model versions than 3: 2 \(5\)"):
        read_window(str(other), WindowSpec(last=10), version="3")


def test_bad_window_options() -> None:
    with pytest.raises(ConfigError):
        WindowSpec(last=5, since=parse_time("1h"))
    with pytest.raises(ConfigError):
        WindowSpec(
            since=parse_time("2026-11-30T12:00:00Z"), until=parse_time("2026-11-30T11:00:00Z")
        )
    with pytest.raises(ConfigError, match="cannot read the time"):
        parse_time("yesterday")


def test_ten_million_lines_stream_with_bounded_memory(tmp_path: Path) -> None:
    """A 10,000,000-line log (mostly blank keep-alive lines, 1,000 records at the end):
    ``--last`` reads only the tail, a time window binary-searches to it, memory stays small."""
    path = tmp_path / "big.jsonl"
    with path.open("wb") as fh:
        blank = b"\n" * 1_000_000
        for _ in range(10):
            fh.write(blank)
        fh.seek(-1000, 2)  # replace the last 1,000 blank lines by records (line count kept)
        fh.truncate()
        fh.write("".join(json.dumps(record(i)) + "\n" for i in range(1000)).encode())
    with path.open("rb") as fh:
        assert (
            sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) == 10_000_000
        )
    tracemalloc.start()
    try:
        last = read_window(str(path), WindowSpec(last=500), version="3")
        timed = read_window(
            str(path), WindowSpec(since=parse_time("2026-11-30T12:10:00Z")), version="3"
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(last.rows) == 500 and last.counts.lines == 500
    assert len(timed.rows) == 1000 - 600 and timed.counts.lines < 100_000
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"
