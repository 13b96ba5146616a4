"""The Evidently 0.7 report of a window: ``report.html`` (self-contained) and ``snapshot.json``
(loadable with ``evidently.core.report.Snapshot.load``, addable to an Evidently workspace).

Its drift flags agree with the verdict: each K-S column is a ``ValueDrift(method="ks")`` whose
threshold is that signal's weighted-Holm level, so Evidently's p-value and flag are the
summary's. The label distribution (a detector's: the top box's label) is shown with
``UniqueValueCount`` (the verdict's label tests are permutation chi-squares, which Evidently
does not have), and ``EmbeddingsDrift`` (its classifier method, ROC AUC) runs on a sample of at
most ``EMBEDDING_SAMPLE`` rows a side, because it always draws a t-SNE map whose cost grows with
the rows (minutes at 10,000); its results are joined to the report's in one snapshot
(:func:`merge_snapshots`). The one-sided and permutation signals (``low_confidence``, ``label``,
the detector's) are in the header put at the top of the page, with the verdict and every
signal::

    snapshot = build_snapshot(reference, rows, signals, name="drift 2026-11-30T12:00")
    write_evidently(snapshot, summary, "out/")
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imgrec.monitoring.drift import embeddings
from imgrec.monitoring.reference import Reference
from imgrec.monitoring.signals import Signal

EMBEDDING_SAMPLE = 200
_EMB = "embedding"


def frame(columns: dict[str, list[Any]], category: str, numeric: list[str]) -> pd.DataFrame:
    """Columns of reference or window rows as the DataFrame Evidently reads: the categorical
    ``category`` (a classifier's label, a detector's top box label) and the ``numeric``."""
    data: dict[str, Any] = {category: [str(v) for v in columns[category]]}
    for name in numeric:
        data[name] = np.array(
            [np.nan if v is None else v for v in columns.get(name, [])], dtype=np.float64
        )
    return pd.DataFrame(data)


def _embedding_frame(values: list[Any], n: int, seed: int) -> pd.DataFrame:
    emb = embeddings(values)
    if len(emb) > n:
        emb = emb[np.random.default_rng(seed).choice(len(emb), n, replace=False)]
    return pd.DataFrame(emb, columns=[f"e{i}" for i in range(emb.shape[1])])


def build_snapshot(
    reference: Reference, rows: list[dict[str, Any]], signals: list[Signal], name: str
) -> Any:
    """Run the Evidently report; returns its ``Snapshot``."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, EmbeddingsDrift, UniqueValueCount, ValueDrift
    from evidently.metrics.embeddings import ModelDriftMethod
    from threadpoolctl import threadpool_limits

    ref_cols = reference.columns
    category = "top_label" if reference.task == "detect" else "label"
    ks = {s.name: s for s in signals if s.method == "ks" and s.tested}
    numeric = list(ks)  # a K-S signal is named after its column
    cur_cols = {k: [r.get(k) for r in rows] for k in (category, *numeric)}
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=[category])
    ref_data = Dataset.from_pandas(frame(ref_cols, category, numeric), data_definition=definition)
    cur_data = Dataset.from_pandas(frame(cur_cols, category, numeric), data_definition=definition)
    thresholds = {c: float(ks[c].threshold or 0.0) for c in numeric}
    metrics: list[Any] = [UniqueValueCount(column=category)]
    metrics += [ValueDrift(column=c, method="ks", threshold=thresholds[c]) for c in numeric]
    if numeric:
        metrics.append(
            DriftedColumnsCount(columns=numeric, method="ks", per_column_threshold=thresholds)
        )
    # its plots divide by zero on constant columns (28 px): numpy's own switch, which holds for
    # this thread only (``warnings.catch_warnings`` would change every thread's filters, and
    # ``make run`` writes this page on a thread beside the retraining)
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = Report(metrics, include_tests=False).run(
            current_data=cur_data, reference_data=ref_data, name=name
        )
    ref_emb = _embedding_frame(ref_cols.get(_EMB, []), EMBEDDING_SAMPLE, 0)
    cur_emb = _embedding_frame([r.get(_EMB) for r in rows], EMBEDDING_SAMPLE, 1)
    if len(ref_emb) >= 10 and len(cur_emb) >= 10 and ref_emb.shape[1] == cur_emb.shape[1]:
        cols = list(ref_emb.columns)
        emb_def = DataDefinition(numerical_columns=cols, embeddings={_EMB: cols})
        with threadpool_limits(1):  # t-SNE's OpenMP threads thrash a shared CPU
            extra = Report(
                [EmbeddingsDrift(embeddings_name=_EMB, drift_method=ModelDriftMethod())],
                include_tests=False,
            ).run(
                current_data=Dataset.from_pandas(cur_emb, data_definition=emb_def),
                reference_data=Dataset.from_pandas(ref_emb, data_definition=emb_def),
            )
        snapshot = merge_snapshots(snapshot, extra)
    return snapshot


