"""The records the dashboard reads, opened once per process: store, runs, log, reports, server."""

from __future__ import annotations

import threading
import time
from typing import Any

from imgrec.dashboard.config import DashboardConfig
from imgrec.dashboard.drift import DriftReport, find_reports
from imgrec.dashboard.endpoint import Endpoint
from imgrec.dashboard.predlog import LogIndex
from imgrec.dashboard.review import captured_files, read_labels
from imgrec.dashboard.runs import Run, list_runs
from imgrec.model_store import ModelStore, ModelVersion

# Appended log bytes read inline by a page (fresh numbers); more goes to a background thread.
INLINE_REFRESH_BYTES = 2 * 1024 * 1024
CACHE_TTL_S = 2.0
LISTING_TTL_S = 10.0  # capture and label folders can hold many thousands of files


class Sources:
    """Cached readers of the dashboard's records; every page gets its data through here."""

    def __init__(self, config: DashboardConfig) -> None:
        self.config = config
        self.store = ModelStore(config.store)
        interest = self._interest if (config.capture or config.labels) else None
        self.log = LogIndex(config.log, interest=interest) if config.log else None
        self.endpoint = Endpoint(config.server) if config.server else None
        self._cache: dict[str, tuple[float, Any]] = {}
        self._worker: threading.Thread | None = None

    def _cached(self, key: str, load: Any, ttl: float = CACHE_TTL_S) -> Any:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and now - hit[0] < ttl:
            return hit[1]
        value = load()
        self._cache[key] = (now, value)
        return value

    def forget(self) -> None:
        """Drop cached reads (after an action changed the store and the served version)."""
        self._cache.clear()
        if self.endpoint is not None:
            self.endpoint.forget()

    def versions(self) -> list[ModelVersion]:
        return list(self._cached("versions", self.store.versions))

    def pointer(self) -> dict[str, Any] | None:
        return self._cached("pointer", self.store.pointer)  # type: ignore[no-any-return]

    def history(self) -> list[dict[str, Any]]:
        return list(self._cached("history", self.store.history))

    def runs(self) -> list[Run]:
        return list(self._cached("runs", lambda: list_runs(self.config.runs)))

    def reports(self) -> list[DriftReport]:
        return list(self._cached("reports", lambda: find_reports(self.config.reports)))

    def captures(self) -> dict[str, str]:
        captures = self._cached("captures", self._list_captures, LISTING_TTL_S)
        return dict(captures)

    def _list_captures(self) -> dict[str, str]:
        return captured_files(self.config.capture)

    def labels(self) -> dict[str, str]:
        return dict(self._cached("labels", lambda: read_labels(self.config.labels), LISTING_TTL_S))

    def _interest(self) -> set[str]:
        return set(self.captures()) | set(self.labels())

    # --- the prediction log ----------------------------------------------------------
    def start_indexing(self) -> None:
        """Bring the log index up to date in a background thread (startup stays fast)."""
        if self.log is None or (self._worker and self._worker.is_alive()):
            return
        self._worker = threading.Thread(target=self.log.refresh, name="predlog-index", daemon=True)
        self._worker.start()

    def log_index(self) -> LogIndex | None:
        """The index, refreshed inline when little was appended, else in the background."""
        if self.log is None:
            return None
        if not (self._worker and self._worker.is_alive()):
            pending = self.log.pending_bytes()
            if 0 < pending <= INLINE_REFRESH_BYTES:
                self.log.refresh()
            elif pending:
                self.start_indexing()
        return self.log

    def wait_indexed(self, timeout: float | None = None) -> bool:
        """Block until the background indexing (if any) has finished; True when it has."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return not (worker is not None and worker.is_alive())

    def indexing(self) -> tuple[int, int] | None:
        """``(bytes read, bytes to read)`` while the background thread indexes, else None."""
        if self.log is not None and self._worker and self._worker.is_alive():
            return self.log.progress
        return None
