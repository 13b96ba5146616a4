"""serving.logs: imgrec's lines at the chosen level; kserve/uvicorn INFO only at debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from imgrec.errors import ConfigError
from serving.logs import configure_logs

NAMES = ("imgrec.serving", "kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def _restore_levels() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in NAMES}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _shown(name: str, level: int) -> bool:
    return logging.getLogger(name).isEnabledFor(level)


def test_default_shows_imgrec_info_and_only_warnings_of_the_rest() -> None:
    configure_logs()
    assert _shown("imgrec.serving", logging.INFO)
    for name in NAMES[1:]:
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
