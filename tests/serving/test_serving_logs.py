"""serving.logs: imgrec's lines at the chosen level; kserve/uvicorn INFO only at debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from imgrec.errors import ConfigError
from imgrec.serving.logs import configure_logs

NAMES = (
    "imgrec",
    "imgrec.serving",
    "kserve",
    "kserve.trace",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
)


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    # configure_logs gives the "imgrec" logger a handler and stops propagation: undo that so
    # other tests' caplog still sees imgrec's records
    saved = {
        name: (logger.level, list(logger.handlers), logger.propagate)
        for name in NAMES
        for logger in [logging.getLogger(name)]
    }
    yield
    for name, (level, handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def _shown(name: str, level: int) -> bool:
    return logging.getLogger(name).isEnabledFor(level)


def test_default_shows_imgrec_info_and_only_warnings_of_the_rest() -> None:
    configure_logs()
    for name in ("imgrec.serving", "imgrec.inference.onnx", "imgrec.quantize"):
        assert _shown(name, logging.INFO), name
    for name in NAMES[2:]:
        assert not _shown(name, logging.INFO), name
        assert _shown(name, logging.WARNING), name


def test_debug_and_access_log_show_everything() -> None:
    configure_logs("debug", access_log=True)
    assert all(_shown(name, logging.INFO) for name in NAMES)
    assert _shown("kserve", logging.DEBUG)


def test_warning_level_still_shows_warnings() -> None:
    configure_logs("warning")
    assert not _shown("imgrec.serving", logging.INFO)
    assert all(_shown(name, logging.WARNING) for name in NAMES)


def test_unknown_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown log level 'loud'"):
        configure_logs("loud")
