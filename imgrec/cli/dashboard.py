"""``imgrec dashboard``: the web app over the store, runs, prediction log, drift reports.

The command is built from :data:`imgrec.cli.dashboard_args.OPTIONS`, the table that
:func:`imgrec.cli.main` also parses without Typer for a fast start (see that module).
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

from imgrec.cli.app import app
from imgrec.cli.dashboard_args import HELP, OPTIONS, run


def dashboard_command(**values: Any) -> None:
    run(values, echo=lambda text, **_: typer.echo(text))


dashboard_command.__doc__ = HELP
dashboard_command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter(
            o.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(o.default, o.flag, help=o.help),
            annotation=o.type,
        )
        for o in OPTIONS
    ]
)
dashboard_command.__annotations__ = {o.name: o.type for o in OPTIONS} | {"return": None}
app.command("dashboard")(dashboard_command)
