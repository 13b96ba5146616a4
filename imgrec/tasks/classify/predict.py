"""Batch prediction over files, folders, globs and ``s3://`` prefixes, fast on a CPU.

::

    from imgrec.tasks.classify.predict import predict

    for record in predict(["photos/", "more/*.jpg", "s3://bucket/incoming/"], top_k=3):
        print(record)   # {"source": ..., "predictions": [{"label": ..., "score": ...}, ...]}

A bad image gives ``{"source": ..., "error": {"code": ..., "message": ...}}`` and the others go
on. Speed on a CPU (``benchmarks/batch_predict.py``, BENCHMARKS.md "Batch prediction"):

1. JPEG decoding at a reduced size with Pillow's ``draft`` (DCT scaling to the smallest
   power-of-two reduction still no smaller than the model's resize size, so the network sees
   the same geometry; pixels differ slightly from a full decode; ``draft=False`` turns it off);
2. resize and crop in one Pillow resample (the geometric half of ``eval_transform``), then
   normalization by a per-channel table lookup in numpy (``normalize_table``: the floats of
   ``normalize_uint8`` bit for bit), straight into ``(3, H, W)`` float32;
3. ONNX Runtime on CPU (``imgrec.inference``, checked against PyTorch within 1e-4) with one
   intra-op thread per call, its calls on batches of ``PARALLEL_BATCH_SIZE`` running as tasks
   on the same pool as 1-2 (``imgrec.tasks.classify.batching.inferred_batches``): one thread
   per core that decodes or infers, never two thread pools competing for the cores, no torch
   ops (whose OpenMP pool is a third) on the hot path. An image's logits do not depend on
   the batch it is in, so the batch size changes speed only.

Start-up: a model given by name or local directory whose checked export is in the ONNX
export index (:mod:`imgrec.inference.export_index`) runs without importing torch at all (the
first prediction about 0.5 s after the command starts instead of several seconds); the first
run of such a model exports it once (announced), even for a single image. Scores are the
float64 softmax of the logits rounded to float32 (:mod:`imgrec.inference.scores`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgrec.data.images import load_image
from imgrec.data.pixels import draft_size, normalize_lookup, normalize_table, resize_image
from imgrec.data.sources import expand_sources, saved_name
from imgrec.errors import ImgrecError
from imgrec.inference.export_index import CachedExport, find_export, source_files
from imgrec.inference.scores import top_k_softmax
from imgrec.quantize import CalibrationSource, check_precision
from imgrec.tasks.classify.batching import inferred_batches
from imgrec.visualize import draw_label

DEFAULT_MODEL = "efficientnet_lite0"
BATCH_SIZE = 32
"""Images per inference call when the runtime has its own intra-op threads (PyTorch)."""
PARALLEL_BATCH_SIZE = 4
"""Images per inference call when calls run side by side on the pool (ONNX Runtime on CPU,
one intra-op thread each). Measured for EfficientNet-Lite0 on the 2-core Xeon (2 MB L2 per
core), ORT's CPU time per image at batch 1/2/4/8/16 was 9.0/8.9/8.9/9.1/9.7 ms, and its
logits do not depend on the batch; small batches also start inferring after 4 decodes
instead of 32 and end with every core inferring. ``imgrec predict`` over 96 1600x1200
JPEGs: 98 images/s at 4, 94 at 8 and 2 (medians of 8, load average ~1)."""
ONNX_MIN_IMAGES = 64
"""With ``runtime="auto"``, a model the export index cannot key (an ``s3://`` directory, a
loaded classifier, weights downloaded by name) runs fewer images than this in PyTorch unless
its export is already cached: a first export takes seconds, more than it saves on a few
images. A keyable model is exported on its first run whatever the count: later runs then
start without torch."""


def _choose_runtime(clf: Any, runtime: str, n_images: int, precision: str = "fp32") -> str:
    if precision != "fp32":
        return "onnx" if runtime == "auto" else runtime  # int8 runs in ONNX Runtime only
    if runtime != "auto" or n_images >= ONNX_MIN_IMAGES or clf.device.type != "cpu":
        return runtime
    if getattr(clf, "source", None) is not None and source_files(clf.source) is not None:
        return runtime  # exported once, then indexed: the next run needs no torch
    from imgrec.inference.onnx import cache_path

    return runtime if cache_path(clf).exists() else "torch"


def _cached_export(model: Any, runtime: str, precision: str) -> CachedExport | None:
    """The indexed export of ``model`` when this call can run on it without torch: a name or
    local directory, fp32, on ONNX Runtime (``auto`` or ``onnx``)."""
    if precision != "fp32" or runtime not in ("auto", "onnx"):
        return None
    if not isinstance(model, (str, os.PathLike)):
        return None
    return find_export(model)


def _source_text(source: str | ImgrecError) -> str:
    return source if isinstance(source, str) else str(getattr(source, "source", ""))


def _error_record(source: str, exc: ImgrecError) -> dict[str, Any]:
    return {"source": source, "error": {"code": exc.code, "message": str(exc)}}


def predict(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    model: Any = DEFAULT_MODEL,
    top_k: int = 5,
    save_dir: str | os.PathLike[str] | None = None,
    batch_size: int | None = None,
    runtime: str = "auto",
    workers: int | None = None,
    threads: int | None = None,
    draft: bool = True,
    precision: str = "fp32",
    calibration: CalibrationSource | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one record per image, in the order of the expanded ``sources``.

    ``model``: a model directory, a pretrained name, or a loaded classifier. ``save_dir``: also
    write each image with its top label and score drawn on it (the record then has
    ``"saved"``). ``runtime``: ``auto`` (ONNX Runtime on CPU; see ``ONNX_MIN_IMAGES``),
    ``onnx`` or ``torch``. ``batch_size``: images per inference call (default
    ``PARALLEL_BATCH_SIZE`` when calls run side by side, else ``BATCH_SIZE``).
    ``workers``: pool threads (default: one per core, 2..8). ``threads``: inference intra-op
    threads; by default ONNX Runtime uses one and its calls run on the pool beside the
    decoding (see ``imgrec.tasks.classify.batching``), PyTorch uses one per core.
    ``precision="int8"``: run the static-quantized int8 model of the ONNX export, calibrated
    on ``calibration`` (a folder, glob or list of images like the predicted ones; cached, see
    :mod:`imgrec.quantize`); ONNX Runtime only. Raises ``ConfigError`` before loading the
    model for int8 without ``calibration`` (``calibration_required``) or with
    ``runtime="torch"`` (``precision_unsupported``), ``ModelError`` (``int8_inaccurate``)
    when quantization visibly breaks the model.
    """
    check_precision(precision, calibration)
    cached = _cached_export(model, runtime, precision)
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    logits_of: Callable[[np.ndarray], np.ndarray]
    if cached is not None:  # no torch: ONNX Runtime on the export checked when indexed
        clf: Any = cached
        logits_of, in_pool = _session_logits(cached, threads)
        expanded = expand_sources(sources)
    else:
        from imgrec.inference.runners import check_runtime_precision

        check_runtime_precision(runtime, precision, calibration)
        clf = _classifier(model)
        expanded = expand_sources(sources)
        logits_of, in_pool = _runner_logits(
            clf, _choose_runtime(clf, runtime, len(expanded), precision), threads, precision,
            calibration,
        )  # fmt: skip
    k = max(1, min(int(top_k), len(clf.classes)))
    out_dir = Path(save_dir) if save_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if batch_size is None:
        batch_size = PARALLEL_BATCH_SIZE if in_pool else BATCH_SIZE
    load = _loader(clf, draft=draft, keep_image=out_dir is not None)

    def infer(x: np.ndarray) -> tuple[list[list[float]], list[list[int]]]:
        scores, ids = top_k_softmax(logits_of(x), k)  # (B, 3, H, W) -> (B, k)
        return scores.tolist(), ids.tolist()

    batches = inferred_batches(
        expanded, load, infer, batch_size=batch_size, workers=workers, infer_in_pool=in_pool
    )
    for batch in batches:
        yield from _records(batch, clf.classes, out_dir)


