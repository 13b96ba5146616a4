"""Decode-and-preprocess in a thread pool, overlapped with batched inference.

Shared by ``evaluate`` and ``predict``: worker threads read, decode and preprocess images
(Pillow and torch release the GIL for that work) while the caller's thread runs the model on
the previous batch. Lookahead is bounded, so memory stays flat for any number of images::

    for chunk in preprocessed_batches(paths, load, batch_size=32):   # load -> (tensor, extra)
        logits = model(chunk.tensor)          # (len(chunk.ok), C)
        for index, source, extra in chunk.ok: ...
        for index, source, error in chunk.failed: ...
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch

from imgrec.errors import ImgrecError

S = TypeVar("S")
T = TypeVar("T")


def default_workers() -> int:
    """Decode threads: the number of cores, at least 2 and at most 8."""
    return max(2, min(8, os.cpu_count() or 2))


@dataclass
class Chunk(Generic[S]):
    """One batch: ``tensor`` holds the images that decoded (``ok``), in source order.

    ``ok`` and ``failed`` carry ``(index, source, extra)`` / ``(index, source, error)`` where
    ``index`` is the position in the input sequence and ``extra`` what ``load`` returned
    beside the tensor.
    """

    tensor: torch.Tensor  # (len(ok), 3, H, W)
    ok: list[tuple[int, S, Any]] = field(default_factory=list)
    failed: list[tuple[int, S, ImgrecError]] = field(default_factory=list)


def ordered_map(
    fn: Callable[[S], T], items: Iterable[S], *, workers: int, lookahead: int
) -> Iterator[tuple[S, T | ImgrecError]]:
    """``(item, fn(item))`` in input order, computed by ``workers`` threads.

    At most ``lookahead`` results are pending at once; an ``ImgrecError`` raised by ``fn``
    is returned in place of the result (one bad image must not stop the others).
    """

    def guarded(item: S) -> T | ImgrecError:
        try:
            return fn(item)
        except ImgrecError as exc:
            return exc

    pending: deque[tuple[S, Future[T | ImgrecError]]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imgrec-decode") as pool:
        try:
            for item in source:
                pending.append((item, pool.submit(guarded, item)))
                if len(pending) >= lookahead:
                    done_item, fut = pending.popleft()
                    yield done_item, fut.result()
            while pending:
                done_item, fut = pending.popleft()
                yield done_item, fut.result()
        finally:  # the consumer stopped early: drop queued work
            for _, fut in pending:
                fut.cancel()


def preprocessed_batches(
    sources: Sequence[S] | Iterable[S],
    load: Callable[[S], tuple[torch.Tensor, Any]],
    *,
    batch_size: int,
    workers: int | None = None,
) -> Iterator[Chunk[S]]:
    """Group the tensors of ``load(source) -> (tensor, extra)`` into ``batch_size`` batches.

    Failed sources ride along in the chunk where they occurred, so records can be emitted
    in input order. The last chunk may be smaller (or hold only failures).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_workers = workers or default_workers()
    tensors: list[torch.Tensor] = []
    chunk: Chunk[S] = Chunk(torch.empty(0))
    results = ordered_map(load, sources, workers=n_workers, lookahead=2 * batch_size + n_workers)
    for index, (source, result) in enumerate(results):
        if isinstance(result, ImgrecError):
            chunk.failed.append((index, source, result))
            continue
        tensor, extra = result
        chunk.ok.append((index, source, extra))
        tensors.append(tensor)
        if len(tensors) == batch_size:
            chunk.tensor = torch.stack(tensors)
            yield chunk
            tensors, chunk = [], Chunk(torch.empty(0))
    if tensors or chunk.failed:
        chunk.tensor = torch.stack(tensors) if tensors else torch.empty(0)
        yield chunk
