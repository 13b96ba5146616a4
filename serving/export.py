"""``imgrec export``: one registry entry per export format (ONNX, TorchServe ``.mar``, safetensors).

Each exporter takes a loaded classifier and a destination and returns what it wrote::

    from imgrec.serving.export import export_model
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

from imgrec.quantize import check_precision, require_fp32
from imgrec.registry import Registry

Exporter = Callable[[Any, Path], "ExportResult"]
EXPORT_FORMATS: Registry[Exporter] = Registry("export format", list_hint="imgrec export --help")


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


@EXPORT_FORMATS.register("onnx")
def _export_onnx(classifier: Any, out: Path) -> ExportResult:
    """The serving export (logits + embedding), checked against PyTorch like predict's."""
    from imgrec.inference.onnx import check_export, cpu_session, export_onnx

    hint = "serve with --backend torch; report the architecture"
    path = export_onnx(classifier, out, hint=hint)
    diff = check_export(classifier, cpu_session(path, 1), hint=hint)
    return ExportResult("onnx", str(path), diff)


@EXPORT_FORMATS.register("safetensors")
def _export_safetensors(classifier: Any, out: Path) -> ExportResult:
    from imgrec.models.card import save_model_dir

    save_model_dir(classifier.module, classifier.card, out)
    return ExportResult("safetensors", str(out))


@EXPORT_FORMATS.register("mar")
def _export_mar(classifier: Any, out: Path) -> ExportResult:
    from imgrec.serving.torchserve import build_mar

    return ExportResult("mar", str(build_mar(classifier, out)))


def export_int8_onnx(
    classifier: Any, out: Path, calibration: str | os.PathLike[str]
) -> ExportResult:
    """Static int8 (QDQ) ONNX of ``classifier`` at ``out``, calibrated on ``calibration``.

    The fp32 export is checked against PyTorch first; ``max_abs_diff`` is then the int8 vs
    fp32 logit difference on (up to 16) calibration images, reported with the top-1
    agreement on all of them (below 85% the export is refused, code ``int8_inaccurate``).
    """
    from imgrec.inference.onnx import cache_path
    from imgrec.quantize import QuantizeSettings, calibration_files, load_calibration, quantize_onnx

    fp32 = _export_onnx(classifier, cache_path(classifier))
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
    from imgrec.inference.onnx import cpu_session

    return np.asarray(cpu_session(path, 1).run(["logits"], {"input": x})[0])


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
    from imgrec.serving.served_model import resolve_model
    from imgrec.serving.torchserve import load_for_archive

    exporter = EXPORT_FORMATS.get(fmt)
    check_precision(precision, calibration)
    if precision == "bf16":  # a way to run the fp32 file, not a file of its own
        require_fp32(
            precision,
            "at run time (imgrec predict / serve --precision bf16 read the fp32 ONNX file)",
            "export in fp32 (drop --precision)",
        )
    if fmt != "onnx":
        require_fp32(
            precision, f"with --format onnx, not {fmt}", "drop --precision, or export --format onnx"
        )
    classifier = load_for_archive(resolve_model(model).uri)  # a detector: mar, safetensors
    if precision == "int8":
        assert calibration is not None
        return export_int8_onnx(classifier, Path(out), calibration)
    return exporter(classifier, Path(out))
