"""Drift reports written by ``imgrec monitor report --out DIR`` (issue 9), read for the pages.

Each report folder holds ``summary.json``::

    {"drift": bool, "verdict": str, "window": {"n", "start", "end"}, "model_version",
     "reference",
     "signals": [{"name", "kind", "method", "statistic", "p_value" | "score", "threshold",
                  "drifted"}], "alpha"}

and ``report.html`` (Evidently's). Reports are found under the reports folder at any depth up
to :data:`MAX_DEPTH`, and ordered by the end of their window. A folder whose ``summary.json``
is not such an object is listed with its problem instead of breaking the page.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_DEPTH = 3
MAX_REPORTS = 500


@dataclass
class Signal:
    name: str
    kind: str
    method: str
    value: float | None  # the p-value when the test gives one, else the score
    value_kind: str  # "p_value" | "score"
    threshold: float | None
    drifted: bool


@dataclass
class DriftReport:
    """One report folder (``rel`` is its path below the reports folder)."""

    rel: str
    drift: bool | None
    window_end: str
    window_start: str
    n: int | None
    model_version: str
    signals: list[Signal] = field(default_factory=list)
    has_html: bool = False
    problem: str = ""
    note: str = ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _signal(doc: dict[str, Any]) -> Signal:
    kind = "p_value" if _number(doc.get("p_value")) is not None else "score"
    return Signal(
        name=str(doc.get("name", "?")),
        kind=str(doc.get("kind", "")),
        method=str(doc.get("method", "")),
        value=_number(doc.get(kind)),
        value_kind=kind,
        threshold=_number(doc.get("threshold")),
        drifted=bool(doc.get("drifted")),
    )


def read_report(folder: Path, root: Path) -> DriftReport:
    """Parse one report folder; problems are recorded, not raised."""
    rel = folder.relative_to(root).as_posix() or "."
    report = DriftReport(rel, None, "", "", None, "", has_html=(folder / "report.html").is_file())
    try:
        doc = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        report.problem = f"summary.json unreadable: {exc}"
        return report
    window: dict[str, Any] = doc["window"] if isinstance(doc.get("window"), dict) else {}
    drift = doc.get("drift")
    report.drift = drift if isinstance(drift, bool) else None
    report.window_start = str(window.get("start") or "")
    report.window_end = str(window.get("end") or "")
    n = window.get("n")
    report.n = n if isinstance(n, int) and not isinstance(n, bool) else None
    report.model_version = str(doc.get("model_version") or "")
    signals = doc.get("signals")
    report.signals = [_signal(s) for s in signals if isinstance(s, dict)] if signals else []
    report.note = str(doc.get("verdict") or doc.get("note") or "")
    if "no verdict" in report.note:  # a window too small to test is not a "no drift"
        report.drift = None
    return report


_PARSED: dict[Path, tuple[tuple[int, int], DriftReport]] = {}


def _read_cached(folder: Path, base: Path) -> DriftReport:
    """:func:`read_report`, reused while ``summary.json``'s mtime and size are unchanged."""
    try:
        st = (folder / "summary.json").stat()
        key = (st.st_mtime_ns, st.st_size)
    except OSError:
        return read_report(folder, base)
    hit = _PARSED.get(folder)
    if hit and hit[0] == key:
        hit[1].has_html = (folder / "report.html").is_file()  # may be written after the summary
        return hit[1]
    report = read_report(folder, base)
    _PARSED[folder] = (key, report)
    return report


def find_reports(root: str | os.PathLike[str] | None) -> list[DriftReport]:
    """Every report under ``root``, oldest window first (at most :data:`MAX_REPORTS`)."""
    if not root or not os.path.isdir(root):
        return []
    base = Path(root).resolve()
    found: list[DriftReport] = []
    for dirpath, dirnames, filenames in os.walk(base):
        depth = len(Path(dirpath).relative_to(base).parts)
        if depth >= MAX_DEPTH:
            dirnames[:] = []
        if "summary.json" in filenames:
            found.append(_read_cached(Path(dirpath), base))
        if len(found) >= MAX_REPORTS:
            break
    return sorted(found, key=lambda r: (r.window_end, r.rel))


def signal_series(reports: list[DriftReport]) -> dict[str, list[tuple[DriftReport, Signal]]]:
    """``{signal name: [(report, signal), ...]}`` in window order, for one chart per signal."""
    out: dict[str, list[tuple[DriftReport, Signal]]] = {}
    for report in reports:
        for sig in report.signals:
            out.setdefault(sig.name, []).append((report, sig))
    return out
