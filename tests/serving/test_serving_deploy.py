"""The local deploy step: a running server hot-swaps store versions under load, losing no
request; a version that cannot load leaves the old one serving and rolls ``production`` back."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from model_fixtures import png_b64 as _png
from model_fixtures import servable_model as _model_dir
from serving_helpers import free_port

from imgrec.model_store import ModelStore
from imgrec.serving.deploy import DeployError, deploy_step


@pytest.mark.slow
def test_local_hot_swap_under_load_loses_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path / "cache"))
    store = ModelStore(tmp_path / "store")
    store.register(_model_dir(tmp_path, ["a", "b"], 1))
    port = free_port()
    started = deploy_step(str(store.uri), 1, target="local", port=port)
    assert started["action"] == "started"
    url = f"http://127.0.0.1:{port}/v1/models/imgrec:predict"
    results: list[tuple[int, str, str]] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(timeout=60) as client:
            i = 0
            while not stop.is_set():
                r = client.post(
                    url, json={"instances": [{"image": {"b64": _png(worker * 1000 + i)}}]}
                )
                body = r.json()
                label = body["predictions"][0]["labels"][0] if r.status_code == 200 else ""
                results.append((r.status_code, body.get("model_version", ""), label))
                i += 1

    try:
        workers = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        store.register(_model_dir(tmp_path, ["x", "y", "z"], 2))
        swapped = deploy_step(str(store.uri), 2, target="local", port=port)
        assert swapped["action"] == "swapped" and swapped["version"] == "2"
        admin = f"http://127.0.0.1:{port}/imgrec/admin/models/imgrec/load"
        denied = httpx.post(admin, json={"model": f"{store.uri}@1"},
                            headers={"Authorization": "Bearer wrong"}, timeout=30)  # fmt: skip
        assert denied.status_code == 401 and denied.json()["code"] == "unauthorized"
        assert httpx.post(admin, json={"model": "x"}, timeout=30).status_code == 401
        time.sleep(1.0)
        # a version whose weights do not match its card cannot load: old version keeps serving
        broken = _model_dir(tmp_path, ["p", "q"], 3)
        card = json.loads((broken / "model.json").read_text())
        card["classes"], card["num_classes"] = ["p", "q", "r", "s"], 4
        (broken / "model.json").write_text(json.dumps(card))
        store.register(broken)
        with pytest.raises(DeployError) as info:
            deploy_step(str(store.uri), 3, target="local", port=port)
        assert "rolled back to version 2" in str(info.value)
        assert store.production_version() == 2
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join()
        os.kill(started["pid"], signal.SIGTERM)
    statuses = [r[0] for r in results]
    assert statuses and set(statuses) == {200}, statuses
    versions = [r[1] for r in results]
    assert versions[0] == "1" and versions[-1] == "2"
    assert all(label in ("a", "b") for _, v, label in results if v == "1")
    assert all(label in ("x", "y", "z") for _, v, label in results if v == "2")
