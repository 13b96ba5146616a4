"""``imgrec dashboard``: the web app over the store, runs, prediction log, drift reports."""

from __future__ import annotations

import os
from typing import Any

import typer

from imgrec.cli.app import app


@app.command("dashboard")
def dashboard_command(
    store: str = typer.Option("model-store", "--store", help="Model store folder or s3://."),
    log: str = typer.Option(
        "", "--log", help="Prediction log (folder of *.jsonl or one file) for traffic charts."
    ),
    runs: str = typer.Option("runs/pipeline", "--runs", help="Folder of pipeline runs."),
    reports: str = typer.Option(
        "runs/monitor", "--reports", help="Folder of drift reports (imgrec monitor report)."
    ),
    server: str = typer.Option(
        "", "--server", help="Model server URL for Try it, e.g. http://127.0.0.1:8080."
    ),
    capture: str = typer.Option(
        "", "--capture", help="Captured images (imgrec serve --capture DEST) for the review queue."
    ),
    labels: str = typer.Option(
        "", "--labels", help="Labels that came back (imgrec label import OUT, or a CSV)."
    ),
    port: int = typer.Option(8050, "--port", help="Port on 127.0.0.1 (0 = a free one)."),
    allow_actions: bool = typer.Option(
        False,
        "--allow-actions",
        help="Enable promote/rollback, protected by a token (IMGREC_DASHBOARD_TOKEN or "
        "generated and printed).",
    ),
) -> None:
    """Serve the dashboard on 127.0.0.1:PORT until Ctrl-C (read-only unless --allow-actions)."""
    from dashboard.config import DashboardConfig
    from dashboard.server import serve

    given = os.environ.get("IMGREC_DASHBOARD_TOKEN", "")
    extra: dict[str, Any] = {"token": given} if given else {}
    config = DashboardConfig(
        store=store,
        log=log or None,
        runs=runs,
        reports=reports,
        server=server or None,
        capture=capture or None,
        labels=labels or None,
        port=port,
        allow_actions=allow_actions,
        **extra,
    )

    def ready(url: str) -> None:
        typer.echo(f"dashboard on {url} (Ctrl-C stops)")
        if allow_actions and not given:
            typer.echo(f"action token: {config.token}")

    serve(config, on_ready=ready)
