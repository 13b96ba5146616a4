"""What each page shows: plain functions from :class:`~dashboard.sources.Sources` to template
contexts (charts already rendered to SVG), kept apart from routing so they test without HTTP."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from imgrec.dashboard import charts, models, review, runs
from imgrec.dashboard.charts import Series
from imgrec.dashboard.drift import signal_series
from imgrec.dashboard.predlog import HourBucket
from imgrec.dashboard.sources import Sources
from imgrec.errors import NotFoundError


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of an ISO-8601 stamp (naive = UTC), or of a ``YYYY-MM-DDTHH``
    hour; 0 when unreadable."""
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _hour_label(hour: str) -> str:
    return hour[11:13] + ":00"


def traffic(src: Sources, hours: int = 24) -> dict[str, Any]:
    """Requests and latency per hour over the last ``hours`` logged hours."""
    index = src.log_index()
    if index is None:
        return {"configured": False}
    rows = index.hours(last=hours)
    total = HourBucket()
    for _, bucket in rows:
        total.merge(bucket)
    points = [(_epoch(h), _hour_label(h), b) for h, b in rows]
    p50 = [(x, t, b.latency_quantile(0.5) or float("nan")) for x, t, b in points]
    p95 = [(x, t, b.latency_quantile(0.95) or float("nan")) for x, t, b in points]
    return {
        "configured": True,
        "source": index.source,
        "indexing": src.indexing(),
        "records": index.total,
        "bad_lines": index.bad_lines,
        "window": (rows[0][0], rows[-1][0]) if rows else None,
        "requests": total.n,
        "p95": total.latency_quantile(0.95),
        "mean_confidence": total.mean_confidence,
        "requests_chart": charts.bar_chart(
            [(_hour_label(h), float(b.n)) for h, b in rows],
            y_label="images / hour",
            name="requests",
        ),
        "latency_chart": charts.line_chart(
            [Series("p50", p50), Series("p95", p95)],
            y_label="latency ms (bin upper edge)",
            name="latency",
        ),
        "rows": rows,
    }


def overview(src: Sources) -> dict[str, Any]:
    versions = src.versions()
    pointer = src.pointer() or {}
    prod = next((v for v in versions if v.production), None)
    by_version = models.runs_by_version(src.runs(), src.store.uri)
    reports = src.reports()
    return {
        "production": prod,
        "pointer": pointer,
        "metrics": models.scalar(prod.metrics) if prod else {},
        "gate": models.gate(prod) if prod else None,
        "provenance": models.provenance(prod) if prod else {},
        "run": by_version.get(prod.version) if prod else None,
        "n_versions": len(versions),
        "health": src.endpoint.health() if src.endpoint else None,
        "traffic": traffic(src),
        "drift": reports[-1] if reports else None,
    }


def models_page(src: Sources) -> dict[str, Any]:
    versions = src.versions()
    by_version = models.runs_by_version(src.runs(), src.store.uri)
    rows = [
        {
            "v": v,
            "metrics": models.scalar(v.metrics),
            "gate": models.gate(v),
            "run": by_version.get(v.version),
            "provenance": models.provenance(v),
        }
        for v in reversed(versions)
    ]
    shown = models.shown_metrics(versions)
    trend = [
        Series(k, [(float(v.version), str(v.version), models.scalar(v.metrics).get(k, float("nan")))
                   for v in versions])
        for k in shown if k in ("accuracy", "f1_macro", "map", "map50")
    ]  # fmt: skip
    return {
        "rows": rows,
        "columns": shown,
        "history": list(reversed(src.history()))[:200],
        "trend_chart": charts.line_chart(trend, y_label="metric by version", name="versions"),
        "numbers": [v.version for v in versions],
    }


def _version(src: Sources, number: int) -> Any:
    for v in src.versions():
        if v.version == number:
            return v
    raise NotFoundError(
        f"model version {number} does not exist in {src.store.uri}",
        hint="see the Models page for the versions",
    )


def model_page(src: Sources, number: int) -> dict[str, Any]:
    v = _version(src, number)
    run = models.runs_by_version(src.runs(), src.store.uri).get(number)
    evaluation = runs.evaluation_metrics(run) if run else {}
    matrix = evaluation.get("confusion_matrix")
    confusion = None
    if isinstance(matrix, list) and matrix:
        names = [str(c) for c in evaluation.get("classes", [])]
        names += ["background"] * (len(matrix) - len(names))
        confusion = charts.heatmap(matrix, names, names)
    return {
        "v": v,
        "metrics": models.scalar(v.metrics),
        "gate": models.gate(v),
        "per_class": models.per_class(v),
        "per_class_keys": [
            k for k in models.PER_CLASS_KEYS if any(k in r for r in models.per_class(v).values())
        ],
        "provenance": models.provenance(v),
        "run": run,
        "confusion": confusion,
        "figures": runs.run_figures(run) if run else [],
        "events": [e for e in src.history() if e.get("version") == number],
    }


