"""`imgrec evaluate MODEL DATA`: metrics of a model on a dataset split (table or --json).

The task (classify, detect) comes from the model card, so every model goes through this one
command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from imgrec.cli.app import app


@app.command("evaluate")
def evaluate(
    model: str = typer.Argument(..., help="Model directory (local or s3://) or pretrained name."),
    data: str = typer.Argument(..., help="Dataset folder, s3:// prefix or CSV manifest."),
    split: str = typer.Option("val", "--split", help="Split to evaluate: train, val or test."),
    out: str = typer.Option(
        None, "--out", help="Write metrics.json, figures/ and report.html into this folder."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Accuracy, top-5, precision/recall/F1 (macro, weighted, per class), confusion matrix, ECE."""
    from imgrec.cli.inputs import require_model, require_paths

    require_model(model)  # before loading anything: the model load takes seconds
    require_paths(
        [data], what="dataset", hint="pass a dataset folder, s3:// prefix or CSV manifest"
    )
    from imgrec.api import task_of_model

    task = task_of_model(model)
    metrics = task.evaluate(model, data, split=split, out_dir=out)
    if as_json:
        typer.echo(json.dumps(metrics, ensure_ascii=False))
        return
    print_metrics(metrics, title=f"{model} on {data} [{split}]")
    if out:
        typer.echo(f"report: {Path(out) / 'report.html'}")


def print_metrics(metrics: dict[str, Any], *, title: str) -> None:
    """Human-readable tables: the scalar figures, then per class when present."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    summary = Table("metric", "value", title=escape(title))
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, type(None))):
            continue
        shown = "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else value
        summary.add_row(escape(key), str(shown))
    console.print(summary)
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict) and per_class:
        columns = list(next(iter(per_class.values())))
        table = Table("class", *columns)
        for name, values in per_class.items():
            cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in values.values()]
            table.add_row(escape(repr(name)[1:-1]), *cells)
        console.print(table)
