"""Batch-prediction runners: PyTorch eager, or ONNX Runtime on CPU.

``make_runner(classifier)`` returns a callable ``(B, 3, H, W) float tensor -> (B, C) logits``.
The ``onnx`` runner uses the one cached export of :mod:`imgrec.inference.onnx` (the file the
server runs too, under ``$IMGREC_CACHE/onnx/``) and its check against PyTorch: logits must
agree within ``ONNX_ATOL`` (1e-4, scaled by the largest logit when that exceeds 1) or ``auto``
falls back to PyTorch with a logged warning. ``auto`` picks ONNX Runtime on CPU and PyTorch
on GPUs::

    from imgrec.predictor import load_model
    from imgrec.inference.runners import make_runner

    clf = load_model("efficientnet_lite0")
    run = make_runner(clf, "auto")
    logits = run(torch.stack([clf.preprocess(img)]))      # (1, 1000)

``make_runner(clf, precision="int8", calibration="calib/")`` runs the static-quantized int8
model of the export (:mod:`imgrec.quantize`, ONNX Runtime); ``precision="bf16"`` runs the
export in OpenVINO in bf16 (:mod:`imgrec.inference.openvino`, CPUs with AMX / AVX512-BF16).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from imgrec.errors import ModelError
from imgrec.inference.onnx import ONNX_ATOL as ONNX_ATOL
from imgrec.inference.onnx import cached_export, check_export, precision_session
from imgrec.quantize import PRECISIONS, CalibrationSource, check_precision, require_fp32
from imgrec.registry import Registry

log = logging.getLogger(__name__)

Runner = Callable[[torch.Tensor], torch.Tensor]
"""``(B, 3, H, W) float32 -> (B, C) logits``; see :func:`runs_in_parallel`."""
RUNTIMES: Registry[Callable[..., Runner]] = Registry("runtime", list_hint="imgrec predict --help")


def default_threads() -> int:
    """Intra-op threads for inference: one per core (CPU affinity, so ``taskset`` counts)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def runs_in_parallel(runner: Runner) -> bool:
    """Whether ``runner`` computes in its caller's thread alone (one intra-op thread, no
    global state), so calls from one thread per core may run side by side."""
    return bool(getattr(runner, "parallel", False))


@RUNTIMES.register("torch")
def torch_runner(
    classifier: Any,
    *,
    threads: int | None = None,
    parallel: bool = False,
    precision: str = "fp32",
    calibration: CalibrationSource | None = None,
) -> Runner:
    """PyTorch eager under ``inference_mode`` (on CPU a channels-last copy of the network,
    which is faster there; the classifier's own module is left as it was).

    ``threads`` sets torch's (process-wide) intra-op threads; ``parallel`` is ignored: torch
    keeps its own thread pool, so its calls are never run side by side. fp32 only: another
    ``precision`` raises ``ConfigError`` (code ``precision_unsupported``).
    """
    _fp32_only("torch", precision)
    module = classifier.module
    device = next(module.parameters()).device
    if device.type == "cpu":  # a copy: ``Module.to`` converts in place, under the caller's feet
        module = copy.deepcopy(module).to(memory_format=torch.channels_last)
    if threads:
        torch.set_num_threads(threads)

    def run(x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, C)
        with torch.inference_mode():
            if device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            return module(x.to(device)).float().cpu()  # type: ignore[no-any-return]

    return run