def compare_page(src: Sources, a: int, b: int) -> dict[str, Any]:
    va, vb = _version(src, a), _version(src, b)
    keys, rows = models.compare(va, vb)
    ma, mb = models.scalar(va.metrics), models.scalar(vb.metrics)
    overall = [(k, ma.get(k), mb.get(k)) for k in models.shown_metrics([va, vb])]
    f1 = "f1" if "f1" in keys else (keys[0] if keys else "")
    bars = [(r.name, r.delta(f1) or 0.0) for r in rows] if f1 else []
    return {
        "a": va,
        "b": vb,
        "keys": keys,
        "rows": rows,
        "overall": overall,
        "delta_metric": f1,
        "delta_chart": charts.delta_bars(bars, label=f"{f1} delta", name="class-deltas"),
        "numbers": [v.version for v in src.versions()],
    }


def runs_page(src: Sources) -> dict[str, Any]:
    return {"runs": src.runs()}


def run_page(src: Sources, run_id: str) -> dict[str, Any]:
    run = runs.get_run(src.config.runs, run_id)
    steps = runs.run_steps(run)
    return {
        "run": run,
        "steps": steps,
        "durations": charts.bar_chart(
            [(s.name, s.seconds or 0.0) for s in steps], y_label="seconds", name="steps"
        ),
        "reports": runs.run_reports(run),
        "figures": runs.run_figures(run),
        "metrics": models.scalar(run.summary.get("metrics") or {}),
        "gate": run.summary.get("gate") or {},
    }


def monitoring(src: Sources) -> dict[str, Any]:
    reports = src.reports()
    drift_charts = []
    for name, pairs in signal_series(reports).items():
        series = Series(
            name,
            [(_epoch(r.window_end), r.window_end[5:16].replace("T", " "), s.value
              if s.value is not None else float("nan")) for r, s in pairs],
            [s.drifted for _, s in pairs],
        )  # fmt: skip
        first = pairs[-1][1]
        y_range = (0.0, 1.0) if first.value_kind == "p_value" else None
        drift_charts.append(
            {
                "name": name,
                "kind": first.kind,
                "method": first.method,
                "value_kind": first.value_kind.replace("_", "-"),
                "chart": charts.line_chart(
                    [series],
                    y_label=first.value_kind.replace("_", "-"),
                    threshold=first.threshold,
                    y_range=y_range,
                    name=f"drift-{name}",
                ),
            }
        )
    context: dict[str, Any] = {"reports": list(reversed(reports)), "drift_charts": drift_charts}
    index = src.log_index()
    context["log_configured"] = index is not None
    context.update(accuracy(src))
    if index is not None:
        rows = index.hours(last=48)
        points = [(_epoch(h), _hour_label(h), b) for h, b in rows]
        conf = [(x, t, b.mean_confidence if b.mean_confidence is not None else float("nan"))
                for x, t, b in points]  # fmt: skip
        low = [(x, t, sum(b.confidence_hist[:5]) / b.n if b.n else float("nan"))
               for x, t, b in points]  # fmt: skip
        context["confidence_chart"] = charts.line_chart(
            [Series("mean confidence", conf), Series("share below 0.5", low)],
            y_range=(0.0, 1.0), y_label="top-1 confidence", name="confidence",
        )  # fmt: skip
        context["label_chart"] = charts.stacked_bars(
            [(_hour_label(h), {k: float(c) for k, c in b.labels.items()}) for h, b in rows
             if b.n],
            y_label="predicted labels (share per hour)", name="labels",
        )  # fmt: skip
        context["window"] = (rows[0][0], rows[-1][0]) if rows else None
        context["indexing"] = src.indexing()
    return context


def accuracy(src: Sources) -> dict[str, Any]:
    """Accuracy per day on the images whose labels came back (joined by fingerprint)."""
    index = src.log_index()
    labels = src.labels()
    rows = review.accuracy_by_day(index.known if index else {}, labels)
    points = [(_epoch(day), day[5:], right / n) for day, n, right in rows]
    return {
        "labels_configured": bool(src.config.labels),
        "n_labels": len(labels),
        "accuracy_rows": rows,
        "accuracy_chart": charts.line_chart(
            [Series("accuracy", points)],
            y_range=(0.0, 1.0),
            y_label="top-1 accuracy",
            name="accuracy",
        ),
    }


def review_page(src: Sources) -> dict[str, Any]:
    captures = src.captures()
    index = src.log_index()
    known = index.known if index else {}
    labels = src.labels()
    return {
        "queue": review.review_queue(captures, known, labels),
        "n_captured": len(captures),
        "n_predicted": sum(1 for fp in captures if fp in known),
        "n_labelled": sum(1 for fp in captures if fp in labels),
        "log_configured": index is not None,
        "indexing": src.indexing(),
    }
