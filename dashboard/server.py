"""Run the dashboard with uvicorn on a loopback socket (port 0 picks a free port)::

from dashboard.config import DashboardConfig
from dashboard.server import serve
serve(DashboardConfig(store="model-store", server="http://127.0.0.1:8080"))  # blocks
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from dashboard.config import DashboardConfig
from imgrec.errors import ConfigError


def bind(config: DashboardConfig) -> socket.socket:
    """A listening socket on the loopback address; a taken port is a one-line error."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
            hint="choose another --port (0 picks a free one)",
        ) from None
    sock.listen(128)
    return sock


def serve(config: DashboardConfig, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted; ``on_ready(url)`` is called once the socket listens."""
    import uvicorn

    from dashboard.app import create_app

    sock = bind(config)
    url = f"http://{config.host}:{sock.getsockname()[1]}"
    app = create_app(config)
    if on_ready:
        on_ready(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