def merge_snapshots(snapshot: Any, extra: Any) -> Any:
    """One snapshot with the metrics and widgets of both (one page, one snapshot file).

    An Evidently 0.7 ``Report`` runs every metric on the same two datasets, and the embedding
    metric must see a sample while the columns' drift sees the whole window; ``Snapshot`` has
    no public way to add another report's results. Both are joined in Evidently's public
    serialization format instead (``Snapshot.dump_dict`` -> ``Snapshot.load_dict``, the form
    ``snapshot.json`` holds): ``metric_results`` (a dict by metric id), ``top_level_metrics``
    and ``widgets`` (lists). The round trip is tested (tests/monitoring/test_monitor_report.py).
    """
    from evidently.core.report import Snapshot

    doc, more = snapshot.dump_dict(), extra.dump_dict()
    doc["metric_results"].update(more["metric_results"])
    for key in ("top_level_metrics", "widgets", "tests_widgets"):
        doc[key] = list(doc.get(key) or []) + list(more.get(key) or [])
    return Snapshot.load_dict(doc)


def write_evidently(snapshot: Any, summary: dict[str, Any], out_dir: str) -> None:
    """``report.html`` (verdict header + Evidently's page) and ``snapshot.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "snapshot.json").write_text(snapshot.dumps(), encoding="utf-8")
    page = snapshot.get_html_str(as_iframe=False)
    head = verdict_html(summary)
    at = page.find("<body>")
    page = page[: at + 6] + head + page[at + 6 :] if at >= 0 else head + page
    (out / "report.html").write_text(page, encoding="utf-8")


def verdict_html(summary: dict[str, Any]) -> str:
    """The page's header: verdict, window, reference and the table of signals."""
    e = html.escape
    drift = summary["drift"]
    color = "#b00020" if drift else ("#1b5e20" if summary.get("verdict") == "no drift" else "#555")
    win, ref = summary["window"], summary["reference"]
    rows = []
    for s in summary["signals"]:
        p = s.get("p_value")
        flag = {True: "DRIFT", False: "ok", None: "not tested"}[s.get("drifted")]
        cells = (
            s["name"],
            s["kind"],
            s["method"],
            "" if s.get("statistic") is None else f"{s['statistic']:.4g}",
            "" if p is None else f"{p:.3g}",
            "" if s.get("threshold") is None else f"{s['threshold']:.3g}",
            flag if not s.get("note") else f"{flag} ({s['note']})",
        )
        style = ' style="color:#b00020;font-weight:bold"' if s.get("drifted") else ""
        rows.append(f"<tr{style}>" + "".join(f"<td>{e(str(v))}</td>" for v in cells) + "</tr>")
    log = summary.get("log", {})
    skipped = ", ".join(
        f"{k.replace('_', ' ')}: {v}"
        for k, v in log.items()
        if k not in ("files", "lines", "schemas", "records_in_window") and v
    )
    return f"""
<section id="imgrec-verdict" style="font-family:sans-serif;margin:16px 24px;padding:12px 16px;
 border:2px solid {color};border-radius:6px;background:#fff">
<h1 style="color:{color};margin:0 0 8px">{e(summary.get("verdict", ""))}</h1>
<p>Window: <b>{win["n"]}</b> records of model version <b>{e(str(summary["model_version"]))}</b>,
 {e(str(win["start"]))} .. {e(str(win["end"]))}. Reference: {ref.get("n")} held-out images
 ({e(str(ref.get("uri")))}). One verdict over {len(summary["signals"])} signals, weighted Holm at
 alpha = {summary["alpha"]} (false-alarm rate at most alpha).</p>
<table style="border-collapse:collapse" border="1" cellpadding="4">
<tr><th>signal</th><th>kind</th><th>method</th><th>statistic</th><th>p-value</th>
<th>threshold (weighted Holm)</th><th>verdict</th></tr>
{"".join(rows)}
</table>
<p style="color:#555">Log: {log.get("lines", 0)} lines read from {log.get("files", 0)} file(s).
 {e(skipped) if skipped else "No line left out."}</p>
</section>
"""