class OnnxRunner:
    """An ONNX Runtime session as a :data:`Runner`. With one intra-op thread every call
    computes in its caller's thread (``parallel``): a pool with one thread per core can run
    calls side by side, with no thread pool inside ORT to fight that pool for the cores.
    The logits of an image do not depend on what else is in its batch (bit for bit)."""

    def __init__(self, session: Any, threads: int) -> None:
        self.session = session
        self.parallel = threads == 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float32 -> ``(B, C)`` logits (a new tensor, ``x`` is not kept)."""
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(["logits"], {"input": array})[0])


def _fp32_only(runtime: str, precision: str) -> None:
    require_fp32(
        precision,
        f"on the onnx runtime, not {runtime!r}",
        hint="use runtime='onnx' or 'auto' (what `imgrec predict` uses), or precision='fp32'",
    )


@RUNTIMES.register("onnx")
def onnx_runner(
    classifier: Any,
    *,
    threads: int | None = None,
    parallel: bool = False,
    precision: str = "fp32",
    calibration: CalibrationSource | None = None,
) -> Runner:
    """ONNX Runtime (CPU) on the cached export; checked against PyTorch within ``ONNX_ATOL``.

    ``threads``: intra-op threads, default one per core, or 1 with ``parallel`` (calls will
    come from one thread per core; see :class:`OnnxRunner`). ``precision="int8"`` runs the
    static-quantized model of the export calibrated on ``calibration`` images
    (:func:`imgrec.quantize.quantize_onnx`, cached beside the export); instead of the 1e-4
    check it must pass quantization's top-1 agreement check (``int8_inaccurate``).
    ``precision="bf16"`` runs the export in OpenVINO in bf16 on CPUs with native bf16
    (:func:`imgrec.quantize.bf16_model`: checked against fp32 on ``calibration`` images when
    given, ``bf16_inaccurate``; refused elsewhere, ``precision_unsupported``).
    """
    check_precision(precision, calibration)
    hint = "use the PyTorch runtime (runtime='torch')"
    path = cached_export(classifier, hint=hint)
    pre = classifier.card.preprocessing
    path = PRECISIONS.get(precision)(path, calibration, pre, cache_dir=path.parent)
    n_threads = threads or (1 if parallel else default_threads())
    streams = max(1, default_threads() // n_threads)  # the callers that may run at once
    run = OnnxRunner(precision_session(path, n_threads, precision, streams), n_threads)
    if precision != "fp32":
        return run  # checked by PRECISIONS[precision] against the fp32 export (top-1 agreement)

    check_export(classifier, run.session, hint=hint, path=path)
    return run


_RUNNERS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Runner]] = (
    weakref.WeakKeyDictionary()
)
_RUNNERS_LOCK = threading.Lock()


def make_runner(
    classifier: Any,
    runtime: str = "auto",
    *,
    threads: int | None = None,
    parallel: bool = False,
    precision: str = "fp32",
    calibration: CalibrationSource | None = None,
) -> Runner:
    """A logits function for ``classifier`` on ``runtime`` (``auto``, ``onnx`` or ``torch``).

    ``auto`` uses ONNX Runtime for CPU models and falls back to PyTorch (logged) when the
    export or its check fails; GPU models always run in PyTorch. ``parallel``: the caller
    would run calls side by side from one thread per core, so a runtime that can compute
    in the caller's thread alone should (:func:`runs_in_parallel` tells whether it does).
    ``precision``: ``fp32``, ``int8`` or ``bf16`` (the ``onnx`` runtime only, ``auto``
    included, never falling back; int8 needs ``calibration`` images, see :func:`onnx_runner`).
    Runners are kept for the lifetime of ``classifier``, so repeated calls reuse one session.
    """
    check_runtime_precision(runtime, precision, calibration)
    calibration_key = _calibration_key(calibration) if precision != "fp32" else None
    key = (runtime, threads, parallel, precision, calibration_key)
    with _RUNNERS_LOCK:
        cached = _RUNNERS.get(classifier, {}).get(key)
        if cached is None:
            options: dict[str, Any] = {"threads": threads, "parallel": parallel}
            if precision != "fp32":
                options.update(precision=precision, calibration=calibration)
            cached = _build_runner(classifier, runtime, **options)
            _RUNNERS.setdefault(classifier, {})[key] = cached
    return cached


def check_runtime_precision(
    runtime: str, precision: str, calibration: CalibrationSource | None
) -> None:
    """Fail fast (before loading or exporting anything): an unknown runtime or precision,
    int8 without calibration images (``calibration_required``), int8 on a runtime other than
    ONNX Runtime (``precision_unsupported``)."""
    if runtime != "auto":
        RUNTIMES.get(runtime)
    check_precision(precision, calibration)
    if precision != "fp32" and runtime not in ("auto", "onnx"):
        _fp32_only(runtime, precision)


def _calibration_key(calibration: CalibrationSource | None) -> Any:
    if calibration is None or isinstance(calibration, (str, os.PathLike)):
        return None if calibration is None else os.fspath(calibration)
    return tuple(os.fspath(p) for p in calibration)


def _build_runner(classifier: Any, runtime: str, **options: Any) -> Runner:
    threads = options.get("threads")
    if options.get("precision", "fp32") != "fp32":
        return onnx_runner(classifier, **options)  # no fallback: fp32 is not what was asked
    if runtime != "auto":
        return RUNTIMES.get(runtime)(classifier, **options)
    if classifier.device.type != "cpu":
        return torch_runner(classifier, threads=threads)
    try:
        return onnx_runner(classifier, **options)
    except (ModelError, ImportError) as exc:
        log.warning("ONNX Runtime unavailable for %s, using PyTorch: %s", classifier, exc)
        return torch_runner(classifier, threads=threads)
