"""A bounded background writer: the request handler queues, one thread writes in batches.

The prediction log and the image capture both write what a request produced without making
the request wait for the store. The queue is bounded (in items and, when items carry bytes,
in bytes, counted until written): when the store cannot keep up, new items are dropped and
counted in ``dropped`` rather than slowing requests or growing memory. A failed write is
logged and counted in ``failed_writes``, never fatal::

    class Printer(BackgroundWriter[str]):
        def write_batch(self, batch: list[str]) -> None:
            print(*batch)

    w = Printer("printer")
    w.append("hello")        # True: queued (False: dropped, the queue is full)
    w.close()                # writes what is queued, stops the thread
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("imgrec.serving")


class BackgroundWriter(Generic[T]):
    """Subclasses implement :meth:`write_batch`; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        max_queue: int = 10_000,
        max_batch: int = 1000,
        flush_interval_s: float = 1.0,
        max_queue_bytes: int | None = None,
    ) -> None:
        self.name = name
        self.max_batch = max_batch
        self.flush_interval_s = flush_interval_s
        self.max_queue_bytes = max_queue_bytes
        self.dropped = 0
        self.written = 0
        self.failed_writes = 0
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[T, int] | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._work, name=f"imgrec-{name}", daemon=True)
        self._thread.start()

    def append(self, item: T, nbytes: int = 0) -> bool:
        """Queue ``item`` (``nbytes`` counts against ``max_queue_bytes``); returns False, and
        counts a drop, when the queue is full. Never blocks."""
        with self._lock:
            if self.max_queue_bytes is not None and (
                self._queued_bytes + nbytes > self.max_queue_bytes
            ):
                self.dropped += 1
                return False
            try:
                self._queue.put_nowait((item, nbytes))
            except queue.Full:
                self.dropped += 1
                return False
            self._queued_bytes += nbytes
            return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued and stop the writer thread."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def write_batch(self, batch: list[T]) -> None:
        """Write one batch; raise on failure (counted and logged by the caller)."""
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """``written``, ``dropped``, ``failed_writes`` and ``queued`` so far."""
        return {
            "written": self.written,
            "dropped": self.dropped,
            "failed_writes": self.failed_writes,
            "queued": self._queue.qsize(),
        }

    def _work(self) -> None:
        done = False
        while not done:
            batch: list[T] = []
            batch_bytes = 0
            deadline = time.monotonic() + self.flush_interval_s
            while len(batch) < self.max_batch:
                try:
                    entry = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if entry is None:
                    done = True
                    break
                item, nbytes = entry
                batch_bytes += nbytes
                batch.append(item)
            if batch:
                try:
                    self.write_batch(batch)
                except Exception:  # never let a writer take the server down; count and go on
                    self.failed_writes += 1
                    log.exception("%s: write of %d items failed", self.name, len(batch))
            with self._lock:  # bytes count against the bound until they are written
                self._queued_bytes -= batch_bytes
