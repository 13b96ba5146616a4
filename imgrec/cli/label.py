"""`imgrec label export|import`: captured images to Label Studio, labels back (docs/labels.md)."""

from __future__ import annotations

import json

import typer

from imgrec.cli.app import label_app


def _classes(model: str, classes: str) -> list[str]:
    if classes:
        return [c.strip() for c in classes.split(",") if c.strip()]
    if model:
        from imgrec.model_store import resolve_store_ref
        from imgrec.models.card import read_card

        stored = resolve_store_ref(model)
        return list(read_card(stored.model_uri if stored else model).classes)
    from imgrec.errors import ConfigError

    raise ConfigError(
        "the known classes are needed to check the labels",
        hint="pass --model STORE@production (its classes) or --classes a,b,c",
    )


@label_app.command("export")
def export_command(
    capture: str = typer.Argument(..., help="Capture folder or s3:// prefix (serve --capture)."),
    model: str = typer.Option(
        ..., "--model", help="Model for the pre-annotations: STORE@production, STORE@N or a dir."
    ),
    out: str = typer.Option("labels/tasks.json", "--out", help="Tasks JSON to write."),
    limit: int = typer.Option(0, "--limit", help="Keep only the N least certain images (0: all)."),
    url_prefix: str = typer.Option(
        None,
        "--url-prefix",
        help="Image URL = PREFIX + path under the capture folder (e.g. an HTTP server of it). "
        "Default: s3:// URIs as they are, local files as Label Studio local-files URLs.",
    ),
    document_root: str = typer.Option(
        None,
        "--document-root",
        help="Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: the capture folder).",
    ),
) -> None:
    """Write Label Studio tasks with the model's predictions, least certain first."""
    from imgrec.labels import export_tasks

    summary = export_tasks(
        capture, model, out, limit=limit or None, url_prefix=url_prefix, document_root=document_root
    )
    typer.echo(
        f"{summary['tasks']} tasks -> {summary['out']} (least certain first; "
        f"{summary['failed']} unreadable images left out); labeling interface -> "
        f"{summary['config']}"
    )


@label_app.command("import")
def import_command(
    source: str = typer.Argument(
        ..., help="Label Studio JSON export, or a CSV with fingerprint,label rows."
    ),
    capture: str = typer.Option(..., "--capture", help="The capture folder or s3:// prefix."),
    out: str = typer.Option(..., "--out", help="New dataset folder (ImageFolder or COCO)."),
    model: str = typer.Option("", "--model", help="Known classes from this model's card."),
    classes: str = typer.Option("", "--classes", help="Known classes, comma-separated."),
    skip_refused: bool = typer.Option(
        False, "--skip-refused", help="Import the good items even when some are refused."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Turn labels of captured images into a dataset: ImageFolder (classes) or COCO (boxes)."""
    from imgrec.errors import LabelError
    from imgrec.labels import import_labels

    known = _classes(model, classes)
    try:
        summary = import_labels(source, capture, out, classes=known, skip_refused=skip_refused)
    except LabelError as exc:
        for line in getattr(exc, "refused", []):
            typer.echo(f"refused {line}", err=True)
        raise
    if as_json:
        typer.echo(json.dumps(summary))
        return
    for line in summary["refused"]:
        typer.echo(f"refused {line}", err=True)
    counts = ", ".join(f"{k}: {v}" for k, v in summary["classes"].items())
    kind = "COCO" if summary["task"] == "detect" else "ImageFolder"
    typer.echo(f"{summary['imported']} labelled images -> {out} ({kind}; {counts})")
