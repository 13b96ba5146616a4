"""``imgrec data convert`` between detection formats (the sample is in ``imgrec.data.samples``).

::

    imgrec data convert data/digits-detect out/voc --to voc
    imgrec data convert labels/data.yaml out/coco --to coco --report problems.json
"""

from __future__ import annotations

import json

import typer

from imgrec.cli.app import data_app


@data_app.command("convert")
def convert_command(
    src: str = typer.Argument(
        ..., help="Detection dataset: COCO folder, YOLO data.yaml, VOC folder."
    ),
    dest: str = typer.Argument(..., help="New (or empty) folder to write."),
    to: str = typer.Option(..., "--to", help="Target format: coco, yolo or voc."),
    source_format: str = typer.Option(None, "--from", help="Source format (default: detected)."),
    report: str = typer.Option(None, "--report", help="Write the validation report (JSON) here."),
) -> None:
    """Convert a detection dataset; label problems are listed, skipped or clipped (documented)."""
    from imgrec.data.detection import convert

    result = convert(src, dest, to=to, format=source_format)
    counts = result.codes()
    if report:
        result.write(report)
    typer.echo(f"wrote {to} dataset to {dest}")
    if counts:
        summary = ", ".join(f"{code} {n}" for code, n in sorted(counts.items()))
        typer.echo(f"label problems: {summary}" + (f" (details: {report})" if report else ""))
        if not report:
            for issue in result.to_dict()["issues"][:20]:
                typer.echo(json.dumps(issue, ensure_ascii=False), err=True)
