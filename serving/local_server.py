"""A running local ``imgrec serve``, found through its state file, and its hot swap.

The server writes ``$IMGREC_CACHE/serve/PORT.json`` (``0600``: URL, pid, admin token) while it
runs (:mod:`serving.server`); whoever redeploys on this machine -- the pipeline's ``local`` deploy
step, ``imgrec deploy sync``, the dashboard's promote/rollback -- finds it here and asks its admin
route to load another version. Kept free of kserve and torch so that a caller pays for httpx only::

    state = running_server(8080)            # None when nothing serves on 8080
    swap_local(state, "model-store@3")      # blocks until version 3 serves
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imgrec import storage
from imgrec.errors import DeployError

DEFAULT_NAME = "imgrec"


def state_path(port: int) -> Path:
    """Where a running ``imgrec serve`` on ``port`` records its URL, pid and admin token."""
    return storage.cache_folder("serve") / f"{port}.json"


def running_server(port: int) -> dict[str, Any] | None:
    """The state of the live server on ``port`` (``url``, ``pid``, ``token``, ``models``), or
    ``None`` when no state file exists or the server there does not answer."""
    import httpx

    path = state_path(port)
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    try:
        if httpx.get(f"{state['url']}/v2/health/live", timeout=3).status_code == 200:
            return dict(state)
    except httpx.HTTPError:
        pass
    return None


def swap_local(
    state: dict[str, Any],
    model: str,
    name: str = DEFAULT_NAME,
    *,
    canary_percent: int | None = None,
) -> dict[str, Any]:
    """Ask the running server described by ``state`` to load ``model`` (blocks until done);
    with ``canary_percent`` as a canary taking that share of the requests."""
    import httpx

    body: dict[str, Any] = {"model": model}
    if canary_percent is not None:
        body["canary_percent"] = canary_percent
    r = httpx.post(
        f"{state['url']}/imgrec/admin/models/{name}/load",
        json=body,
        headers={"Authorization": f"Bearer {state['token']}"},
        timeout=600,
    )
    if r.status_code != 200:
        raise DeployError(f"the server at {state['url']} refused {model}: {r.text[:300]}")
    return dict(r.json())
