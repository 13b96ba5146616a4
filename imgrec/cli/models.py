"""`imgrec models list|promote|rollback --store URI`: the model store of the pipeline."""

from __future__ import annotations

import json

import typer

from imgrec.cli.app import models_app

STORE_HELP = "Model store: a local folder or s3://bucket/prefix."


def _print_versions(store_uri: str, as_json: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from imgrec.store import ModelStore

    store = ModelStore(store_uri)
    versions = store.versions()
    if as_json:
        doc = {
            "store": store.uri,
            "production": store.production_version(),
            "versions": [v.to_dict() for v in versions],
        }
        typer.echo(json.dumps(doc, default=str))
        return
    table = Table("version", "production", "created", "accuracy", "f1_macro", "dataset",
                  title=escape(f"models in {store.uri}"))  # fmt: skip
    for v in versions:
        m = v.metrics
        dataset = v.metadata.get("dataset", {}).get("version", "")
        table.add_row(
            str(v.version),
            "*" if v.production else "",
            v.created,
            f"{m['accuracy']:.4f}" if "accuracy" in m else "",
            f"{m['f1_macro']:.4f}" if "f1_macro" in m else "",
            escape(str(dataset)),
        )
    Console(highlight=False).print(table)
    if not versions:
        typer.echo("no versions yet: `imgrec pipeline run --local` registers the first one")


@models_app.command("list")
def list_models(
    store: str = typer.Option("model-store", "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """List the complete versions with their metrics; `*` marks production."""
    _print_versions(store, as_json)


@models_app.command("promote")
def promote(
    version: int = typer.Argument(..., help="Version number to put in production."),
    store: str = typer.Option("model-store", "--store", help=STORE_HELP),
    reason: str = typer.Option("promoted by hand", "--reason", help="Recorded in the history."),
    as_json: bool = typer.Option(False, "--json", help="Print the new production version."),
) -> None:
    """Point `production` at VERSION (atomically; the history keeps the move)."""
    from imgrec.store import ModelStore

    v = ModelStore(store).promote(version, reason=reason)
    _report(v.to_dict(), as_json, f"production is now version {v.version}")


@models_app.command("rollback")
def rollback(
    store: str = typer.Option("model-store", "--store", help=STORE_HELP),
    to: int = typer.Option(None, "--to", help="Version to go back to (default: the previous)."),
    reason: str = typer.Option("rollback", "--reason", help="Recorded in the history."),
    as_json: bool = typer.Option(False, "--json", help="Print the new production version."),
) -> None:
    """Move `production` back to the previous production version (or to --to)."""
    from imgrec.store import ModelStore

    v = ModelStore(store).rollback(to=to, reason=reason)
    _report(v.to_dict(), as_json, f"rolled back: production is now version {v.version}")


@models_app.command("history")
def history(
    store: str = typer.Option("model-store", "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line per event."),
) -> None:
    """Every registration, promotion and rollback, oldest first."""
    from imgrec.store import ModelStore

    for event in ModelStore(store).history():
        if as_json:
            typer.echo(json.dumps(event))
        else:
            extra = f" ({event['reason']})" if event.get("reason") else ""
            typer.echo(f"{event['time']}  {event['event']:<8} v{event['version']}{extra}")


def _report(doc: dict, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(doc, default=str) if as_json else text)
