"""Dynamic batching: concurrent requests share one model call, run in worker threads.

The event loop only enqueues and awaits futures; the model runs in dedicated threads (never
inside ``async def``); with ``workers > 1`` several batches run at once (e.g. one
single-threaded ONNX Runtime call per core, which wastes less than one call split across
cores). A batch closes when ``max_batch_size`` images are queued or ``max_wait_ms``
has passed since its first image arrived. Jobs whose request was cancelled (timeout, client gone)
are skipped. Each job carries the runtime that preprocessed it, so a hot swap never feeds an image
prepared for one model version to another.

Example::

    batcher = DynamicBatcher(lambda runtime, x: runtime.backend.run(x), max_batch_size=16)
    logits = await batcher.submit(runtime, [tensor_a, tensor_b])   # two (C, H, W) arrays
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("imgrec.serving")

# run_batch(runtime, x) returns one array, or a tuple of arrays, with batch as the first axis.
RunBatch = Callable[[Any, np.ndarray], Any]


@dataclass
class _Job:
    runtime: Any
    x: np.ndarray  # (C, H, W) float32
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatcherStats:
    """Counters exposed for tests and benchmarks."""

    batches: int = 0
    images: int = 0
    skipped: int = 0
    max_batch: int = 0


class DynamicBatcher:
    """Collects single images into batches and runs ``run_batch(runtime, x)`` in a thread."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_size: int = 16,
        max_wait_ms: float = 4.0,
        workers: int = 1,
        name: str = "imgrec-batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.stats = BatcherStats()
        self._queue: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def __len__(self) -> int:
        return len(self._queue)

    async def submit(self, runtime: Any, images: list[np.ndarray]) -> list[Any]:
        """Queue ``images`` (each ``(C, H, W)``); returns each image's output row (a tuple of
        rows when ``run_batch`` returns a tuple)."""
        loop = asyncio.get_running_loop()
        jobs = [_Job(runtime, x, loop.create_future(), loop) for x in images]
        with self._cond:
            if self._stopped:
                raise RuntimeError("batcher is stopped")
            self._queue.extend(jobs)
            self._cond.notify()
        try:
            return list(await asyncio.gather(*(j.future for j in jobs)))
        finally:
            for job in jobs:  # on cancellation the worker skips what it has not started
                if not job.future.done():
                    job.future.cancel()

    def stop(self) -> None:
        """Stop the worker after the batch in progress."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def _take_batch(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return None
            deadline = self._queue[0].enqueued + self.max_wait_s
            while len(self._queue) < self.max_batch_size and not self._stopped:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Job] = []
            while self._queue and len(batch) < self.max_batch_size:
                job = self._queue.popleft()
                if job.future.done():  # cancelled while waiting
                    self.stats.skipped += 1
                    continue
                batch.append(job)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            groups: dict[tuple[int, str, tuple[int, ...]], list[_Job]] = {}
            for job in batch:  # one model call per (runtime, dtype, shape)
                key = (id(job.runtime), job.x.dtype.str, job.x.shape)
                groups.setdefault(key, []).append(job)
            for jobs in groups.values():
                self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        try:
            x = np.stack([j.x for j in jobs])  # (B, C, H, W)
            out = self.run_batch(jobs[0].runtime, x)
        except Exception as exc:  # delivered to every waiting request
            log.exception("model call failed for a batch of %d", len(jobs))
            for job in jobs:
                job.loop.call_soon_threadsafe(_set_exception, job.future, exc)
            return
        with self._cond:
            self.stats.batches += 1
            self.stats.images += len(jobs)
            self.stats.max_batch = max(self.stats.max_batch, len(jobs))
        for i, job in enumerate(jobs):
            row = tuple(a[i] for a in out) if isinstance(out, tuple) else out[i]
            job.loop.call_soon_threadsafe(_set_result, job.future, row)


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
