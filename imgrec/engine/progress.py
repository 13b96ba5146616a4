"""One progress-bar style for the engine's long loops (decoding, feature extraction)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def item_progress(what: str, *, quiet: bool = False) -> Progress:
    """A transient ``what [bar] n/N ETA`` bar on stderr; silent when quiet or not a terminal.

    Example::

        with item_progress("decoding train") as bar:
            task = bar.add_task("decode", total=len(paths))
            ...
            bar.advance(task)
    """
    console = Console(stderr=True, quiet=quiet)
    return Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
