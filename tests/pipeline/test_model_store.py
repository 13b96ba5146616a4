"""The model store: register / list / promote / rollback, locally and on S3; crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pipeline_helpers import make_model_dir

from imgrec import storage
from imgrec.errors import ImgrecError, ModelError, NotFoundError
from imgrec.model_store import ModelStore


def _exercise(store_uri: str, tmp_path: Path) -> None:
    store = ModelStore(store_uri)
    assert store.versions() == [] and store.production() is None
    m1 = make_model_dir(tmp_path / "m1", accuracy=0.8)
    m2 = make_model_dir(tmp_path / "m2", accuracy=0.9)
    v1 = store.register(m1, metadata={"metrics": {"accuracy": 0.8}})
    assert v1.version == 1 and v1.production
    v2 = store.register(m2, metadata={"metrics": {"accuracy": 0.9}})
    assert v2.version == 2
    listed = store.versions()
    assert [(v.version, v.production, v.metrics["accuracy"]) for v in listed] == [
        (1, False, 0.8),
        (2, True, 0.9),
    ]
    # The stored model is byte-identical to the source.
    got = storage.read_bytes(storage.join(v2.model_uri, "weights.safetensors"))
    assert got == (m2 / "weights.safetensors").read_bytes()
    store.verify(2)

    assert store.rollback().version == 1
    assert store.production_version() == 1
    with pytest.raises(ImgrecError) as err:
        store.rollback()
    assert err.value.code == "nothing_to_roll_back"
    assert store.promote(2).version == 2
    v3 = store.register(m1, metadata={"metrics": {"accuracy": 0.85}}, promote=False)
    assert v3.version == 3 and store.production_version() == 2
    with pytest.raises(NotFoundError, match="version 7"):
        store.promote(7)
    events = [(h["event"], h["version"]) for h in store.history()]
    assert events == [
        ("register", 1),
        ("promote", 1),
        ("register", 2),
        ("promote", 2),
        ("rollback", 1),
        ("promote", 2),
        ("register", 3),
    ]


def test_store_local(tmp_path: Path) -> None:
    _exercise(str(tmp_path / "store with space"), tmp_path)


@pytest.mark.s3
def test_store_s3(s3_bucket: str, tmp_path: Path) -> None:
    _exercise(f"{s3_bucket}/models/digits", tmp_path)


def test_register_refuses_a_folder_without_model_json(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"model\.json"):
        ModelStore(tmp_path / "store").register(tmp_path / "empty")
    assert ModelStore(tmp_path / "store").versions() == []


def test_verify_detects_tampering(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    v = store.register(make_model_dir(tmp_path / "m"))
    Path(v.model_uri, "weights.safetensors").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        store.verify(1)


_REGISTER = textwrap.dedent(
    """
    import sys
    from imgrec.model_store import ModelStore
    ModelStore(sys.argv[1]).register(sys.argv[2])
    """
)


def test_kill_during_register_leaves_production_complete(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store = ModelStore(store_dir)
    store.register(make_model_dir(tmp_path / "small"))
    big = make_model_dir(tmp_path / "big", weights_bytes=48 * 1024 * 1024)
    proc = subprocess.Popen([sys.executable, "-c", _REGISTER, str(store_dir), str(big)])
    target = store_dir / "versions" / "0002"
    deadline = time.monotonic() + 60
    while not target.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)  # mid-write: the 48 MB copy takes far longer than 1 ms
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert target.exists() and not store.is_complete(2), "the kill should land mid-write"
    # production is still the old complete version; the partial one is invisible.
    assert store.production_version() == 1
    assert [v.version for v in store.versions()] == [1]
    store.verify(1)
    pointer = json.loads((store_dir / "production.json").read_text())
    assert pointer["version"] == 1
    # The store keeps working: the next registration gets a fresh number.
    v = store.register(make_model_dir(tmp_path / "next"))
    assert v.version == 3 and store.production_version() == 3
    with pytest.raises(NotFoundError):
        store.promote(2)
