"""The options of ``imgrec dashboard``, declared once, and a parser for them that needs no Typer.

:data:`OPTIONS` is the one declaration: :mod:`imgrec.cli.dashboard` builds the Typer command
from it (``--help``, usage errors with click's did-you-mean), and :func:`quick_parse` reads the
same table so that ``imgrec dashboard ...`` reaches its first page without loading Typer at all.
The reason is start-up time (issue 13: "well under 2 s"): Typer 0.29 coerces every option that is
not a flag through a pydantic ``TypeAdapter``, and pydantic's import alone costs more CPU than the
dashboard's own modules. :func:`quick_parse` takes only what it can read for certain (``--name
VALUE``, ``--name=VALUE``, flags, whole numbers); anything else (``--help``, an unknown option, a
bad number, a missing value) returns ``None`` and the command goes through Typer as usual::

    quick_parse(["--store", "s3://b/m", "--port=0"])   # {"store": "s3://b/m", "port": 0, ...}
    quick_parse(["--help"])                            # None: Typer prints the help
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    name: str  # the parameter's (and DashboardConfig's) name
    flag: str
    type: type
    default: Any
    help: str


OPTIONS = (
    Option("store", "--store", str, "model-store", "Model store folder or s3://."),
    Option("log", "--log", str, "",
           "Prediction log (folder of *.jsonl or one file) for traffic charts."),
    Option("runs", "--runs", str, "runs/pipeline", "Folder of pipeline runs."),
    Option("reports", "--reports", str, "runs/monitor",
           "Folder of drift reports (imgrec monitor report)."),
    Option("server", "--server", str, "",
           "Model server URL for Try it and for promote/rollback's hot swap, e.g. "
           "http://127.0.0.1:8080."),
    Option("capture", "--capture", str, "",
           "Captured images (imgrec serve --capture DEST) for the review queue."),
    Option("labels", "--labels", str, "",
           "Labels that came back (imgrec label import OUT, or a CSV)."),
    Option("port", "--port", int, 8050, "Port on 127.0.0.1 (0 = a free one)."),
    Option("allow_actions", "--allow-actions", bool, False,
           "Enable promote/rollback, protected by a token (IMGREC_DASHBOARD_TOKEN or generated "
           "and printed); they hot-swap the local server at --server."),
)  # fmt: skip
HELP = "Serve the dashboard on 127.0.0.1:PORT until Ctrl-C (read-only unless --allow-actions)."


def quick_parse(args: list[str]) -> dict[str, Any] | None:
    """The option values of ``imgrec dashboard ARGS`` (defaults filled in), or ``None`` when
    Typer should parse them (help, anything unknown or malformed)."""
    by_flag = {o.flag: o for o in OPTIONS}
    values = {o.name: o.default for o in OPTIONS}
    i = 0
    while i < len(args):
        flag, eq, inline = args[i].partition("=")
        option = by_flag.get(flag)
        if option is None:
            return None
        if option.type is bool:
            if eq:
                return None
            values[option.name] = True
            i += 1
            continue
        if eq:
            text = inline
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            text = args[i + 1]
            i += 1
        else:
            return None
        if option.type is int:
            if not text.lstrip("-").isdigit():
                return None
            values[option.name] = int(text)
        else:
            values[option.name] = text
        i += 1
    return values


def run(values: dict[str, Any], echo: Any = print) -> None:
    """Serve the dashboard with these option values until interrupted; ``echo`` prints the
    URL line (and the generated action token) once the socket listens."""
    from imgrec.dashboard.config import DashboardConfig
    from imgrec.dashboard.server import serve

    given = os.environ.get("IMGREC_DASHBOARD_TOKEN", "")
    extra: dict[str, Any] = {"token": given} if given else {}
    optional = ("log", "server", "capture", "labels")  # "" = not given
    fields: dict[str, Any] = {k: (v or None) if k in optional else v for k, v in values.items()}
    config = DashboardConfig(**fields, **extra)

    def ready(url: str) -> None:
        echo(f"dashboard on {url} (Ctrl-C stops)", flush=True)
        if config.allow_actions and not given:
            echo(f"action token: {config.token}", flush=True)

    serve(config, on_ready=ready)
