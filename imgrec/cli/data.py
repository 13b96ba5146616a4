"""`imgrec data ...`: write embedded sample datasets and report on a dataset's contents."""

from __future__ import annotations

import json
import sys

import typer

from imgrec.cli.app import data_app
from imgrec.errors import DatasetError


@data_app.command("sample")
def sample(
    name: str = typer.Argument(..., help="Sample name: mnist5k, digits (see the list below)."),
    dest: str = typer.Argument(..., help="Folder (or s3://bucket/prefix) to write into."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write an embedded sample dataset as ImageFolder (no download; skips if complete)."""
    from imgrec.data.samples import write_sample

    result = write_sample(name, dest, progress=not quiet and sys.stderr.isatty())
    typer.echo(result.message())


@data_app.command("samples")
def samples() -> None:
    """List the sample datasets `imgrec data sample` can write."""
    from imgrec.data.samples import SAMPLES

    for name, spec in SAMPLES.items():
        typer.echo(f"{name:16s} {spec.description}")


@data_app.command("shards")
def shards(
    data: str = typer.Argument(..., help="Dataset folder, s3:// prefix or CSV manifest."),
    out: str = typer.Argument(..., help="Folder or s3://bucket/prefix for the tar shards."),
    shard_samples: int = typer.Option(1000, "--shard-samples", help="Images per shard."),
    val_fraction: float = typer.Option(
        None, "--val-fraction", help="Share moved to val when the data has no val split."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and of the shard order."),
) -> None:
    """Write the dataset as WebDataset tar shards + shards.json (train streams them)."""
    import dataclasses

    from imgrec.data.dataset import load_classification_data
    from imgrec.data.shards import shard_dataset
    from imgrec.tasks.classify.recipe import inspect_images

    dataset = load_classification_data(data, val_fraction=val_fraction, seed=seed)
    stats = inspect_images([r.path for r in dataset.splits.get("train", [])])
    index = shard_dataset(
        dataset, out, shard_samples=shard_samples, image_stats=dataclasses.asdict(stats)
    )
    counts = ", ".join(f"{s}: {len(v)} shards, {index.counts()[s]} images"
                       for s, v in index.splits.items())  # fmt: skip
    typer.echo(f"wrote {out} ({counts}); train with: imgrec train {out}")


@data_app.command("report")
def report(
    data: str = typer.Argument(..., help="Dataset folder, s3:// prefix or CSV manifest."),
    val_fraction: float = typer.Option(
        None, "--val-fraction", help="Share moved to val when the data has no val split."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the stratified split."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    out: str = typer.Option(None, "--out", help="Also write the JSON report to this file."),
) -> None:
    """Scan every image: classes, counts per split, bad files with reasons, leakage."""
    from rich.console import Console
    from rich.progress import Progress

    from imgrec.data.dataset import DataReport, load_classification_data

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("scanning images", total=None)
        try:
            rep: DataReport = load_classification_data(
                data,
                val_fraction=val_fraction,
                seed=seed,
                max_bad_fraction=1.0,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            ).report
        except DatasetError as exc:
            partial = getattr(exc, "report", None)
            if partial is None:
                raise
            rep = partial
    if out:
        rep.write(out)
    if as_json:
        typer.echo(json.dumps(rep.to_dict(), ensure_ascii=False))
        return
    _print_report(rep)


def _print_report(rep: object) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from imgrec.data.dataset import DataReport

    assert isinstance(rep, DataReport)
    console = Console(highlight=False)
    console.print(
        f"[bold]{escape(rep.uri)}[/] ({rep.format}), {len(rep.classes)} classes, "
        f"{rep.n_files} image files, {rep.n_bad} bad, scanned in {rep.seconds:.2f} s"
    )
    table = Table("class", *rep.counts.keys())
    for cls in rep.classes:
        table.add_row(escape(cls), *(str(c.get(cls, 0)) for c in rep.counts.values()))
    table.add_row("[bold]total[/]", *(str(sum(c.values())) for c in rep.counts.values()))
    console.print(table)
    if rep.bad:
        bad = Table(title="bad files (skipped)")
        bad.add_column("bad file", overflow="fold", ratio=2)
        bad.add_column("code", no_wrap=True)
        bad.add_column("reason", overflow="fold", ratio=3)
        for b in rep.bad:
            bad.add_row(escape(b.path), b.code, escape(b.reason))
        console.print(bad)
    for note in rep.notes:
        console.print(f"note: {escape(note)}")
    if rep.leakage:
        console.print(f"[yellow]leakage:[/] {len(rep.leakage)} image(s) appear in several splits")
    console.print(f"fingerprint {rep.fingerprint}")
