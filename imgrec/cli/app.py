"""The Typer application and its sub-command groups; command modules attach to these."""

from __future__ import annotations

import logging
import sys

import typer

app = typer.Typer(
    name="imgrec",
    help="Image recognition: train, evaluate, predict, serve and run the Kubeflow pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Datasets: sample data, reports, conversion.", no_args_is_help=True)
models_app = typer.Typer(help="The model store: list, promote, rollback.", no_args_is_help=True)
pipeline_app = typer.Typer(help="The Kubeflow training pipeline.", no_args_is_help=True)
deploy_app = typer.Typer(
    help="Deployment from git: sync the local server to an overlay, set the image tag.",
    no_args_is_help=True,
)
monitor_app = typer.Typer(
    help="Drift monitoring: reference profiles and drift reports on the prediction log.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
label_app = typer.Typer(
    help="Labels for captured images: Label Studio tasks out, labels back in.",
    no_args_is_help=True,
)
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(deploy_app, name="deploy")
app.add_typer(label_app, name="label")
app.add_typer(monitor_app, name="monitor")

DEBUG = {"on": False}
ARGV: list[str] = []  # the arguments of this invocation (`train --nproc` relaunches with them)


def _print_version(value: bool) -> None:
    if value:
        from imgrec import __version__

        typer.echo(f"imgrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        expose_value=False,
        callback=_print_version,
        help="Print imgrec's version and exit.",
    ),
) -> None:
    DEBUG["on"] = debug


ONE_TIME_WORK_LOGGERS = ("imgrec.inference", "imgrec.quantize")
"""Loggers whose INFO lines tell of one-time work a command pays on its first run (the first
ONNX export of a model, an int8 calibration) and of its fallbacks."""


class _StderrLines(logging.Handler):
    """Each record as its plain message on the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # logging's contract: a handler never raises
            self.handleError(record)


def show_one_time_work() -> None:
    """Print the INFO lines of :data:`ONE_TIME_WORK_LOGGERS` on stderr.

    The CLI configures no logging, so without this a first ``imgrec predict`` over a folder
    spent seconds exporting the model to ONNX without a word (logging's default shows
    warnings only). Idempotent; the servers configure their own logs."""
    for name in ONE_TIME_WORK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, _StderrLines) for h in logger.handlers):
            logger.addHandler(_StderrLines())
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
