"""`imgrec` command line: thin wrappers that parse arguments, call the library, print results.

Every failure is handled here, in :func:`main`, for every command present and future:

* errors from the library (``ImgrecError``) print one line ``error[code]: message (hint)``;
* a command whose optional extra is not installed (``imgrec serve`` without ``imgrec[serve]``)
  prints ``error[missing_extra]: ...`` with the pip command (:mod:`imgrec.extras`);
* usage errors (unknown command or option, missing argument, bad value or choice) print click's
  usual message on stderr -- the usage line and one ``Error:`` line with click's did-you-mean --
  and exit with code 2, click's and argparse's convention;
* ``--debug`` shows the traceback instead.

Typer loads only when a command needs it: ``imgrec dashboard`` with options it can read for
certain starts without it (:mod:`imgrec.cli.dashboard_args`), for a fast first page.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType

from imgrec.errors import ImgrecError

USAGE_EXIT_CODE = 2

# Each module registers its commands on the app when imported.
COMMAND_MODULES = (
    "imgrec.cli.data",
    "imgrec.cli.detect_data",
    "imgrec.cli.architectures",
    "imgrec.cli.train",
    "imgrec.cli.evaluate",
    "imgrec.cli.predict",
    "imgrec.cli.serve",
    "imgrec.cli.export",
    "imgrec.cli.models",
    "imgrec.cli.pipeline",
    "imgrec.cli.deploy",
    "imgrec.cli.dashboard",
    "imgrec.cli.label",
    "imgrec.cli.monitor",
)


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def click_exceptions() -> ModuleType:
    """The ``exceptions`` module of the click that Typer runs on (recent Typers vendor click)."""
    try:
        from typer._click import exceptions
    except ImportError:  # Typer built on the click package
        from click import exceptions  # type: ignore[no-redef]
    return exceptions


def _quick_command(args: list[str]) -> Callable[[], None] | None:
    """A command that runs without Typer, or ``None`` (so far only ``imgrec dashboard``)."""
    if args[:1] != ["dashboard"]:
        return None
    from imgrec.cli.dashboard_args import quick_parse, run

    values = quick_parse(args[1:])
    return None if values is None else (lambda: run(values))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (used by the ``imgrec`` console script)."""
    quick = _quick_command(list(argv if argv is not None else sys.argv[1:]))
    if quick is not None:
        try:
            quick()
        except ImgrecError as exc:
            print(f"error[{exc.code}]: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return 0
    import typer

    from imgrec.cli.app import ARGV, DEBUG, app
    from imgrec.extras import missing_extra

    _load_commands()
    ARGV[:] = argv if argv is not None else sys.argv[1:]
    DEBUG["on"] = "--debug" in ARGV
    clickx = click_exceptions()
    try:
        # with standalone_mode=False click returns a `typer.Exit(code)`'s code instead of exiting
        result = app(args=argv, prog_name="imgrec", standalone_mode=False)
    except ImgrecError as exc:
        if DEBUG["on"]:
            raise
        print(f"error[{exc.code}]: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional extra (pyproject.toml) not installed
        typed = missing_extra(exc)
        if typed is None or DEBUG["on"]:
            raise
        print(f"error[{typed.code}]: {typed}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except clickx.ClickException as exc:  # usage errors: UsageError, BadParameter, NoSuchOption
        if DEBUG["on"]:
            raise
        exc.show()  # click's own text: usage line, `Error: ...` with its did-you-mean
        return USAGE_EXIT_CODE if isinstance(exc, clickx.UsageError) else exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


def run() -> None:
    """The ``imgrec`` console script: :func:`main`, then the exit without the interpreter's
    seconds of teardown (:func:`imgrec.cli.exit.exit_now`)."""
    from imgrec.cli.exit import exit_code, exit_now

    try:
        code = main()
    except SystemExit as exc:  # e.g. the server's SIGTERM handler, after its finally blocks
        code = exit_code(exc)
    exit_now(code)


if __name__ == "__main__":
    run()
