"""The KServe predictor: an imgrec model as a ``kserve.Model`` (V1 and V2 protocols).

Request flow (never blocking the event loop): parse (cheap, on the loop) -> admission against
the bounded queue (503 + ``Retry-After`` when full) -> decode + resize each image in a thread
pool -> the :class:`~serving.batcher.DynamicBatcher` runs the network in its own thread ->
response built on the loop; prediction records go to the background log writer. The whole
inference is bounded by ``timeout_s`` (504). ``swap()`` hot-swaps the model version: requests
already decoded finish on the runtime they were decoded for. ``swap(model, canary_percent=P)``
loads a canary beside the served version and sends P % of the requests to it (what KServe's
``canaryTrafficPercent`` does in Serverless mode); a later ``swap`` of the canary's model
promotes it without reloading.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgrec.errors import ConfigError, ImgrecError
from imgrec.serving._kserve import InferRequest, kserve
from imgrec.serving.batcher import DynamicBatcher
from imgrec.serving.capture import ImageCapture
from imgrec.serving.detection import detection_log_record
from imgrec.serving.errors import InferenceTimeoutError, OverloadedError
from imgrec.serving.inputs import PreparedImage, prepare_image
from imgrec.serving.prediction_log import PredictionLog, prediction_record
from imgrec.serving.protocol import Work, input_metadata, parse_v1, parse_v2, raw_to_bytes, topk
from imgrec.serving.served_model import ModelRef, Runtime, load_runtime

log = logging.getLogger("imgrec.serving")


@dataclass(frozen=True)
class ServingOptions:
    """Server tuning knobs (all exposed by ``imgrec serve``)."""

    backend: str = "onnx"
    precision: str = "fp32"  # fp32 | int8 (onnx backend; docs/serving.md "INT8")
    calibration: str | None = None  # int8 calibration images: folder, glob or s3:// prefix
    # Batches run concurrently in `model_workers` threads (None = one per core), each model
    # call on `threads` intra-op threads (None = cores / workers). One single-threaded call
    # per core beats one call split over all cores (no fork/join waits): 100 vs 82 req/s at
    # concurrency 8 on 2 cores (BENCHMARKS.md).
    model_workers: int | None = None
    threads: int | None = None
    # None = auto (:data:`MAX_BATCH`): 1 for ONNX Runtime in fp32, whose per-image cost does
    # not fall with the batch on CPU (5.1 ms at batch 1, 5.5 at 8, Lite0, one thread), so
    # batches only add waiting: p99/p50 1.46 against 1.70 at batch 4, the same req/s
    # (BENCHMARKS.md, "Serving"); 4 where batching pays (int8, bf16, the torch backend).
    max_batch_size: int | None = None
    max_wait_ms: float = 4.0
    max_queue_images: int = 64  # admitted images in flight; beyond -> 503
    max_images_per_request: int = 32
    timeout_s: float = 10.0
    decode_threads: int = 2
    top_k: int = 5
    prediction_log: str | None = None
    capture: str | None = None  # folder or s3:// prefix for a sample of served images
    capture_rate: float = 1.0  # fraction of distinct images kept (docs/capture.md)
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        for key, flag in _COUNT_FLAGS.items():
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(
                    f"serving option {key} must be a whole number >= 1, got {value!r}",
                    hint=f"fix {flag}; imgrec serve --help lists the options",
                )
        if not self.timeout_s > 0 or self.max_wait_ms < 0:
            raise ConfigError(
                f"timeout_s must be > 0 and max_wait_ms >= 0, got {self.timeout_s!r} and "
                f"{self.max_wait_ms!r}",
                hint="fix --timeout / --max-wait-ms",
            )
        if not 0.0 < self.capture_rate <= 1.0:
            raise ConfigError(
                f"capture rate must be in (0, 1], got {self.capture_rate!r}",
                hint="fix --capture-rate (0.1 keeps one image in ten)",
            )


MAX_BATCH = {("onnx", "fp32"): 1}
"""``max_batch_size`` when left auto, per (backend, precision); :data:`MAX_BATCH_OTHERWISE`
for the rest."""
MAX_BATCH_OTHERWISE = 4

_COUNT_FLAGS = {  # ServingOptions fields that count something -> the `imgrec serve` flag
    "model_workers": "--model-workers",
    "threads": "--threads",
    "decode_threads": "--decode-threads",
    "max_batch_size": "--max-batch",
    "max_queue_images": "--max-queue",
    "max_images_per_request": "ServingOptions.max_images_per_request",
    "top_k": "ServingOptions.top_k",
}


class ImgrecModel(kserve.Model):
    """Serves one imgrec model (a classifier or a detector) under ``name``."""

    def __init__(self, name: str, model: str | ModelRef, options: ServingOptions | None = None):
        super().__init__(name)
        self.model_ref = model
        self.options = options or ServingOptions()
        self.runtime: Runtime | None = None
        self.batcher: DynamicBatcher | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.prediction_log: PredictionLog | None = None
        self.capture: ImageCapture | None = None
        self.inflight_images = 0
        self.swaps = 0
        self.canary: Runtime | None = None
        self.canary_percent = 0
        self._requests = 0  # counts requests for the canary split

    # --- lifecycle -------------------------------------------------------------------------
    def load(self) -> bool:
        """Load the model and start the batching thread, decode pool and log writer."""
        options = self.options  # torch, when needed, is set to one thread where it is imported
        self.runtime = load_runtime(
            self.model_ref,
            backend=options.backend,
            threads=self._threads,
            precision=options.precision,
            calibration=options.calibration,
        )
        self.batcher = DynamicBatcher(
            lambda runtime, x: runtime.run(x),
            max_batch_size=self._max_batch,
            max_wait_ms=self.options.max_wait_ms,
            workers=self._workers,
        )
        self.pool = ThreadPoolExecutor(self.options.decode_threads, "imgrec-decode")
        if self.options.prediction_log:
            self.prediction_log = PredictionLog(self.options.prediction_log)
        if self.options.capture:
            self.capture = ImageCapture(self.options.capture, rate=self.options.capture_rate)
        self.ready = True
        return self.ready

    def stop(self) -> None:
        """Stop the worker threads (KServe calls this on unload)."""
        if self.batcher:
            self.batcher.stop()
        if self.pool:
            self.pool.shutdown(wait=False, cancel_futures=True)
        if self.prediction_log:
            self.prediction_log.close()
        if self.capture:
            self.capture.close()

    def swap(self, model: str | ModelRef, *, canary_percent: int | None = None) -> Runtime:
        """Load ``model`` and make it the served version; blocking, call off the event loop.

        The new runtime is fully built before one reference assignment switches to it, so no
        request sees a half-loaded model; if loading fails the old version keeps serving.
        With ``canary_percent`` (1-99) the new runtime becomes the canary instead and takes
        that share of the requests; without it any canary is dropped (or, when ``model`` is
        the canary's, promoted as it is).
        """
        if canary_percent is not None and not 0 < canary_percent < 100:
            raise ConfigError(
                f"canary_percent must be 1-99, got {canary_percent!r}",
                hint="0 keeps the served version, 100 is a plain swap",
            )
        canary = self.canary
        if (
            canary_percent is None
            and canary is not None
            and self.runtime is not None
            and (_same_model(self.runtime.ref, model))
        ):  # back to the served version only (a revert of a canary commit): drop the canary
            self.canary, self.canary_percent = None, 0
            log.info("dropped canary %s: version %s", self.name, canary.version)
            return self.runtime
        if canary_percent is None and canary is not None and _same_model(canary.ref, model):
            old, self.runtime, self.canary = self.runtime, canary, None
            self.model_ref, self.canary_percent = canary.ref, 0
            self.swaps += 1
            log.info("promoted canary %s: version %s -> %s", self.name, old and old.version,
                     canary.version)  # fmt: skip
            return canary
        new = load_runtime(
            model,
            backend=self.options.backend,
            threads=self._threads,
            precision=self.options.precision,
            calibration=self.options.calibration,
        )
        if canary_percent is not None:
            self.canary, self.canary_percent = new, canary_percent
            log.info("canary %s: version %s takes %d%%", self.name, new.version, canary_percent)
            return new
        old, self.runtime, self.canary, self.canary_percent = self.runtime, new, None, 0
        self.model_ref = new.ref
        self.swaps += 1
        log.info("swapped %s: version %s -> %s", self.name, old and old.version, new.version)
        return new

    def _pick(self) -> Runtime:
        """The runtime for the next request: the canary for ``canary_percent`` of them, spread
        evenly (request n goes to the canary when floor(n*p/100) steps), else the served one."""
        runtime, canary, percent = self._runtime(), self.canary, self.canary_percent
        if canary is None or percent <= 0:
            return runtime
        self._requests += 1
        n = self._requests
        return canary if (n * percent) // 100 > ((n - 1) * percent) // 100 else runtime

    @property
    def _max_batch(self) -> int:
        options = self.options
        auto = MAX_BATCH.get((options.backend, options.precision), MAX_BATCH_OTHERWISE)
        return options.max_batch_size or auto

    @property
    def _workers(self) -> int:
        return max(1, self.options.model_workers or os.cpu_count() or 1)

    @property
    def _threads(self) -> int:
        return self.options.threads or max(1, (os.cpu_count() or 1) // self._workers)

    def _runtime(self) -> Runtime:
        if self.runtime is None or self.batcher is None or self.pool is None:
            raise kserve.errors.ModelNotReady(self.name)
        return self.runtime

    # --- metadata --------------------------------------------------------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        return input_metadata(self._runtime().pre.input_size)

    def get_output_types(self) -> list[dict[str, Any]]:
        return self._runtime().output_types(self.options.top_k)  # type: ignore[no-any-return]

    # --- inference -------------------------------------------------------------------------
    def validate(self, payload: Any) -> Any:
        return payload

    async def __call__(  # type: ignore[override]
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: Any = None,
    ) -> tuple[Any, dict[str, str]]:
        """Parse, admit, infer within the timeout, respond (see the module docstring)."""
        if verb is not None and verb != kserve.model.InferenceVerb.PREDICT:
            raise NotImplementedError(f"{verb} is not supported by imgrec models")
        started = time.perf_counter()
        work = await self.preprocess(body, headers)
        self._admit(len(work.raw))
        try:
            await asyncio.wait_for(self.predict(work, headers), self.options.timeout_s)
        except asyncio.TimeoutError:
            raise InferenceTimeoutError(
                f"inference took longer than {self.options.timeout_s:g} s",
                hint="retry, send fewer images per request, or raise --timeout",
            ) from None
        finally:
            self.inflight_images -= len(work.raw)
        response = await self.postprocess(work, headers)
        self._log_predictions(work, (time.perf_counter() - started) * 1000)
        self._capture(work)
        return response, {}

    def _admit(self, n: int) -> None:
        limit = self.options.max_queue_images
        if self.inflight_images + n > limit:
            raise OverloadedError(
                f"server busy: {self.inflight_images} images in flight (limit {limit})",
                retry_after_s=self.options.retry_after_s,
            )
        self.inflight_images += n

    async def preprocess(self, body: Any, headers: dict[str, str] | None = None) -> Work:  # type: ignore[override]
        """Parse a V1 dict or a V2 ``InferRequest`` into :class:`Work` (no decoding yet)."""
        runtime = self._pick()
        request_id = (headers or {}).get("x-request-id")
        limit = self.options.max_images_per_request
        if isinstance(body, InferRequest):
            work = parse_v2(body, max_images=limit, input_size=runtime.pre.input_size)
        else:
            work = parse_v1(body, max_images=limit, request_id=request_id)
            if "top_k" not in (body.get("parameters") or {}):
                work.top_k = self.options.top_k
        if request_id and work.request is not None and not work.request.id:
            work.request_id = request_id
        work.runtime = runtime
        return work

    async def predict(self, work: Work, headers: dict[str, str] | None = None) -> Work:  # type: ignore[override]
        """Decode the images in the pool, run the good ones through the batcher."""
        runtime = work.runtime = work.runtime or self._runtime()
        assert self.batcher is not None and self.pool is not None
        loop = asyncio.get_running_loop()
        stats = self.prediction_log is not None and runtime.log_predictions
        keep = self.capture is not None
        work.items = list(
            await asyncio.gather(
                *(
                    loop.run_in_executor(
                        self.pool, self._prepare, runtime, r, work.annotate, stats, keep
                    )
                    for r in work.raw
                )
            )
        )
        good = [i for i, item in enumerate(work.items) if item.error is None]
        if not good:  # every item failed: the request fails with the first item's error
            first = work.items[0].error
            assert first is not None
            if len(work.items) > 1:
                first = type(first)(f"item 0: {first.message}", hint=first.hint, code=first.code)
            raise first
        pixels = [work.items[i].pixels for i in good]
        rows = await self.batcher.submit(runtime, [p for p in pixels if p is not None])
        work.outputs = [None] * len(work.items)
        for i, row in zip(good, rows, strict=True):
            work.outputs[i] = row
        if work.annotate:
            work.annotated = list(
                await asyncio.gather(
                    *(
                        loop.run_in_executor(self.pool, self._annotate, runtime, work, i)
                        for i in range(len(work.items))
                    )
                )
            )
        return work

    async def postprocess(self, work: Work, headers: dict[str, str] | None = None) -> Any:  # type: ignore[override]
        """Build the V1 dict or V2 ``InferResponse``."""
        runtime = work.runtime or self._runtime()
        if work.protocol == "v1":
            return runtime.respond_v1(work)
        return runtime.respond_v2(work, self.name)

    # --- helpers (run in the decode pool) --------------------------------------------------
    @staticmethod
    def _prepare(
        runtime: Runtime, raw: Any, keep_image: bool, stats: bool, keep_bytes: bool = False
    ) -> PreparedImage:
        if isinstance(raw, np.ndarray) and raw.dtype == np.float32:
            return PreparedImage(pixels=raw)
        try:
            data = raw_to_bytes(raw)
        except ImgrecError as exc:
            return PreparedImage(error=exc)
        prepared = prepare_image(
            data, runtime.pre, keep_image=keep_image, draft=runtime.decode_draft, stats=stats
        )
        if keep_bytes and prepared.error is None:
            prepared.data = data
        return prepared

    @staticmethod
    def _annotate(runtime: Runtime, work: Work, i: int) -> bytes | None:
        return runtime.annotate(work, i)

    def _capture(self, work: Work) -> None:
        """Offer the bytes of every successfully predicted image to the capture store."""
        if self.capture is None:
            return
        for item, out in zip(work.items, work.outputs, strict=True):
            if out is not None and item.data is not None:
                self.capture.offer(item.data, item.stats.fingerprint if item.stats else None)
            item.data = None

    def _log_predictions(self, work: Work, latency_ms: float) -> None:
        if self.prediction_log is None or work.runtime is None:
            return
        if not work.runtime.log_predictions:
            return
        runtime = work.runtime
        for i, out in enumerate(work.outputs):
            if out is None:
                continue
            if runtime.task == "detect":
                self.prediction_log.append(
                    detection_log_record(work, runtime, i, self.name, latency_ms)
                )
                continue
            ids, scores = topk(out[0], 1)
            self.prediction_log.append(
                prediction_record(
                    request_id=work.request_id,
                    item=i,
                    model=self.name,
                    version=runtime.version,
                    stats=work.items[i].stats,
                    label=runtime.classes[int(ids[0])],
                    class_id=int(ids[0]),
                    confidence=float(scores[0]),
                    embedding=out[1],
                    latency_ms=latency_ms,
                    protocol=work.protocol,
                )
            )


def _same_model(ref: ModelRef, model: str | ModelRef) -> bool:
    """True when ``model`` (a MODEL argument) names the version ``ref`` was loaded from."""
    if isinstance(model, ModelRef):
        return model.uri == ref.uri
    store, _, version = str(model).rpartition("@")
    return (store == ref.store and version == ref.version) or str(model) == ref.uri
