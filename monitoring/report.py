"""``imgrec monitor report``: a window of the prediction log against the reference -> the
verdict (``summary.json``), Evidently's ``report.html`` and ``snapshot.json``::

    summary = monitor_report("logs/", "model-store@production", WindowSpec(last=500), "out/")
    summary["drift"], [s["name"] for s in summary["signals"] if s["drifted"]]

``summary.json`` (read by dashboards; keep its keys)::

    {"drift": bool, "verdict": "drift" | "no drift" | "window too small (n < 30): no verdict",
     "window": {"n", "start", "end"}, "model_version", "reference": {...},
     "signals": [{"name", "kind", "method", "statistic", "p_value", "threshold", "drifted",
                  "n", "n_reference"[, "note"]}],
     "alpha", "log": {lines read, lines and records left out, and why}, "created"}
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imgrec import storage
from imgrec.errors import ConfigError, EmptyWindowError, ReferenceProfileError
from imgrec.monitoring.drift import detect, verdict_text
from imgrec.monitoring.evidently_report import build_snapshot, write_evidently
from imgrec.monitoring.logs import Window, WindowSpec, parse_time, read_window
from imgrec.monitoring.reference import Reference, resolve_reference

REPORT_FILES = ("summary.json", "report.html", "snapshot.json")
DEFAULT_ALPHA = 0.01
DEFAULT_LAST = 1000


def select_version(reference: Reference, model_version: str | None) -> str:
    """The model version whose records are compared: the reference's, or ``--model-version``
    (refused when the reference names another one: never compare against the wrong model)."""
    if model_version is not None:
        if reference.version is not None and reference.version != model_version:
            raise ReferenceProfileError(
                f"--model-version {model_version} but the reference {reference.uri} is of "
                f"model version {reference.version}",
                hint=f"use the reference of version {model_version} (STORE@{model_version}) or "
                "drop --model-version",
                code="reference_mismatch",
            )
        return model_version
    if reference.version is None:
        raise ReferenceProfileError(
            f"the reference {reference.uri} does not say which model version it belongs to",
            hint="pass --model-version V (the version the server logs), or use STORE@V",
            code="reference_mismatch",
        )
    return reference.version


def summarize(
    reference: Reference, window: Window, *, alpha: float
) -> tuple[dict[str, Any], list[Any]]:
    """The ``summary.json`` document and the judged signals."""
    signals, drift = detect(reference, window.rows, alpha=alpha)
    n = len(window.rows)
    summary = {
        "drift": bool(drift),
        "verdict": verdict_text(drift, n),
        "window": {"n": n, "start": window.start, "end": window.end},
        "model_version": window.version,
        "reference": reference.describe(),
        "signals": [s.to_dict() for s in signals],
        "alpha": alpha,
        "log": window.counts.to_dict(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    return summary, signals


def monitor_report(
    log: str,
    reference: str | Reference,
    spec: WindowSpec,
    out_dir: str | None,
    *,
    alpha: float = DEFAULT_ALPHA,
    model_version: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Compare the window ``spec`` of ``log`` with ``reference``; with ``out_dir``, write
    ``summary.json``, ``report.html`` and ``snapshot.json`` there. Returns the summary."""
    summary, write = judge_window(
        log, reference, spec, alpha=alpha, model_version=model_version, on_progress=on_progress
    )
    if out_dir is not None:
        write(out_dir)
    return summary


def judge_window(
    log: str,
    reference: str | Reference,
    spec: WindowSpec,
    *,
    alpha: float = DEFAULT_ALPHA,
    model_version: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], Callable[[str], None]]:
    """The verdict now (the summary: about a second), the report's files when the returned
    ``write(out_dir)`` is called (Evidently's page: most of the time): a caller that acts on the
    verdict (``make run``'s day) may write the page meanwhile, on another thread."""
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1, got {alpha}", hint="e.g. 0.01")
    ref = reference if isinstance(reference, Reference) else resolve_reference(reference)
    version = select_version(ref, model_version)
    window = read_window(log, spec, version=version, on_progress=on_progress)
    summary, signals = summarize(ref, window, alpha=alpha)

    def write(out_dir: str) -> None:
        with tempfile.TemporaryDirectory(prefix="imgrec-drift-") as tmp:
            local = tmp if storage.is_s3(out_dir) else out_dir
            snapshot = build_snapshot(ref, window.rows, signals, name=f"drift {window.start}")
            write_evidently(snapshot, summary, local)
            text = json.dumps(summary, indent=1) + "\n"
            (Path(local) / "summary.json").write_text(text, encoding="utf-8")
            if local != out_dir:
                copy_report(local, out_dir)

    return summary, write


def copy_report(src: str, dest: str) -> None:
    """Copy ``summary.json``, ``report.html`` and ``snapshot.json`` to ``dest`` (or ``s3://``)."""
    for name in REPORT_FILES:
        storage.write_bytes(storage.join(dest, name), (Path(src) / name).read_bytes())


def monitor_step(
    log: str,
    reference: str,
    out_dir: str,
    *,
    last: int = 0,
    since: str = "",
    until: str = "",
    alpha: float = DEFAULT_ALPHA,
    copy_to: str = "",
) -> dict[str, Any]:
    """The KFP ``monitor`` component's work: :func:`monitor_report` on ``last`` records (0:
    the default window) or ``since``/``until``; an empty window gives a page that says so
    (a quiet hour is not a failed run). With ``copy_to`` (local or ``s3://``) the three files
    also go to ``copy_to/<window end>/``."""
    spec = WindowSpec(
        last=(last or (None if since or until else DEFAULT_LAST)),
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
    )
    try:
        summary = monitor_report(log, reference, spec, out_dir, alpha=alpha)
    except EmptyWindowError as exc:
        summary = {"drift": False, "verdict": exc.message, "window": {"n": 0}, "alpha": alpha}
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        page = f"<!DOCTYPE html><html><body><h1>{html.escape(exc.message)}</h1></body></html>"
        (Path(out_dir) / "report.html").write_text(page, encoding="utf-8")
        return summary
    if copy_to:
        copy_report(out_dir, storage.join(copy_to, str(summary["window"]["end"]).replace(":", "")))
    return summary


def kubeflow_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The Kubeflow ``Metrics`` of a summary: drift (0/1), window size, signals drifted, and
    each tested signal's p-value (``p_<name>``)."""
    out = {
        "drift": float(bool(summary["drift"])),
        "window_n": float(summary["window"]["n"]),
        "signals_drifted": float(sum(bool(s["drifted"]) for s in summary.get("signals", []))),
    }
    for s in summary.get("signals", []):
        if s.get("p_value") is not None:
            out[f"p_{s['name']}"] = float(s["p_value"])
    return out
