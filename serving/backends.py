"""Inference backends: the network behind the server, as PyTorch eager or ONNX Runtime.

Both take a normalized ``float32 (B, 3, H, W)`` array and return ``(logits (B, K),
embedding (B, D))``; the embedding is the network's pre-logits feature vector (used only for the
prediction log's summary). Backends live in the ``BACKENDS`` registry::

    backend = BACKENDS.get("onnx")(classifier, threads=2)
    logits, embedding = backend.run(x)

The ONNX backend runs in ``fp32`` (default) or ``int8`` (static QDQ quantization calibrated on a
folder of images, :mod:`imgrec.quantize`); ``PRECISIONS`` maps each name to what it loads::

    backend = BACKENDS.get("onnx")(classifier, precision="int8", calibration="calib/")

``PRECISIONS`` and ``check_precision`` live in :mod:`imgrec.quantize` (batch prediction uses
them too) and are re-exported here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from imgrec.quantize import INT8_NEEDS_CALIBRATION as INT8_NEEDS_CALIBRATION
from imgrec.quantize import PRECISIONS as PRECISIONS
from imgrec.quantize import check_precision as check_precision
from imgrec.quantize import require_fp32
from imgrec.registry import Registry
from imgrec.runtime import cpu_session, export_onnx_file, model_digest

log = logging.getLogger("imgrec.serving")


class Backend(Protocol):
    """What the server calls from its batching thread."""

    name: str

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


BACKENDS: Registry[Callable[..., Backend]] = Registry(
    "serving backend", list_hint="imgrec serve --help"
)


class LogitsAndEmbedding(nn.Module):
    """Wraps a classifier so one forward returns ``(logits, pre-logits features)``.

    Uses the timm interface every imgrec architecture exposes; a module without it returns its
    logits as the embedding.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.has_head = hasattr(net, "forward_features") and hasattr(net, "forward_head")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net: Any = self.net  # the timm interface is not visible to the type checker
        if not self.has_head:
            logits = net(x)
            return logits, logits
        feats = net.forward_features(x)
        pooled = net.forward_head(feats, pre_logits=True)  # (B, D)
        return net.forward_head(feats), pooled.flatten(1)  # (B, K), (B, D)


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
        if threads:
            torch.set_num_threads(threads)
        self.wrapped = LogitsAndEmbedding(classifier.module).eval()
        self.device = next(classifier.module.parameters()).device

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits, emb = self.wrapped(torch.from_numpy(x).to(self.device))
        return logits.float().cpu().numpy(), emb.float().cpu().numpy()


def onnx_cache_path(classifier: Any) -> Path:
    """Where the exported ONNX file of ``classifier`` is cached: ``$IMGREC_CACHE/onnx/``, keyed
    by :func:`imgrec.runtime.model_digest` (card minus creation time, torch version, weights)."""
    root = Path(os.environ.get("IMGREC_CACHE") or Path.home() / ".cache" / "imgrec") / "onnx"
    return root / f"{classifier.card.architecture}-{model_digest(classifier)[:16]}.onnx"


def export_onnx(classifier: Any, path: str | os.PathLike[str], *, opset: int = 17) -> Path:
    """Export ``classifier`` to ONNX at ``path``: input ``input (B, 3, S, S)``, outputs
    ``logits (B, K)`` and ``embedding (B, D)``, dynamic batch. Written atomically
    (:func:`imgrec.runtime.export_onnx_file`)."""
    return export_onnx_file(
        LogitsAndEmbedding(classifier.module).eval().cpu(),
        path,
        input_size=classifier.card.preprocessing.input_size,
        output_names=["logits", "embedding"],
        what=classifier.card.architecture,
        hint="serve with --backend torch",
        opset=opset,
    )


def quantized_path(
    classifier: Any, fp32_path: Path, calibration: str | os.PathLike[str] | None
) -> Path:
    """The int8 (static QDQ) model of ``fp32_path`` calibrated on ``calibration``; cached in
    the ONNX cache folder, so only the first call calibrates (seconds)."""
    return PRECISIONS.get("int8")(
        fp32_path,
        calibration,
        classifier.card.preprocessing,
        cache_dir=onnx_cache_path(classifier).parent,
    )


@BACKENDS.register("onnx")
class OnnxBackend:
    """ONNX Runtime on CPU with ``threads`` intra-op threads; exports and caches on first use.

    ``precision="int8"`` runs the static-quantized model calibrated on the ``calibration``
    images (folder, glob or list; see :func:`imgrec.quantize.quantize_onnx`).
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
    ) -> None:
        to_precision = PRECISIONS.get(precision)
        path = Path(onnx_path) if onnx_path else onnx_cache_path(classifier)
        if not path.exists():  # a one-time cost per model: say so
            log.info("exporting the model to ONNX once (cached in %s) ...", path.parent)
            start = time.perf_counter()
            export_onnx(classifier, path)
            log.info("exported in %.1f s", time.perf_counter() - start)
        pre = classifier.card.preprocessing
        path = to_precision(path, calibration, pre, cache_dir=onnx_cache_path(classifier).parent)
        self.session = cpu_session(path, threads or (os.cpu_count() or 1))
        self.path = path
        self.precision = precision

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, emb = self.session.run(["logits", "embedding"], {"input": x})
        return np.asarray(logits), np.asarray(emb)