def _session_logits(
    cached: CachedExport, threads: int | None
) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    """``(B, 3, H, W) float32 -> (B, C)`` logits on ONNX Runtime, and whether calls may run side
    by side on the pool (one intra-op thread each, as the ``onnx`` runner does)."""
    from imgrec.inference.ort_session import cpu_session

    n_threads = threads or 1
    session = cpu_session(cached.path, n_threads)

    def logits_of(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(["logits"], {"input": x})[0])

    return logits_of, n_threads == 1


def _runner_logits(
    clf: Any,
    runtime: str,
    threads: int | None,
    precision: str,
    calibration: CalibrationSource | None,
) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    """The same for a loaded classifier through :func:`imgrec.inference.runners.make_runner`
    (PyTorch, or ONNX Runtime after the export and its check)."""
    import torch

    from imgrec.inference.runners import make_runner, runs_in_parallel

    run = make_runner(
        clf, runtime, threads=threads, parallel=True, precision=precision, calibration=calibration
    )

    def logits_of(x: np.ndarray) -> np.ndarray:
        return np.asarray(run(torch.from_numpy(x)).float().numpy())

    return logits_of, runs_in_parallel(run)


def _classifier(model: Any) -> Any:
    """A loaded classifier from a model directory or pretrained name (or ``model`` itself)."""
    if isinstance(model, (str, os.PathLike)):
        from imgrec.predictor import load_model

        return load_model(os.fspath(model))
    return model


