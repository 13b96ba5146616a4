"""Promote and roll back from the dashboard (``--allow-actions`` and the token), then make the
model server serve the new production version.

The store's ``production`` pointer moves first (:class:`imgrec.model_store.ModelStore`). When
``--server`` is a local ``imgrec serve`` -- found through the state file it keeps while it runs
(:mod:`serving.local_server`) -- that server then loads ``STORE@VERSION`` through its admin route,
the same hot swap as the pipeline's ``local`` deploy step and ``imgrec deploy sync``: requests in
flight finish on the old version, none fails. If the server refuses the version, the pointer goes
back, so store and server never disagree. A ``--server`` that is not a local ``imgrec serve``
refuses the action before anything moves (on a cluster, production follows git:
``imgrec models promote V --git``)::

    done = apply_action(store, "promote", version=3, reason="better recall",
                        server_url="http://127.0.0.1:8080")
    done.version, done.served    # 3, True
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from imgrec import storage
from imgrec.errors import ImgrecError, NotFoundError, RedeployError
from imgrec.model_store import ModelStore

ACTIONS = ("promote", "rollback")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ActionDone:
    kind: str
    version: int  # the production version now
    served: bool  # the model server at --server was swapped to it


def local_server(server_url: str | None) -> dict[str, Any] | None:
    """The state (``url``, ``token``, ``models``) of the ``imgrec serve`` at ``server_url``;
    ``None`` without ``--server``; :class:`RedeployError` when it is not a local one that runs."""
    if not server_url:
        return None
    from imgrec.serving.local_server import running_server, state_path

    parts = urlsplit(server_url)
    port = parts.port
    if parts.hostname not in LOOPBACK or port is None:
        raise RedeployError(
            f"the model server {server_url} is not a local `imgrec serve`: the dashboard "
            "cannot swap its model",
            hint="promote through git (`imgrec models promote V --git`), which the cluster follows",
        )
    state = running_server(port)
    if state is None:
        raise RedeployError(
            f"no running `imgrec serve` answers for {server_url} ({state_path(port)} is missing "
            "or its server is gone); nothing was changed",
            hint="start the server on this machine with `imgrec serve STORE@production --port "
            f"{port}` (same IMGREC_CACHE), or run the dashboard without --server",
        )
    return state


def apply_action(
    store: ModelStore, kind: str, *, version: int | None, reason: str, server_url: str | None
) -> ActionDone:
    """Move ``production`` (``promote`` to ``version``, or ``rollback``) and swap the server."""
    if kind not in ACTIONS:
        raise NotFoundError(f"no action {kind!r}", hint=f"actions: {', '.join(ACTIONS)}")
    state = local_server(server_url)  # before anything moves
    before = store.production_version()
    if kind == "promote":
        if version is None:
            raise NotFoundError("promote needs a version", hint="choose one on the Models page")
        moved = store.promote(version, reason=f"dashboard: {reason}")
    else:
        moved = store.rollback(reason=f"dashboard: {reason}")
    if state is None:
        return ActionDone(kind, moved.version, served=False)
    import httpx

    from imgrec.serving.local_server import DEFAULT_NAME, swap_local

    uri = store.uri if storage.is_s3(store.uri) else os.path.abspath(store.uri)
    name = (state.get("models") or [DEFAULT_NAME])[0]
    try:
        swap_local(state, f"{uri}@{moved.version}", name)
    except (ImgrecError, httpx.HTTPError) as exc:
        if before is not None and before != moved.version:
            store.promote(before, reason=f"dashboard: the server refused version {moved.version}")
        raise RedeployError(
            f"the model server at {server_url} did not load version {moved.version}: {exc}",
            hint=f"production is back on version {before}, which the server still serves",
        ) from None
    return ActionDone(kind, moved.version, served=True)
