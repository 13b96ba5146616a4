"""``imgrec export``: one registry entry per export format (ONNX, TorchServe ``.mar``, safetensors).

Each exporter takes a loaded classifier and a destination and returns what it wrote::

    from serving.export import export_model
    export_model("runs/exp1/model", "onnx", "out/model.onnx")
    export_model("runs/exp1/model", "onnx", "out/int8.onnx", precision="int8", calibration="calib/")
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgrec.errors import ModelError
from imgrec.quantize import check_precision, require_fp32
from imgrec.registry import Registry
from serving.backends import LogitsAndEmbedding, export_onnx, onnx_cache_path

Exporter = Callable[[Any, Path], "ExportResult"]
EXPORT_FORMATS: Registry[Exporter] = Registry("export format", list_hint="imgrec export --help")
ONNX_TOLERANCE = 1e-4  # max absolute logit difference accepted between ONNX Runtime and PyTorch


@dataclass
class ExportResult:
    """What an export wrote, and for ONNX how far its logits are from PyTorch's."""

    format: str
    path: str
    max_abs_diff: float | None = None
    extra: dict[str, Any] | None = None  # int8: precision, calibration and agreement figures

    def to_dict(self) -> dict[str, Any]:
        out = {"format": self.format, "path": self.path, "max_abs_diff": self.max_abs_diff}
        return {**out, **(self.extra or {})}


def compare_onnx(classifier: Any, onnx_path: str | os.PathLike[str], x: np.ndarray) -> float:
    """Max absolute difference between ONNX Runtime and PyTorch logits on ``x (B, 3, S, S)``."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(["logits"], {"input": x.astype(np.float32)})[0]
    with torch.inference_mode():
        torch_logits = classifier.predict_batch(torch.from_numpy(x)).float().cpu().numpy()
        wrapped_logits, _ = LogitsAndEmbedding(classifier.module).eval()(torch.from_numpy(x))
    # The wrapper (used by every backend) must equal the plain forward, and ONNX the wrapper.
    wrapper_diff = float(np.abs(wrapped_logits.float().numpy() - torch_logits).max())
    return max(wrapper_diff, float(np.abs(onnx_logits - torch_logits).max()))


@EXPORT_FORMATS.register("onnx")
def _export_onnx(classifier: Any, out: Path) -> ExportResult:
    path = export_onnx(classifier, out)
    size = classifier.card.preprocessing.input_size
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    diff = compare_onnx(classifier, path, x)
    if diff > ONNX_TOLERANCE:
        raise ModelError(
            f"ONNX logits differ from PyTorch by {diff:.2e} (> {ONNX_TOLERANCE:g})",
            hint="serve with --backend torch; report the architecture",
        )
    return ExportResult("onnx", str(path), diff)


@EXPORT_FORMATS.register("safetensors")
def _export_safetensors(classifier: Any, out: Path) -> ExportResult:
    from imgrec.models.card import save_model_dir

    save_model_dir(classifier.module, classifier.card, out)
    return ExportResult("safetensors", str(out))


@EXPORT_FORMATS.register("mar")
def _export_mar(classifier: Any, out: Path) -> ExportResult:
    from serving.torchserve import build_mar

    return ExportResult("mar", str(build_mar(classifier, out)))


def export_int8_onnx(
    classifier: Any, out: Path, calibration: str | os.PathLike[str]
) -> ExportResult:
    """Static int8 (QDQ) ONNX of ``classifier`` at ``out``, calibrated on ``calibration``.

    The fp32 export is checked against PyTorch first; ``max_abs_diff`` is then the int8 vs
    fp32 logit difference on (up to 16) calibration images, reported with the top-1
    agreement on all of them (below 85% the export is refused, code ``int8_inaccurate``).
    """
    from imgrec.quantize import QuantizeSettings, calibration_files, load_calibration, quantize_onnx

    fp32 = _export_onnx(classifier, onnx_cache_path(classifier))
    pre = classifier.card.preprocessing
    result = quantize_onnx(fp32.path, calibration, pre, out)
    settings = QuantizeSettings(max_images=16, min_images=1)
    x, _, _ = load_calibration(calibration_files(calibration), pre, settings)
    ref, got = (_onnx_logits(path, x) for path in (fp32.path, result.path))
    return ExportResult(
        "onnx",
        str(result.path),
        float(np.abs(got - ref).max()),
        extra={
            "precision": "int8",
            "calibration_images": result.images,
            "top1_agreement_with_fp32": result.agreement,
            "cached": result.cached,
        },
    )


def _onnx_logits(path: str | os.PathLike[str], x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["logits"], {"input": x})[0])


def export_model(
    model: str,
    fmt: str,
    out: str | os.PathLike[str],
    *,
    precision: str = "fp32",
    calibration: str | os.PathLike[str] | None = None,
) -> ExportResult:
    """Load ``model`` (dir, ``STORE@version`` or pretrained name) and export it as ``fmt``;
    ``precision="int8"`` (onnx only) quantizes with the ``calibration`` images."""
    from serving.runtime import resolve_model
    from serving.torchserve import load_for_archive

    exporter = EXPORT_FORMATS.get(fmt)
    check_precision(precision, calibration)
    if fmt != "onnx":
        require_fp32(
            precision, f"with --format onnx, not {fmt}", "drop --precision, or export --format onnx"
        )
    classifier = load_for_archive(resolve_model(model).uri)  # a detector: mar, safetensors
    if precision == "int8":
        assert calibration is not None
        return export_int8_onnx(classifier, Path(out), calibration)
    return exporter(classifier, Path(out))
