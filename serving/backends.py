"""Inference backends: the network behind the server, as PyTorch eager or ONNX Runtime.

Both take a normalized ``float32 (B, 3, H, W)`` array and return ``(logits (B, K),
embedding (B, D))``; the embedding is the network's pre-logits feature vector (used only for the
prediction log's summary). Backends live in the ``BACKENDS`` registry::

    backend = BACKENDS.get("onnx")(classifier, threads=2)
    logits, embedding = backend.run(x)

The ONNX backend runs in ``fp32`` (default), ``int8`` (static QDQ quantization calibrated on a
folder of images, :mod:`imgrec.quantize`) or ``bf16`` (OpenVINO, CPUs with native bf16);
``PRECISIONS`` maps each name to what it loads::

    backend = BACKENDS.get("onnx")(classifier, precision="int8", calibration="calib/")

``PRECISIONS`` and ``check_precision`` live in :mod:`imgrec.quantize` (batch prediction uses
them too) and are re-exported here. Importing this module does not import torch: a model whose
checked export is in the export index is served by :meth:`OnnxBackend.from_index` alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from imgrec.inference.export_index import CachedExport
from imgrec.inference.ort_session import cpu_session
from imgrec.quantize import INT8_NEEDS_CALIBRATION as INT8_NEEDS_CALIBRATION
from imgrec.quantize import PRECISIONS as PRECISIONS
from imgrec.quantize import check_precision as check_precision
from imgrec.quantize import require_fp32
from imgrec.registry import Registry


class Backend(Protocol):
    """What the server calls from its batching thread."""

    name: str

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


BACKENDS: Registry[Callable[..., Backend]] = Registry(
    "serving backend", list_hint="imgrec serve --help"
)


@BACKENDS.register("torch")
class TorchBackend:
    """PyTorch eager on CPU (or the module's device), under ``inference_mode``."""

    name = "torch"

    def __init__(
        self,
        classifier: Any,
        *,
        threads: int | None = None,
        precision: str = "fp32",
        calibration: str | os.PathLike[str] | None = None,
    ) -> None:
        require_fp32(
            precision, "on the onnx backend", "serve with --backend onnx, or drop --precision"
        )
        import torch

        from imgrec.inference.onnx import LogitsAndEmbedding

        if threads:
            torch.set_num_threads(threads)
        self.wrapped = LogitsAndEmbedding(classifier.module).eval()
        self.device = next(classifier.module.parameters()).device

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            logits, emb = self.wrapped(torch.from_numpy(x).to(self.device))
        return logits.float().cpu().numpy(), emb.float().cpu().numpy()


def quantized_path(
    classifier: Any, fp32_path: Path, calibration: str | os.PathLike[str] | None
) -> Path:
    """The int8 (static QDQ) model of ``fp32_path`` calibrated on ``calibration``; cached in
    the ONNX cache folder, so only the first call calibrates (seconds)."""
    from imgrec.inference.onnx import cache_path

    return PRECISIONS.get("int8")(
        fp32_path,
        calibration,
        classifier.card.preprocessing,
        cache_dir=cache_path(classifier).parent,
    )


@BACKENDS.register("onnx")
class OnnxBackend:
    """ONNX Runtime on CPU with ``threads`` intra-op threads; exports and caches on first use.

    An fp32 session is checked against PyTorch on load (the same check as ``imgrec predict``,
    :func:`imgrec.inference.onnx.check_export`): logits beyond the tolerance refuse to serve
    (``invalid_model``) rather than answer wrong.

    ``precision="int8"`` runs the static-quantized model calibrated on the ``calibration``
    images (folder, glob or list; see :func:`imgrec.quantize.quantize_onnx`);
    ``precision="bf16"`` runs the export in OpenVINO in bf16 (CPUs with AMX / AVX512-BF16;
    :func:`imgrec.quantize.bf16_model`). ``streams``: model calls that may run at once
    (default cores / ``threads``, one per model worker).
    """

    name = "onnx"

    def __init__(
        self,
        classifier: Any,
        *,
        threads: int | None = None,
        onnx_path: str | os.PathLike[str] | None = None,
        precision: str = "fp32",
        calibration: str | os.PathLike[str] | None = None,
        streams: int | None = None,
    ) -> None:
        from imgrec.inference.onnx import (
            cache_path,
            cached_export,
            check_export,
            export_onnx,
            precision_session,
        )

        to_precision = PRECISIONS.get(precision)
        hint = "serve with --backend torch"
        if onnx_path:
            path = Path(onnx_path)
            if not path.exists():
                export_onnx(classifier, path, hint=hint)
        else:
            path = cached_export(classifier, hint=hint)
        pre = classifier.card.preprocessing
        path = to_precision(path, calibration, pre, cache_dir=cache_path(classifier).parent)
        threads = threads or (os.cpu_count() or 1)
        streams = streams or max(1, (os.cpu_count() or 1) // threads)
        self.session = precision_session(path, threads, precision, streams)
        if precision == "fp32" and not onnx_path:
            # int8 passed quantization's top-1 agreement check instead; a file given as
            # ``onnx_path`` is run as it is (tests compare files of either precision)
            check_export(classifier, self.session, hint=hint, path=path)
        self.path = path
        self.precision = precision

    @classmethod
    def from_index(cls, found: CachedExport, *, threads: int | None = None) -> OnnxBackend:
        """fp32 on the export the index found (checked against PyTorch when it was indexed):
        no torch, no network built, no check again."""
        backend = cls.__new__(cls)
        backend.session = cpu_session(found.path, threads or (os.cpu_count() or 1))
        backend.path, backend.precision = found.path, "fp32"
        return backend

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, emb = self.session.run(["logits", "embedding"], {"input": x})
        return np.asarray(logits), np.asarray(emb)
