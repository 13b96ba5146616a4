"""The one ONNX path of imgrec: export, cache, check against PyTorch, CPU session.

Batch prediction (:mod:`imgrec.inference.runners`), the KServe predictor's ``onnx`` backend
and ``imgrec export --format onnx`` all go through here, so they run the same file checked
the same way::

    path = cached_export(classifier)          # $IMGREC_CACHE/onnx/<arch>-<digest>.onnx
    check_export(classifier, path, hint="use the PyTorch backend")   # <= ONNX_ATOL, or ModelError
    session = cpu_session(path, threads=1)
    logits, embedding = session.run(["logits", "embedding"], {"input": x})   # x (B, 3, S, S)

The export has two outputs: ``logits (B, K)`` and ``embedding (B, D)`` (the pre-logits
features the prediction log and drift monitors use); a caller that needs only the logits
asks for ``["logits"]``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from imgrec.errors import ModelError
from imgrec.inference.export_index import record_export
from imgrec.inference.ort_session import cpu_session as cpu_session
from imgrec.registry import Registry
from imgrec.storage import cache_folder

log = logging.getLogger(__name__)

ONNX_ATOL = 1e-4
"""Largest absolute logit difference accepted between ONNX Runtime and PyTorch (scaled by the
largest logit when that exceeds 1: float32 error grows with the magnitude)."""
OUTPUTS = ["logits", "embedding"]


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


def model_digest(classifier: Any) -> str:
    """Hex digest of a classifier's card (minus its creation time), torch version and weights.

    The key of the ONNX export cache: a pretrained card is made anew on every load, so its
    ``created`` time must not change the key.
    """
    digest = hashlib.sha256()
    card = {k: v for k, v in classifier.card.to_dict().items() if k != "created"}
    digest.update(json.dumps(card, sort_keys=True, default=str).encode())
    digest.update(torch.__version__.encode())
    for name, tensor in sorted(classifier.module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cache_path(classifier: Any) -> Path:
    """Where the export of ``classifier`` is cached: ``$IMGREC_CACHE/onnx/<arch>-<digest>.onnx``."""
    name = f"{classifier.card.architecture}-{model_digest(classifier)[:16]}.onnx"
    return cache_folder("onnx") / name


def export_onnx_file(
    module: nn.Module,
    path: str | os.PathLike[str],
    *,
    input_size: int,
    output_names: list[str],
    what: str,
    hint: str,
    opset: int = 17,
) -> Path:
    """Export ``module`` (on CPU, eval mode) to ``path`` atomically: input ``input (B, 3, S, S)``,
    ``output_names`` outputs, all with a dynamic batch axis; TorchScript-based exporter.

    A failure raises ``ModelError`` naming ``what`` with ``hint``; no partial file is left.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                module,
                (torch.zeros(2, 3, input_size, input_size),),
                str(tmp),
                input_names=["input"],
                output_names=output_names,
                dynamic_axes={name: {0: "batch"} for name in ["input", *output_names]},
                opset_version=opset,
                dynamo=False,
            )
        os.replace(tmp, out)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"ONNX export of {what} failed: {exc}", hint=hint) from exc
    return out


def export_onnx(
    classifier: Any,
    path: str | os.PathLike[str],
    *,
    opset: int = 17,
    hint: str = "use the PyTorch backend (--backend torch / runtime='torch')",
) -> Path:
    """Export ``classifier`` to ONNX at ``path``: input ``input (B, 3, S, S)``, outputs
    ``logits (B, K)`` and ``embedding (B, D)``, dynamic batch; written atomically."""
    device = next(classifier.module.parameters()).device
    try:
        return export_onnx_file(
            LogitsAndEmbedding(classifier.module).eval().cpu(),
            path,
            input_size=classifier.card.preprocessing.input_size,
            output_names=OUTPUTS,
            what=classifier.card.architecture,
            hint=hint,
            opset=opset,
        )
    finally:
        classifier.module.to(device)


def cached_export(classifier: Any, **options: Any) -> Path:
    """The cached export of ``classifier`` (:func:`cache_path`), exported on first use."""
    path = cache_path(classifier)
    if not path.exists():  # a one-time cost per model (seconds): say so
        log.info("exporting the model to ONNX once (cached in %s) ...", path.parent)
        start = time.perf_counter()
        export_onnx(classifier, path, **options)
        log.info("exported in %.1f s", time.perf_counter() - start)
    return path


def probe_batch(classifier: Any, n: int = 3) -> np.ndarray:
    """A fixed ``(n, 3, S, S)`` float32 batch of roughly normalized pixels (seeded)."""
    size = classifier.card.preprocessing.input_size
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=gen).numpy()


def onnx_difference(classifier: Any, session: Any, x: np.ndarray) -> tuple[float, float]:
    """``(max |ONNX - PyTorch|, tolerance)`` of the logits on ``x``; the tolerance is
    :data:`ONNX_ATOL` scaled by the largest PyTorch logit when that exceeds 1. The wrapper
    every backend runs (:class:`LogitsAndEmbedding`) must equal the plain forward too."""
    with torch.inference_mode():
        batch = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        expected = classifier.predict_batch(batch).float().cpu().numpy()
        device = next(classifier.module.parameters()).device
        wrapped, _ = LogitsAndEmbedding(classifier.module).eval()(batch.to(device))
    got = np.asarray(session.run(["logits"], {"input": batch.numpy()})[0])
    diff = max(
        float(np.abs(got - expected).max()),
        float(np.abs(wrapped.float().cpu().numpy() - expected).max()),
    )
    return diff, ONNX_ATOL * max(1.0, float(np.abs(expected).max()))


def check_export(
    classifier: Any, session: Any, *, hint: str, path: str | os.PathLike[str] | None = None
) -> float:
    """Refuse (``ModelError``, code ``invalid_model``) an fp32 session whose logits differ from
    PyTorch's beyond the tolerance on :func:`probe_batch`; returns the difference. With
    ``path`` (the cached export the session runs), a passed check is written to the export
    index, so the next run finds the export without torch
    (:func:`imgrec.inference.export_index.record_export`)."""
    diff, tolerance = onnx_difference(classifier, session, probe_batch(classifier))
    if not diff <= tolerance:
        raise ModelError(
            f"ONNX Runtime logits differ from PyTorch by {diff:.2e} (> {tolerance:.2e})",
            hint=hint,
        )
    if path is not None:
        record_export(classifier, path, diff)
    return diff


def precision_session(
    path: str | os.PathLike[str], threads: int, precision: str = "fp32", streams: int = 1
) -> Any:
    """The session that runs ``path`` (the file ``PRECISIONS[precision]`` gave) in
    ``precision``: ONNX Runtime (:func:`cpu_session`) for ``fp32`` and ``int8``, OpenVINO in
    bf16 for ``bf16`` (:mod:`imgrec.inference.openvino`). ``streams``: how many calls may
    run at once from different threads (ONNX Runtime sessions take any number)."""
    return SESSIONS.get(precision)(path, threads, streams)


def _onnxruntime(path: str | os.PathLike[str], threads: int, streams: int) -> Any:
    return cpu_session(path, threads)


def _openvino_bf16(path: str | os.PathLike[str], threads: int, streams: int) -> Any:
    from imgrec.inference.openvino import openvino_session

    return openvino_session(path, threads, streams, precision="bf16")


SESSIONS: Registry[Callable[[str | os.PathLike[str], int, int], Any]] = Registry(
    "precision session", list_hint="imgrec predict --help"
)
SESSIONS.add("fp32", _onnxruntime)
SESSIONS.add("int8", _onnxruntime)
SESSIONS.add("bf16", _openvino_bf16)
