"""`imgrec predict SOURCE...`: top-k labels for images, files, folders, globs or s3:// prefixes.

One line per image (JSON lines with --json); a bad image prints an error line and the exit
code is 1 at the end. The task comes from the model card (see `imgrec evaluate`).
"""

from __future__ import annotations

import json
from typing import Any

import typer

from imgrec.cli.app import app


@app.command("predict")
def predict(
    sources: list[str] = typer.Argument(
        ..., help="Image files, folders (recursive), globs or s3:// prefixes."
    ),
    model: str = typer.Option(
        "efficientnet_lite0",
        "--model",
        "-m",
        help="Model directory (local or s3://) or pretrained name (default: offline ImageNet).",
    ),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Labels per image."),
    save_dir: str = typer.Option(
        None, "--save-dir", help="Also write each image with its top label drawn on it here."
    ),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        "-b",
        min=1,
        help="Images per inference call (default: the task's; classifiers: 4 with ONNX Runtime "
        "on CPU, its calls running on the decode threads, 32 with PyTorch).",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Predict labels with scores for each image; exit code 1 if any image failed."""
    from imgrec.cli.evaluate import task_of_model

    task = task_of_model(model)
    failed = 0
    sizing = {} if batch_size is None else {"batch_size": batch_size}
    records = task.predict(sources, model=model, top_k=top_k, save_dir=save_dir, **sizing)
    for record in records:
        failed += "error" in record
        typer.echo(json.dumps(record, ensure_ascii=False) if as_json else format_record(record))
    if failed:
        if not as_json:
            typer.echo(f"{failed} image(s) failed", err=True)
        raise typer.Exit(1)


def format_record(record: dict[str, Any]) -> str:
    """One readable line: ``source: label score | label score ...`` or ``source: error[code]``."""
    source = _printable(record.get("source", ""))
    if "error" in record:
        err = record["error"]
        return f"{source}: error[{err.get('code')}] {_printable(err.get('message', ''))}"
    parts = []
    for p in record.get("predictions", record.get("detections", [])):  # detect: boxes
        text = f"{_printable(p.get('label', ''))} {p.get('score', 0.0):.3f}"
        if "box" in p:
            text += " [" + ", ".join(f"{v:.0f}" for v in p["box"]) + "]"
        parts.append(text)
    saved = f"  -> {_printable(record['saved'])}" if "saved" in record else ""
    return f"{source}: {' | '.join(parts) or '(nothing found)'}{saved}"


def _printable(text: Any) -> str:
    # names are metadata: no terminal control sequences from file names or labels
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))