def _records(batch: Any, classes: Sequence[str], out_dir: Path | None) -> list[dict[str, Any]]:
    """The batch's records in source order: top-k labels and scores, or the error."""
    records: dict[int, dict[str, Any]] = {
        i: _error_record(_source_text(src), err) for i, src, err in batch.failed
    }
    if batch.output is not None:
        scores, ids = batch.output
        for row, (i, src, image) in enumerate(batch.ok):
            preds = [
                {"label": classes[c], "score": float(s)}
                for s, c in zip(scores[row], ids[row], strict=True)
            ]
            record: dict[str, Any] = {"source": src, "predictions": preds}
            if image is not None and out_dir is not None:
                record["saved"] = _save(out_dir, i, str(src), image, preds[0])
            records[i] = record
    return [records[i] for i in sorted(records)]


def _loader(
    clf: Any, *, draft: bool, keep_image: bool
) -> Callable[[str | ImgrecError], tuple[np.ndarray, Image.Image | None]]:
    """The per-image work of the pool: read, decode (reduced with ``draft``), resize and crop
    (Pillow), normalize (a numpy table lookup) -> ``float32 (3, H, W)``, and the decoded image
    when it is to be drawn on. No torch ops: their intra-op pool would fight the pool.
    ``clf``: a loaded classifier or a ``CachedExport`` (its ``card`` is what is read)."""
    pre = clf.card.preprocessing
    size = draft_size(pre) if draft else None
    table = normalize_table(pre)

    def load(source: str | ImgrecError) -> tuple[np.ndarray, Image.Image | None]:
        if isinstance(source, ImgrecError):
            raise source  # a path that did not expand: reported in its place
        image = load_image(source, draft=size)
        pixels = normalize_lookup(np.asarray(resize_image(image, pre)), table)  # (3, H, W)
        return pixels, image if keep_image else None

    return load


def _save(out_dir: Path, index: int, source: str, image: Image.Image, top: dict[str, Any]) -> str:
    path = out_dir / saved_name(index, source)
    draw_label(image, f"{top['label']} {top['score']:.2f}").save(path, "JPEG", quality=90)
    return str(path)
