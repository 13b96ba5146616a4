"""Pipeline runs written by ``imgrec pipeline run --local`` (imgrec/mlops/local_run.py), and
runs submitted to Kubeflow Pipelines (``imgrec pipeline submit``, recorded in the same folder by
``pipelines.submit.record_submission``: ``summary.json`` with a ``kfp`` block of host and run id).

A run folder holds ``summary.json`` (status, gate, metrics, registered version, reports),
``pipeline.log`` (kfp's local runner log: one ``Executing task`` and one ``finished with
status`` line per step, with times) and one folder per step with its artifacts. Runs still in
progress have no ``summary.json`` yet and are listed as running::

    runs = list_runs("runs/pipeline")
    steps = run_steps(runs[0])            # [Step("ingest", "SUCCESS", 2.8), ...]
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from imgrec.errors import NotFoundError

_STAMP = re.compile(r"^\d{8}-\d{6}-\d{6}$")
_START = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - Executing task '([\w-]+)'")
_END = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - \w+ - Task '([\w-]+)' finished with status (\w+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
MAX_RUNS = 200
# Report files a run leaves, per step folder: (relative path, what it is).
REPORT_FILES = (
    ("ingest/summary", "dataset summary"),
    ("validate/report.files/validation.html", "validation report"),
    ("train/report", "training report"),
    ("evaluate/report.files/report.html", "evaluation report"),
    ("gate/decision.files/gate.md", "gate decision"),
    ("register/summary", "registration"),
)
# Figures of the evaluate step (matplotlib PNGs), shown on the model and run pages.
FIGURES = (
    "confusion_matrix",
    "per_class",
    "reliability",
    "pr_curve",
    "roc_curve",
    "worst_mistakes",
)


@dataclass
class Step:
    name: str
    status: str  # SUCCESS | FAILURE | RUNNING | SKIPPED
    seconds: float | None


@dataclass
class Run:
    """One run folder; ``summary`` is ``summary.json`` (empty while the run is going)."""

    id: str
    path: Path
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def started(self) -> str:
        try:
            return datetime.strptime(self.id, "%Y%m%d-%H%M%S-%f").strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            return ""

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "running")) if self.summary else "running"

    @property
    def registered_version(self) -> int | None:
        v = self.summary.get("registered_version")
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else None

    @property
    def kfp(self) -> dict[str, Any]:
        """The Kubeflow Pipelines record (``host``, ``run_id``, ``state``...), or ``{}``."""
        doc = self.summary.get("kfp")
        return doc if isinstance(doc, dict) and doc.get("host") and doc.get("run_id") else {}

    @property
    def kfp_url(self) -> str:
        """The run in the KFP UI, ``{host}/#/runs/details/{run_id}``; empty for local runs (and
        for a host that is not http(s), which a link must never carry)."""
        host = str(self.kfp.get("host", "")).rstrip("/")
        if urlsplit(host).scheme not in ("http", "https"):
            return ""
        return f"{host}/#/runs/details/{quote(str(self.kfp['run_id']), safe='')}"

    def task_dir(self, task: str) -> Path | None:
        """The folder of step ``task`` (inside kfp's per-pipeline folder)."""
        for sub in self.path.iterdir():
            if sub.is_dir() and (sub / task).is_dir():
                return sub / task
        return None


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def list_runs(root: str | os.PathLike[str] | None) -> list[Run]:
    """Runs under ``root``, newest first (at most :data:`MAX_RUNS`)."""
    if not root or not os.path.isdir(root):
        return []
    names = sorted((n for n in os.listdir(root) if _STAMP.match(n)), reverse=True)[:MAX_RUNS]
    return [Run(n, Path(root) / n, _read_summary(Path(root) / n)) for n in names]


def get_run(root: str | os.PathLike[str] | None, run_id: str) -> Run:
    """The run ``run_id``; ``NotFoundError`` for unknown (or path-like) ids."""
    if not root or not _STAMP.match(run_id) or not (Path(root) / run_id).is_dir():
        raise NotFoundError(f"no pipeline run {run_id!r}", hint="see the Runs page for the list")
    return Run(run_id, Path(root) / run_id, _read_summary(Path(root) / run_id))


def _seconds(start: str, end: str) -> float:
    fmt = "%H:%M:%S.%f"
    delta = datetime.strptime(end, fmt) - datetime.strptime(start, fmt)
    if delta < timedelta(0):  # crossed midnight
        delta += timedelta(days=1)
    return round(delta.total_seconds(), 1)


def run_steps(run: Run) -> list[Step]:
    """Each step's status and duration, from the run's log (in execution order)."""
    log = run.path / "pipeline.log"
    started: dict[str, str] = {}
    steps: dict[str, Step] = {}
    try:
        with open(log, encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                if "task" not in raw.lower() or raw.startswith(" "):
                    continue
                line = _ANSI.sub("", raw)
                if m := _START.match(line):
                    started[m[2]] = m[1]
                    steps[m[2]] = Step(m[2], "RUNNING", None)
                elif m := _END.match(line):
                    secs = _seconds(started[m[2]], m[1]) if m[2] in started else None
                    steps[m[2]] = Step(m[2], m[3], secs)
    except OSError:
        return []
    out = list(steps.values())
    if run.summary:  # finished: a step still "running" never finished
        out = [Step(s.name, "FAILURE", s.seconds) if s.status == "RUNNING" else s for s in out]
    return out


def run_reports(run: Run) -> list[tuple[str, str]]:
    """``(step/relative path, label)`` of the report files the run left, for links."""
    found = []
    for rel, label in REPORT_FILES:
        step, _, rest = rel.partition("/")
        folder = run.task_dir(step)
        if folder is not None and (folder / rest).is_file():
            found.append((rel, label))
    return found


def run_figures(run: Run) -> list[str]:
    """Relative paths (for :func:`run_file`) of the evaluate step's figures."""
    folder = run.task_dir("evaluate")
    if folder is None:
        return []
    figures = folder / "report.files" / "figures"
    known = [f"{name}.png" for name in FIGURES if (figures / f"{name}.png").is_file()]
    extra = sorted(p.name for p in figures.glob("*.png") if p.name not in known)
    return [f"evaluate/report.files/figures/{name}" for name in known + extra]


def run_file(run: Run, rel: str) -> Path:
    """A file inside the run (``step/path``); anything outside the run is refused."""
    step, _, rest = rel.partition("/")
    folder = run.task_dir(step) if re.fullmatch(r"[\w-]+", step) else None
    if folder is None or not rest:
        raise NotFoundError(f"no file {rel!r} in run {run.id}")
    target = (folder / rest).resolve()
    if not target.is_relative_to(run.path.resolve()) or not target.is_file():
        raise NotFoundError(f"no file {rel!r} in run {run.id}")
    return target


def evaluation_metrics(run: Run) -> dict[str, Any]:
    """The evaluate step's full metrics (confusion matrix, per class), or ``{}``."""
    folder = run.task_dir("evaluate")
    if folder is None:
        return {}
    for candidate in ("report.files/metrics.json", "metrics/metrics.json"):
        path = folder / candidate
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return doc if isinstance(doc, dict) else {}
    return {}
