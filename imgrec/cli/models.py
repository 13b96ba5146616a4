"""`imgrec models list|promote|rollback|history|status`: the model store of the pipeline.

With ``--git`` promote and rollback also write the overlay that names the production model and
commit it (docs/gitops.md); ``status`` says what each overlay deploys and where the store's
pointer disagrees.
"""

from __future__ import annotations

import json

import typer

from imgrec.cli.app import models_app
from imgrec.errors import ConfigError

STORE_HELP = "Model store: a local folder or s3://bucket/prefix."
DEFAULT_STORE = "model-store"


def _print_versions(store_uri: str, as_json: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from imgrec.model_store import ModelStore

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
    github_output: str = typer.Option(
        None,
        "--github-output",
        help="In GitHub Actions: append NAME=<production version, 0 if none> to $GITHUB_OUTPUT "
        "instead of listing.",
    ),
) -> None:
    """List the complete versions with their metrics; `*` marks production."""
    if github_output:
        _github_output(github_output, _production_version(store))
        return
    _print_versions(store, as_json)


def _production_version(store: str) -> int:
    from imgrec.model_store import ModelStore

    return ModelStore(store).production_version() or 0


def _github_output(name: str, value: object) -> None:
    import os

    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        raise ConfigError("--github-output needs $GITHUB_OUTPUT", hint="GitHub Actions sets it")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{name}={value}\n")
    typer.echo(f"{name}={value}")


GIT_HELP = "Also write --overlay's production-model.yaml and commit it (docs/gitops.md)."
OVERLAY_HELP = "The overlay that names production (with --git), e.g. manifests/overlays/production."


def _git_options(overlay: str | None) -> str:
    if not overlay:
        raise ConfigError(
            "--git needs --overlay", hint="e.g. --overlay manifests/overlays/production"
        )
    return overlay


@models_app.command("promote")
def promote(
    version: int = typer.Argument(..., help="Version number to put in production."),
    store: str = typer.Option(None, "--store", help=STORE_HELP + " [default: model-store]"),
    reason: str = typer.Option("promoted by hand", "--reason", help="Recorded in the history."),
    use_git: bool = typer.Option(False, "--git", help=GIT_HELP),
    overlay: str = typer.Option(None, "--overlay", help=OVERLAY_HELP),
    canary: int = typer.Option(None, "--canary", help="With --git: canaryTrafficPercent (1-99)."),
    branch: str = typer.Option(None, "--branch", help="With --git: commit on this new branch."),
    as_json: bool = typer.Option(False, "--json", help="Print the new production version."),
) -> None:
    """Point `production` at VERSION (atomically; the history keeps the move).

    With --git the store comes from the overlay, and the overlay's commit message names the
    version, its metrics and the gate's decision.
    """
    if use_git:
        from imgrec.gitops.promote import promote_git

        result = promote_git(version, _git_options(overlay), store=store, reason=reason,
                             canary=canary, branch=branch)  # fmt: skip
        _report(result, as_json, f"production is now version {version} ({result['commit'][:12]})")
        return
    from imgrec.model_store import ModelStore

    v = ModelStore(store or DEFAULT_STORE).promote(version, reason=reason)
    _report(v.to_dict(), as_json, f"production is now version {v.version}")


@models_app.command("rollback")
def rollback(
    store: str = typer.Option(None, "--store", help=STORE_HELP + " [default: model-store]"),
    to: int = typer.Option(None, "--to", help="Version to go back to (default: the previous)."),
    reason: str = typer.Option("rollback", "--reason", help="Recorded in the history."),
    use_git: bool = typer.Option(False, "--git", help=GIT_HELP),
    overlay: str = typer.Option(None, "--overlay", help=OVERLAY_HELP),
    branch: str = typer.Option(None, "--branch", help="With --git: commit on this new branch."),
    as_json: bool = typer.Option(False, "--json", help="Print the new production version."),
) -> None:
    """Move `production` back to the previous production version (or to --to)."""
    if use_git:
        from imgrec.gitops.promote import rollback_git

        result = rollback_git(_git_options(overlay), to=to, store=store, reason=reason,
                              branch=branch)  # fmt: skip
        text = f"rolled back: production is now version {result['version']}"
        _report(result, as_json, f"{text} ({result['commit'][:12]})")
        return
    from imgrec.model_store import ModelStore

    v = ModelStore(store or DEFAULT_STORE).rollback(to=to, reason=reason)
    _report(v.to_dict(), as_json, f"rolled back: production is now version {v.version}")


@models_app.command("status")
def status(
    overlays: str = typer.Option(
        "manifests/overlays", "--overlays", help="An overlay, or a folder of overlays."
    ),
    port: int = typer.Option(
        8080, "--port", help="Also report what `imgrec deploy sync` serves on this local port."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line per overlay."),
) -> None:
    """What each overlay deploys (store, version, canary) and whether the store agrees; and
    what the local server synced from git serves, when `imgrec deploy sync` runs for --port.

    Exits with error[production_mismatch] naming every overlay whose version differs from its
    store's production pointer or is missing from the store.
    """
    from imgrec.errors import ProductionMismatchError
    from imgrec.gitops.promote import overlay_status, overlays_under

    rows = [overlay_status(p) for p in overlays_under(overlays)]
    if not rows:
        raise ConfigError(
            f"no overlays under {overlays}", hint="pass --overlays manifests/overlays"
        )
    for row in rows:
        if as_json:
            typer.echo(json.dumps(row))
            continue
        canary = f" canary {row['canary_percent']}%" if row.get("canary_percent") else ""
        typer.echo(
            f"{row['overlay']}: git v{row.get('git_version')}{canary}, store "
            f"v{row.get('store_version')} ({row.get('store', '?')}): {row['state']}"
            + (f" - {row['problem']}" if row.get("problem") else "")
        )
    _print_local(port, as_json)
    bad = [r for r in rows if r["state"] in ("mismatch", "missing_version", "invalid_overlay")]
    if bad:
        raise ProductionMismatchError(
            "; ".join(f"{r['overlay']}: {r['problem']}" for r in bad),
            hint="promote the intended version with `imgrec models promote V --git --overlay ...`",
        )


@models_app.command("history")
def history(
    store: str = typer.Option("model-store", "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line per event."),
) -> None:
    """Every registration, promotion and rollback, oldest first."""
    from imgrec.model_store import ModelStore

    for event in ModelStore(store).history():
        if as_json:
            typer.echo(json.dumps(event))
        else:
            extra = f" ({event['reason']})" if event.get("reason") else ""
            typer.echo(f"{event['time']}  {event['event']:<8} v{event['version']}{extra}")


def _print_local(port: int, as_json: bool) -> None:
    from imgrec.serving.gitops_sync import describe, status_path

    path = status_path(port)
    if not path.is_file():
        return
    sync = json.loads(path.read_text())
    if as_json:
        typer.echo(json.dumps({"local_server": port, **sync}))
    else:
        typer.echo(f"local server :{port} ({sync.get('overlay')} at {sync.get('ref')}): "
                   f"{describe(sync)}")  # fmt: skip


def _report(doc: dict, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(doc, default=str) if as_json else text)
