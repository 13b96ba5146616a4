"""Fixtures for the pipeline tests (helpers live in ``pipeline_helpers.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pipeline_helpers import make_imagefolder


@pytest.fixture
def imagefolder(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``imagefolder(name, **kwargs)`` writes a small dataset under ``tmp_path``."""

    def make(name: str = "data", **kwargs: object) -> Path:
        return make_imagefolder(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def s3_bucket(s3_server: object) -> str:
    """A fresh bucket on the loopback S3 server; returns ``s3://bucket``."""
    import uuid

    from imgrec import storage

    name = f"imgrec-{uuid.uuid4().hex[:10]}"
    storage.s3_client().create_bucket(Bucket=name)
    return f"s3://{name}"
