"""One self-contained HTML page with the evaluation figures and pictures.

Pictures are embedded as base64 PNG, so the file can be mailed or archived alone. Every piece
of text that came from data (class names, paths, model names) is HTML-escaped (BAD-INPUTS
row 9: hostile names are never rendered as markup)::

    write_report("run/report.html", metrics, figures, context={"model": "run/model"})
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SUMMARY_KEYS = (
    ("accuracy", "Accuracy (top-1)"),
    ("top5", "Top-5 accuracy (k = min(5, classes))"),
    ("precision_macro", "Precision, macro"),
    ("recall_macro", "Recall, macro"),
    ("f1_macro", "F1, macro"),
    ("precision_weighted", "Precision, weighted"),
    ("recall_weighted", "Recall, weighted"),
    ("f1_weighted", "F1, weighted"),
    ("ece", "Expected calibration error (15 bins)"),
    ("n", "Images evaluated"),
)
FIGURE_TITLES = {
    "curves": "Training curves",
    "confusion_matrix": "Confusion matrix",
    "per_class": "Per-class precision, recall and F1",
    "reliability": "Reliability diagram",
    "worst_mistakes": "Worst mistakes",
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; }
.context td { text-align: left; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return _esc(value)


def _summary_table(metrics: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_esc(label)}</td><td>{_fmt(metrics.get(key))}</td></tr>"
        for key, label in SUMMARY_KEYS
        if key in metrics
    )
    return (
        f"<table><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _per_class_table(per_class: Mapping[str, Mapping[str, Any]]) -> str:
    head = "<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
    rows = "".join(
        f"<tr><td>{_esc(name)}</td><td>{_fmt(v.get('precision'))}</td>"
        f"<td>{_fmt(v.get('recall'))}</td><td>{_fmt(v.get('f1'))}</td>"
        f"<td>{_fmt(v.get('support'))}</td></tr>"
        for name, v in per_class.items()
    )
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _figure(name: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    title = FIGURE_TITLES.get(name, name)
    return f'<h2>{_esc(title)}</h2><img alt="{_esc(title)}" src="data:image/png;base64,{data}">'


def render_report(
    metrics: Mapping[str, Any],
    figures: Mapping[str, str | Path] | None = None,
    *,
    title: str = "imgrec evaluation",
    context: Mapping[str, Any] | None = None,
) -> str:
    """The HTML text of the report: context (model, data, split...), metrics, pictures."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if context:
        rows = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in context.items())
        parts.append(f'<table class="context"><tbody>{rows}</tbody></table>')
    parts.append("<h2>Summary</h2>" + _summary_table(metrics))
    figs = dict(figures or {})
    ordered = [n for n in FIGURE_TITLES if n in figs] + [n for n in figs if n not in FIGURE_TITLES]
    for name in ordered:
        parts.append(_figure(name, Path(figs[name])))
        if name == "per_class" and "per_class" in metrics:
            parts.append(_per_class_table(metrics["per_class"]))
    if "per_class" in metrics and "per_class" not in figs:
        parts.append("<h2>Per class</h2>" + _per_class_table(metrics["per_class"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    path: str | Path,
    metrics: Mapping[str, Any],
    figures: Mapping[str, str | Path] | None = None,
    *,
    title: str = "imgrec evaluation",
    context: Mapping[str, Any] | None = None,
) -> Path:
    """Render the report and write it atomically to ``path`` (temp file, then rename)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_report(metrics, figures, title=title, context=context)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".report-", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
