"""Promote and rollback from the dashboard make the running model server serve the new
production version: a real ``imgrec serve`` on loopback (started by the pipeline's local deploy
step, so it keeps its state file), two small untrained models, the hot swap through its admin
route; a version the server refuses puts the store back where it was."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from model_fixtures import png_b64, servable_model
from serving_helpers import free_port

from imgrec.dashboard.app import create_app
from imgrec.dashboard.config import DashboardConfig
from imgrec.model_store import ModelStore
from imgrec.serving.deploy import deploy_step

BASE = "http://127.0.0.1:8050"
pytestmark = pytest.mark.slow


def _served(url: str) -> tuple[str, set[str]]:
    """The version the server reports and the labels it answers with."""
    body = {"instances": [{"image": {"b64": png_b64(i)}} for i in range(6)], "top_k": 3}
    out = httpx.post(f"{url}/v1/models/imgrec:predict", json=body, timeout=60).json()
    labels = {lab for p in out["predictions"] for lab in p["labels"]}
    return str(out["model_version"]), labels


def _post(c: TestClient, kind: str, **form: str) -> httpx.Response:
    return c.post(f"/actions/{kind}", data={"token": "t0k", **form}, follow_redirects=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("redeploy")
    mp = pytest.MonkeyPatch()
    mp.setenv("IMGREC_CACHE", str(root / "cache"))  # the server's state file goes here
    store = ModelStore(root / "store")
    store.register(servable_model(root, ["a", "b"], 1))
    store.register(servable_model(root, ["x", "y", "z"], 2), promote=False)
    port = free_port()
    started = deploy_step(store.uri, 1, target="local", port=port)
    assert started["action"] == "started", started
    try:
        yield {"root": root, "store": store, "url": f"http://127.0.0.1:{port}"}
    finally:
        os.kill(started["pid"], signal.SIGTERM)
        mp.undo()


def test_promote_and_rollback_swap_the_running_server(served: dict[str, Any]) -> None:
    store, url = served["store"], served["url"]
    app = create_app(DashboardConfig(store=store.uri, server=url, allow_actions=True,
                                     token="t0k", runs=str(served["root"] / "runs")))  # fmt: skip
    c = TestClient(app, base_url=BASE)
    assert _served(url) == ("1", {"a", "b"})

    done = _post(c, "promote", version="2", reason="better")
    assert done.status_code == 303, done.text[:300]
    assert store.production_version() == 2
    assert _served(url) == ("2", {"x", "y", "z"})  # swapped: the store and the server agree
    page = c.get(done.headers["location"]).text
    assert 'id="action-done" data-version="2" data-served="1"' in page
    assert f"the model server at <code>{url}</code> now serves it" in page

    back = _post(c, "rollback")
    assert back.status_code == 303 and store.production_version() == 1
    assert _served(url) == ("1", {"a", "b"})

    # a version the server cannot load: refused, production back on 1, the server still on 1
    broken = servable_model(served["root"], ["p", "q"], 3)
    card = json.loads((broken / "model.json").read_text())
    card["classes"], card["num_classes"] = ["p", "q", "r", "s"], 4
    (broken / "model.json").write_text(json.dumps(card))
    store.register(broken, promote=False)
    refused = _post(c, "promote", version="3")
    assert refused.status_code == 502 and "redeploy_failed" in refused.text
    assert "production is back on version 1" in refused.text
    assert store.production_version() == 1
    assert _served(url) == ("1", {"a", "b"})


def test_a_server_that_cannot_be_swapped_refuses_before_anything_moves(
    served: dict[str, Any],
) -> None:
    store = served["store"]
    before = (store.production_version(), len(store.history()))
    for server in (f"http://127.0.0.1:{free_port()}", "http://10.0.0.1:8080"):
        config = DashboardConfig(store=store.uri, server=server, allow_actions=True,
                                 token="t0k", runs=str(served["root"] / "runs"))  # fmt: skip
        app = create_app(config)
        refused = _post(TestClient(app, base_url=BASE), "promote", version="2")
        assert refused.status_code == 502 and "redeploy_failed" in refused.text
        assert (store.production_version(), len(store.history())) == before
