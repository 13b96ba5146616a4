"""Shared test fixtures.

* ``s3_server`` (session): a real moto S3 server on 127.0.0.1 and a free port. While it runs,
  ``AWS_ENDPOINT_URL`` points at it and dummy credentials are set (restored afterwards);
  yields the endpoint URL.
* ``make_bucket``: ``make_bucket() -> "imgrec-test-3"`` creates a fresh bucket on that server.
* ``bad_images``: the function ``write_bad_images(folder) -> dict[key, Path]`` from
  ``tests/image_fixtures.py``; its docstring lists which keys are bad (with the expected error
  code, also in ``BAD_CODES``) and which are good (``GOOD_KEYS``).
* ``bad_image_files``: those files already written to a temporary folder.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from image_fixtures import write_bad_images

_S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on loopback; env points boto3 (and imgrec.storage) at it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**_S3_ENV, "AWS_ENDPOINT_URL": endpoint}
    saved = {k: os.environ.get(k) for k in [*env, "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"]}
    os.environ.update(env)
    os.environ.pop("AWS_ENDPOINT_URL_S3", None)
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_BUCKET_IDS = itertools.count(1)


@pytest.fixture
def make_bucket(s3_server: str) -> Callable[[], str]:
    """Returns ``make() -> bucket name``; each call creates a new empty bucket."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")

    def make() -> str:
        name = f"imgrec-test-{next(_BUCKET_IDS)}"
        client.create_bucket(Bucket=name)
        return name

    return make


@pytest.fixture
def bad_images() -> Callable[[str | Path], dict[str, Path]]:
    """``write_bad_images(folder) -> {key: path}``; see tests/image_fixtures.py for the keys."""
    return write_bad_images


@pytest.fixture
def bad_image_files(tmp_path: Path) -> dict[str, Path]:
    """Every bad and good case written to a temporary folder (``{key: path}``)."""
    return write_bad_images(tmp_path / "images")
