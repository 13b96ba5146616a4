"""What a running server prints: imgrec's own lines, and kserve's and uvicorn's only on request.

``imgrec serve`` and ``make run`` show the lines a person needs -- the model loaded, the URL
once it listens, hot swaps, warnings and errors -- and keep kserve's and uvicorn's INFO lines
(registration, start-up, shutdown) and the per-request access lines out of the way::

    configure_logs("info")                    # default: imgrec's INFO lines, others' warnings
    configure_logs("debug", access_log=True)  # everything, one access line per request

Warnings and errors of every logger always show.
"""

from __future__ import annotations

import logging

LOG_LEVELS = ("debug", "info", "warning")
"""Levels ``imgrec serve --log-level`` accepts (imgrec's own lines; warnings always show)."""

_LIBRARY_LOGGERS = ("kserve", "kserve.trace", "uvicorn", "uvicorn.error")
_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def configure_logs(level: str = "info", *, access_log: bool = False) -> None:
    """Set imgrec's log (every ``imgrec.*`` logger) to ``level``; kserve/uvicorn: WARNING.

    With ``level="debug"`` kserve's and uvicorn's INFO and DEBUG lines show too (kserve's
    per-request timing line included: ~5% of throughput at 100 req/s). ``access_log`` adds
    uvicorn's one line per request. Call it again after kserve configures its loggers (its
    ``ModelServer`` does so when constructed); it is idempotent.
    """
    if level not in LOG_LEVELS:
        from imgrec.errors import ConfigError

        raise ConfigError(
            f"unknown log level {level!r}", hint=f"use one of {', '.join(LOG_LEVELS)}"
        )
    own = logging.getLogger("imgrec")  # imgrec.serving, imgrec.quantize, imgrec.inference...
    if not own.handlers:  # kserve configures only its own loggers
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        own.addHandler(handler)
        own.propagate = False
    own.setLevel(level.upper())
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if access_log else logging.WARNING)
