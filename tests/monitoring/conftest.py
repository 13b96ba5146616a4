"""Fixtures of the monitoring tests: a tiny real model, held-out images, its reference.

``monitored`` (session): ``Monitored(model, data, reference)`` -- a seeded ``small_resnet``
over red/green/blue images whose predictions differ by colour, its colour dataset (40 val
images per class) and the reference built through the server's path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "evaluation"))
sys.path.insert(0, str(HERE.parent / "pipeline"))  # kfp_api_server: the KFP REST on loopback

from monitor_fixtures import Monitored, make_monitored  # noqa: E402


@pytest.fixture(scope="session")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Monitored:
    return make_monitored(tmp_path_factory.mktemp("monitored"))
