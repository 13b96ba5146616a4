"""The dashboard's settings: what it reads, where it listens, whether actions are allowed."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class DashboardConfig:
    """Every source is optional; a page whose source is missing says how to provide it.

    ``allow_actions`` enables promote/rollback, which also need ``token`` (generated when not
    given; printed once at start). Uploads are bounded by ``max_upload_bytes`` per request and
    ``max_files`` per request; each image by the decoder's pixel limit (``IMGREC_MAX_PIXELS``).
    """

    store: str = "model-store"
    log: str | None = None  # prediction log: folder of *.jsonl or one file
    runs: str = "runs/pipeline"
    reports: str = "runs/monitor"  # drift reports (imgrec monitor report --out DIR/...)
    server: str | None = None  # KServe endpoint, e.g. http://127.0.0.1:8080
    capture: str | None = None  # captured images (imgrec serve --capture DEST)
    labels: str | None = None  # labels that came back (imgrec label import OUT, or a CSV)
    port: int = 8050
    allow_actions: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    max_upload_bytes: int = 32 * 1024 * 1024
    max_files: int = 32
    top_k: int = 5
    host: str = LOOPBACK
