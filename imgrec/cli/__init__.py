"""`imgrec` command line: thin wrappers that parse arguments, call the library, print results.

Errors from the library (``ImgrecError``) become one line ``error[code]: message (hint)`` and a
non-zero exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys

from imgrec.cli.app import DEBUG, app
from imgrec.errors import ImgrecError

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
    "imgrec.cli.monitor",
)


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (used by the ``imgrec`` console script)."""
    _load_commands()
    DEBUG["on"] = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # with standalone_mode=False click returns a `typer.Exit(code)`'s code instead of exiting
        result = app(args=argv, prog_name="imgrec", standalone_mode=False)
    except ImgrecError as exc:
        if DEBUG["on"]:
            raise
        print(f"error[{exc.code}]: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # click's usage errors and the like
        import click

        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
