"""Run the dashboard with uvicorn on a loopback socket (port 0 picks a free port)::

from imgrec.dashboard.config import DashboardConfig
from imgrec.dashboard.server import serve
serve(DashboardConfig(store="model-store", server="http://127.0.0.1:8080"))  # blocks
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

from imgrec.dashboard.config import DashboardConfig
from imgrec.errors import ConfigError, DashboardStartError, ImgrecError


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

    from imgrec.dashboard.app import create_app

    sock = bind(config)
    url = f"http://{config.host}:{sock.getsockname()[1]}"
    app = create_app(config)
    if on_ready:
        on_ready(url)
    # No websockets, no lifespan events, asyncio's own loop: the dashboard uses none of them,
    # and not importing their modules shortens the start (BENCHMARKS.md, "Dashboard").
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           ws="none", lifespan="off", loop="asyncio"))  # fmt: skip
    server.run(sockets=[sock])


@contextlib.contextmanager
def dashboard_beside(
    store: str | os.PathLike[str], runs: str | os.PathLike[str], server_url: str, **options: str
) -> Iterator[str]:
    """``imgrec dashboard`` in a child process while the model serves (``make run``); yields
    its URL and stops it on exit. Port 8050 when free, else any free port. ``options`` are
    further ``--name value`` flags (``log``, ``reports``)."""
    port = 8050
    try:
        bind(DashboardConfig(port=port)).close()
    except ImgrecError:
        port = 0
    args = ["--store", str(store), "--runs", str(runs), "--server", server_url]
    for name, value in options.items():
        args += [f"--{name}", str(value)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgrec", "dashboard", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not found:
            raise DashboardStartError(
                f"the dashboard did not start: {line.strip() or 'no output'}",
                hint="run `imgrec dashboard` by hand to see why",
            )
        yield found[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
