"""INT8 inference: static QDQ quantization of an exported fp32 ONNX classifier.

ONNX Runtime's static quantization (``quantize_static``, QDQ format, per-channel int8 weights,
uint8 activations) needs a calibration set: a few dozen images like the ones that will be
served, decoded with :func:`imgrec.data.images.load_image` and preprocessed exactly as serving
does (:func:`imgrec.data.transforms.eval_transform` of the model card's preprocessing). The
int8 file is cached beside the fp32 export, keyed by the fp32 file's digest, a fingerprint of
the calibration images (their bytes) and the settings, so a second call does not recalibrate::

    from imgrec.quantize import quantize_onnx
    result = quantize_onnx("lite0.onnx", "calib/", clf.card.preprocessing)
    result.path        # .../lite0-int8-<key>.onnx
    result.cached      # True when an earlier call already calibrated the same thing

Before ONNX Runtime quantizes, the convolutions it will quantize get their weights rounded
onto exactly its int8 grid (``QuantizeSettings.weight_correction``, a
:data:`imgrec.int8_weights.WEIGHT_CORRECTIONS` name; default ``gptq``: each weight rounded up
or down so that the layer's output error on the calibration images' fp32 input patches stays
small) and their biases corrected for the mean shift the rounding leaves,
``(W_int8 - W) . E[x]``. The graph stays what ONNX Runtime fuses into ``QLinearConv``, so the
speed is unchanged. Top-1 agreement with fp32 on held-out photos of four kinds went from
90.1-95.0% (``none``) to 92.7-97.0%, never lower; ``bias_measured`` (a layer-by-layer
correction measured on the quantized model) kept a fine-tuned mnist5k model's accuracy best
but lost 3 points on noisy photos and failed the refusal check there (BENCHMARKS.md, "INT8
inference").

Calibration methods live in ``CALIBRATION_METHODS`` (``minmax``, ``percentile``, ``entropy``).
Some nodes are kept in fp32 (``QuantizeSettings.keep_fp32``): the first
:data:`INT8_FP32_CONVOLUTIONS` convolutions from the input (they see the raw normalized pixels;
on a model fine-tuned on flat backgrounds their folded batch norms cancel large weights against
a large bias, which 8-bit ranges cannot resolve) and the classifier head (its logits are what
the user reads).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgrec import storage
from imgrec.errors import ConfigError, DatasetError, ImageError, ModelError
from imgrec.int8_weights import WEIGHT_CORRECTIONS, Correction, quantized_convs
from imgrec.models.card import Preprocessing
from imgrec.registry import Registry

log = logging.getLogger(__name__)

MIN_CALIBRATION_IMAGES = 8
"""Fewer usable images than this give ranges too noisy to trust (the error says so)."""

CALIBRATION_HINT = "a few dozen images like the ones you will serve"


@dataclass(frozen=True)
class CalibrationMethod:
    """How activation ranges are estimated from the calibration outputs."""

    name: str  # onnxruntime.quantization.CalibrationMethod member name
    extra_options: dict[str, Any] = field(default_factory=dict)


CALIBRATION_METHODS: Registry[CalibrationMethod] = Registry(
    "calibration method", list_hint="imgrec serve --help"
)
CALIBRATION_METHODS.add("minmax", CalibrationMethod("MinMax"))
CALIBRATION_METHODS.add(
    "percentile", CalibrationMethod("Percentile", {"CalibPercentile": 99.999, "CalibNumBins": 2048})
)
CALIBRATION_METHODS.add("entropy", CalibrationMethod("Entropy", {"CalibNumBins": 512}))


@dataclass(frozen=True)
class QuantizeSettings:
    """Quantization settings (all part of the cache key)."""

    method: str = "percentile"  # a CALIBRATION_METHODS name
    per_channel: bool = True
    keep_fp32: tuple[str, ...] = ("input_convs", "head")  # KEEP_FP32 roles
    max_images: int = 64  # calibration images used (the first ones in sorted order)
    min_images: int = MIN_CALIBRATION_IMAGES
    batch_size: int = 8  # images per calibration forward (bounds calibration memory)
    # Refuse the int8 model when its top-1 agrees with fp32 on fewer calibration images (a
    # collapse, not near-ties: measured 0.95-0.96 for the models that kept their accuracy,
    # 0.74 for a fully fine-tuned mnist5k Lite0 that lost 15 points); 0 disables.
    min_agreement: float = 0.85
    # How the quantized convolutions' weights are rounded and their biases corrected before
    # ONNX Runtime quantizes them (a imgrec.int8_weights.WEIGHT_CORRECTIONS name).
    weight_correction: str = "gptq"

    def key(self) -> str:
        """A short stable digest of the settings that shape the int8 file."""
        fields = asdict(self)
        del fields["min_agreement"]
        fields["method_options"] = asdict(CALIBRATION_METHODS.get(self.method))
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class QuantizeResult:
    """What :func:`quantize_onnx` produced."""

    path: Path
    cached: bool  # True: an earlier call's file was reused, nothing was calibrated
    images: int  # calibration images used
    agreement: float  # int8 vs fp32 top-1 agreement on the calibration images
    skipped: list[str] = field(default_factory=list)  # files that could not be decoded
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "cached": self.cached,
            "calibration_images": self.images,
            "top1_agreement_on_calibration": round(self.agreement, 4),
            "skipped": self.skipped,
            "seconds": round(self.seconds, 2),
        }


# --- which nodes stay in fp32 -------------------------------------------------------------
INT8_FP32_CONVOLUTIONS = 3
"""Convolutions from the input that int8 keeps in fp32 (role ``input_convs``). For
EfficientNet-Lite0 the stem and the first block; measured on the 2-core AMD EPYC (BENCHMARKS.md,
"INT8 inference", 2026-12-02 afternoon), against the stem alone: top-1 agreement with fp32 on
held-out photo crops 88.5% -> 90.1%, on a fully fine-tuned mnist5k model 73.6% -> 79.4%
(accuracy -5.2 -> -1.0 points), on a frozen-backbone one 90.2% -> 91.6%."""


def _first_conv(graph: Any) -> list[str]:
    inputs = {i.name for i in graph.input}
    return [n.name for n in graph.node if n.op_type == "Conv" and n.input[0] in inputs]


def _input_convs(graph: Any) -> list[str]:
    """The first :data:`INT8_FP32_CONVOLUTIONS` ``Conv`` nodes (ONNX nodes are in topological
    order, so these are the ones nearest the input)."""
    return [n.name for n in graph.node if n.op_type == "Conv"][:INT8_FP32_CONVOLUTIONS]


def _head(graph: Any) -> list[str]:
    """The node producing the first graph output (``logits``) when it is a Gemm / MatMul."""
    logits = graph.output[0].name
    producers = {o: n for n in graph.node for o in n.output}
    node = producers.get(logits)
    names: list[str] = []
    while node is not None and node.op_type in ("Gemm", "MatMul", "Add"):
        names.append(node.name)
        if node.op_type != "Add":
            break
        node = producers.get(node.input[0])
    return names


KEEP_FP32: Registry[Callable[[Any], list[str]]] = Registry(
    "fp32 node role", list_hint="see imgrec.quantize.KEEP_FP32"
)
KEEP_FP32.add("first_conv", _first_conv)
KEEP_FP32.add("input_convs", _input_convs)
KEEP_FP32.add("head", _head)


# --- calibration images -------------------------------------------------------------------
CalibrationSource = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def calibration_files(source: CalibrationSource) -> list[str]:
    """Image files of a calibration set: a folder (local or ``s3://``), a glob, or a list.

    Raises ``DatasetError`` (code ``invalid_calibration_set``) when nothing matches.
    """
    from imgrec.data.images import IMAGE_SUFFIXES, image_files

    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if any(c in text for c in "*?[") and not storage.is_s3(text):
            files = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
            files = [p for p in files if p.lower().endswith(IMAGE_SUFFIXES)]
        elif storage.is_dir(text):
            files = image_files(text)
        elif storage.exists(text):
            files = [text]
        else:
            raise _calibration_error(f"calibration set {text!r} does not exist", text)
    else:
        files = [os.fspath(p) for p in source]
        text = f"{len(files)} listed files"
    if not files:
        raise _calibration_error(f"calibration set {text!r} holds no image files", text)
    return files


def _calibration_error(message: str, where: str) -> DatasetError:
    return DatasetError(
        message,
        hint=f"point --calibration at a folder of {CALIBRATION_HINT} "
        f"(at least {MIN_CALIBRATION_IMAGES}; got {where})",
        code="invalid_calibration_set",
    )


def load_calibration(
    files: Iterable[str], pre: Preprocessing, settings: QuantizeSettings
) -> tuple[np.ndarray, list[str], list[str]]:
    """Decode and preprocess up to ``settings.max_images`` images as serving does.

    Returns ``(float32 (N, 3, S, S), used files, skipped files)``; undecodable files are
    skipped (and listed), too few usable ones raise ``DatasetError``.
    """
    import torch

    from imgrec.data.images import load_image
    from imgrec.data.transforms import eval_transform

    tf = eval_transform(pre)
    files = list(files)
    arrays: list[np.ndarray] = []
    used: list[str] = []
    skipped: list[str] = []
    for path in files:
        if len(arrays) >= settings.max_images:
            break
        try:
            image = load_image(path)
        except ImageError as exc:
            skipped.append(path)
            log.warning("calibration: skipping %s", exc)
            continue
        with torch.inference_mode():
            arrays.append(tf(image).numpy())
        used.append(path)
    if len(arrays) < settings.min_images:
        where = os.path.dirname(files[0]) if files else "nothing"
        raise DatasetError(
            f"only {len(arrays)} usable calibration images in {where!r} "
            f"(need >= {settings.min_images}; {len(skipped)} could not be decoded)",
            hint=f"add more images: --calibration should hold {CALIBRATION_HINT}",
            code="invalid_calibration_set",
        )
    return np.stack(arrays).astype(np.float32), used, skipped


def calibration_fingerprint(files: Sequence[str]) -> str:
    """Digest of the calibration files' names (relative order) and bytes."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.basename(path).encode())
        digest.update(hashlib.sha256(storage.read_bytes(path)).digest())
    return digest.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def int8_path(
    fp32_path: str | os.PathLike[str],
    calibration_key: str,
    settings_key: str,
    folder: str | os.PathLike[str] | None = None,
) -> Path:
    """Cache file ``<stem>-int8-<key>.onnx`` in ``folder`` (default: beside ``fp32_path``);
    the key digests the fp32 file's bytes, the calibration fingerprint and the settings."""
    src = Path(fp32_path)
    key = hashlib.sha256(
        f"{file_digest(src)}:{calibration_key}:{settings_key}".encode()
    ).hexdigest()[:20]
    return Path(folder or src.parent) / f"{src.stem}-int8-{key}.onnx"


# --- quantization ---------------------------------------------------------------------------
class _Reader:
    """``CalibrationDataReader`` over a preprocessed array, in batches, with ranges."""

    def __init__(self, x: np.ndarray, batch_size: int, input_name: str, progress: Any) -> None:
        self.batches = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
        self.input_name = input_name
        self.progress = progress
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._pending = iter(self.batches[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._pending, None)
        if batch is None:
            return None
        self.progress(len(batch))
        return {self.input_name: batch}

    def rewind(self) -> None:
        self.set_range(0, len(self.batches))


def _progress_line(total: int, what: str) -> Callable[[int], None]:
    done = [0]
    started = time.perf_counter()

    live = sys.stderr.isatty()  # redraw one line on a terminal; one final line in a log

    def advance(n: int) -> None:
        done[0] += n
        if live or done[0] >= total:
            elapsed = time.perf_counter() - started
            end = "\n" if done[0] >= total else ""
            line = f"{what}: {done[0]}/{total} images, {elapsed:.1f} s"
            print(f"\r{line}" if live else line, end=end, file=sys.stderr, flush=True)

    return advance


def quantize_onnx(
    fp32_path: str | os.PathLike[str],
    calibration: CalibrationSource,
    pre: Preprocessing,
    out_path: str | os.PathLike[str] | None = None,
    *,
    settings: QuantizeSettings | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> QuantizeResult:
    """Quantize ``fp32_path`` to int8 (static QDQ) with ``calibration`` images; cached.

    ``out_path`` defaults to a cache file in ``cache_dir`` (default: beside the fp32 model;
    see :func:`int8_path`). A file at that path whose ``.key`` stamp holds the same key is
    reused without calibrating. Written atomically. Raises ``DatasetError`` for a missing,
    empty or too small calibration set, ``ModelError`` when ONNX Runtime cannot quantize, and
    ``ModelError`` (code ``int8_inaccurate``) when int8 top-1 agrees with fp32 on fewer than
    ``settings.min_agreement`` of the calibration images.
    """
    settings = settings or QuantizeSettings()
    method = CALIBRATION_METHODS.get(settings.method)
    for role in settings.keep_fp32:
        KEEP_FP32.get(role)
    WEIGHT_CORRECTIONS.get(settings.weight_correction)
    files = calibration_files(calibration)
    fingerprint = calibration_fingerprint(files)
    cache = int8_path(fp32_path, fingerprint, settings.key(), cache_dir)
    out = Path(out_path) if out_path else cache
    stamp = out.with_name(out.name + ".key")
    known = _read_stamp(stamp) if out.exists() else {}
    if known.get("key") == cache.name:
        result = QuantizeResult(out, cached=True, images=0, agreement=known["agreement"])
        return _checked(result, settings)
    started = time.perf_counter()
    x, used, skipped = load_calibration(files, pre, settings)
    advance = _progress_line(len(x), f"calibrating int8 ({settings.method})")
    if not progress:
        advance = lambda n: None  # noqa: E731
    _quantize(Path(fp32_path), x, out, settings, method, advance)
    agreement = top1_agreement(Path(fp32_path), out, x)
    tmp_stamp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    tmp_stamp.write_text(json.dumps({"key": cache.name, "agreement": agreement}))
    os.replace(tmp_stamp, stamp)
    seconds = time.perf_counter() - started
    log.info("int8 model %s from %d calibration images in %.1f s", out, len(used), seconds)
    result = QuantizeResult(out, False, len(used), agreement, skipped=skipped, seconds=seconds)
    return _checked(result, settings)


def _read_stamp(stamp: Path) -> dict[str, Any]:
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return {}
    ok = isinstance(data, dict) and isinstance(data.get("agreement"), float)
    return data if ok else {}


def _checked(result: QuantizeResult, settings: QuantizeSettings) -> QuantizeResult:
    if result.agreement < settings.min_agreement:
        raise ModelError(
            f"the int8 model's top-1 agrees with fp32 on only {result.agreement:.0%} of the "
            f"calibration images (< {settings.min_agreement:.0%}): quantization broke this model",
            hint="use --precision fp32 (or calibrate with images closer to the ones you serve or "
            "predict)",
            code="int8_inaccurate",
        )
    return result


def top1_agreement(fp32_path: Path, int8_path: Path, x: np.ndarray) -> float:
    """Fraction of ``x`` on which the two ONNX models' ``logits`` have the same top-1."""
    import onnxruntime as ort

    a, b = (
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for path in (fp32_path, int8_path)
    )
    return session_agreement(a, b, x)


def session_logits(session: Any, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """``logits`` of a session (ONNX Runtime's ``run`` signature) over ``x``, in batches."""
    batches = (x[i : i + batch_size] for i in range(0, len(x), batch_size))
    return np.concatenate([session.run(["logits"], {"input": b})[0] for b in batches])


def logits_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of rows on which two ``(N, classes)`` logits arrays have the same top-1."""
    return float((reference.argmax(1) == candidate.argmax(1)).mean())


def session_agreement(reference: Any, candidate: Any, x: np.ndarray) -> float:
    """Fraction of ``x`` on which two sessions' ``logits`` have the same top-1."""
    return logits_agreement(session_logits(reference, x), session_logits(candidate, x))


def _quantize(
    src: Path,
    x: np.ndarray,
    out: Path,
    settings: QuantizeSettings,
    method: CalibrationMethod,
    advance: Callable[[int], None],
) -> None:
    import onnx
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with tempfile.TemporaryDirectory(prefix="imgrec-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        try:
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=False)
            model = onnx.load(str(prepared))
            graph = model.graph
            exclude = sorted({n for role in settings.keep_fp32 for n in KEEP_FP32.get(role)(graph)})
            correction = WEIGHT_CORRECTIONS.get(settings.weight_correction)
            context = _correction_context(model, x, exclude, settings)
            correction.before(context)
            corrected = prepared.with_name("corrected.onnx")
            onnx.save(context.model, str(corrected))
            reader = _Reader(x, settings.batch_size, graph.input[0].name, advance)
            # onnxruntime prints its histogram steps on stdout; the progress line says enough
            with contextlib.redirect_stdout(io.StringIO()):
                q.quantize_static(
                    str(corrected),
                    str(tmp),
                    reader,
                    quant_format=q.QuantFormat.QDQ,
                    per_channel=settings.per_channel,
                    activation_type=q.QuantType.QUInt8,
                    weight_type=q.QuantType.QInt8,
                    calibrate_method=getattr(q.CalibrationMethod, method.name),
                    nodes_to_exclude=exclude,
                    extra_options={**method.extra_options, "CalibStridedMinMax": 1},
                )
            if correction.after is not None:
                qdq = onnx.load(str(tmp))
                correction.after(context, qdq)
                onnx.save(qdq, str(tmp))
            os.replace(tmp, out)
        except (ValueError, RuntimeError, onnx.checker.ValidationError) as exc:
            raise ModelError(
                f"int8 quantization of {src} failed: {exc}",
                hint="use --precision fp32",
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)


def _correction_context(
    prepared: Any, x: np.ndarray, exclude: list[str], settings: QuantizeSettings
) -> Correction:
    """What ``settings.weight_correction`` works on: a copy of the prepared fp32 model to
    change (``prepared`` stays the reference), the convolutions that will be quantized, the
    calibration images."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(prepared)
    convs = quantized_convs(model.graph, exclude)
    return Correction(model, convs, x, settings.batch_size, settings.per_channel, prepared)


# --- precisions: which ONNX file a runtime loads --------------------------------------------
INT8_NEEDS_CALIBRATION = (
    "int8 needs --calibration DIR: a few dozen images like the ones you will serve or predict"
)

Precision = Callable[..., Path]
PRECISIONS: Registry[Precision] = Registry(
    "precision", list_hint="imgrec predict --help, imgrec serve --help"
)
"""``name -> (fp32 ONNX path, calibration, preprocessing, *, cache_dir) -> ONNX path to load``;
shared by batch prediction (:mod:`imgrec.inference.runners`), serving and export."""


def check_precision(precision: str, calibration: CalibrationSource | None) -> None:
    """Fail fast (before loading anything) on an unknown precision or int8 without images.

    Raises ``UnknownNameError`` for an unknown name, ``ConfigError`` (code
    ``calibration_required``) for int8 without a calibration set.
    """
    PRECISIONS.get(precision)
    missing = calibration is None or (
        isinstance(calibration, (str, os.PathLike)) and not os.fspath(calibration).strip()
    )
    if precision == "int8" and missing:
        raise ConfigError(
            "int8 precision without a calibration set",
            hint=INT8_NEEDS_CALIBRATION,
            code="calibration_required",
        )


def require_fp32(precision: str, available: str, hint: str) -> None:
    """Refuse a non-fp32 ``precision`` where only fp32 runs: ``ConfigError`` (code
    ``precision_unsupported``) saying "precision 'int8' is only available {available}";
    an unknown name raises ``UnknownNameError`` as in :func:`check_precision`."""
    PRECISIONS.get(precision)
    if precision != "fp32":
        raise ConfigError(
            f"precision {precision!r} is only available {available}",
            hint=hint,
            code="precision_unsupported",
        )


@PRECISIONS.register("fp32")
def fp32_model(
    fp32_path: str | os.PathLike[str],
    calibration: CalibrationSource | None,
    pre: Preprocessing,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The fp32 file itself."""
    return Path(fp32_path)


@PRECISIONS.register("int8")
def int8_model(
    fp32_path: str | os.PathLike[str],
    calibration: CalibrationSource | None,
    pre: Preprocessing,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The int8 (static QDQ) model of ``fp32_path`` calibrated on ``calibration``, cached in
    ``cache_dir`` (default beside it; only the first call calibrates). Says on stderr which
    file runs and how well it agreed with fp32 (which precision answers must be visible)."""
    check_precision("int8", calibration)
    assert calibration is not None
    result = quantize_onnx(fp32_path, calibration, pre, cache_dir=cache_dir)
    where = calibration if isinstance(calibration, (str, os.PathLike)) else "listed files"
    print(
        f"ONNX Runtime int8 model {result.path} (calibration {os.fspath(where)}; top-1 agrees "
        f"with fp32 on {result.agreement:.0%} of its images)",
        file=sys.stderr,
        flush=True,
    )
    return result.path


BF16_FP32_CONVOLUTIONS = (3, 8)
"""How many input-side convolutions bf16 keeps in fp32, tried in this order
(:func:`imgrec.inference.openvino.keep_fp32_file`). EfficientNet-Lite0: 3 is the stem and
first block (7-24% slower than all-bf16 at 224 px), 8 the stem and first two stages (about
1.3x slower); a network whose first residual sum comes earlier keeps fewer. On the fully
fine-tuned mnist5k model top-1 agreement with fp32 was 42% with none, 81% with 1, 91% with 3,
96% with 8 (BENCHMARKS.md, "INT8 inference")."""

BF16_PROBE_TOLERANCE = 0.2
"""Without calibration images, bf16 logits on :func:`bf16_probe` may differ from fp32's by at
most this fraction of the fp32 logits' range over the probe. Measured: pretrained
EfficientNet-Lite0 0.08; the fine-tuned mnist5k model whose bf16 agreement collapsed to 42%:
0.38 (0.25 with only its first convolution in fp32, 81% agreement)."""


def bf16_probe(pre: Preprocessing) -> np.ndarray:
    """Probe images for the bf16 check without calibration images, preprocessed: flat images
    (black, greys, white, red, green, blue: the large flat areas that expose cancellation in
    bf16), two of uniform pixel noise and two of N(0, 1) noise in the normalized space."""
    size = pre.input_size
    rng = np.random.default_rng(0)
    flat = [(v, v, v) for v in (0, 64, 128, 192, 255)] + [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    pixels = [np.full((size, size, 3), rgb, np.float32) for rgb in flat]
    pixels += [rng.uniform(0, 255, (size, size, 3)).astype(np.float32) for _ in range(2)]
    mean, std = np.array(pre.mean, np.float32), np.array(pre.std, np.float32)
    x = (np.stack(pixels) / 255 - mean) / std
    noise = rng.standard_normal((2, size, size, 3), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate([x, noise]).transpose(0, 3, 1, 2), np.float32)


def bf16_path(
    fp32_path: str | os.PathLike[str], keep: int, folder: str | os.PathLike[str] | None = None
) -> Path:
    """Cache file ``<stem>-bf16-fp32first<keep>-<key>.xml`` (OpenVINO IR) in ``folder``
    (default: beside ``fp32_path``); the key digests the fp32 file's bytes; ``keep`` is how
    many input-side convolutions it keeps in fp32."""
    src = Path(fp32_path)
    key = file_digest(src)[:16]
    return Path(folder or src.parent) / f"{src.stem}-bf16-fp32first{keep}-{key}.xml"


@PRECISIONS.register("bf16")
def bf16_model(
    fp32_path: str | os.PathLike[str],
    calibration: CalibrationSource | None,
    pre: Preprocessing,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """An OpenVINO IR of ``fp32_path`` that runs in bf16 (:mod:`imgrec.inference.openvino`; no
    calibration) with its first input-side convolutions kept in fp32, cached in ``cache_dir``
    (default beside it). Refused with ``precision_unsupported`` without OpenVINO or native bf16
    on this CPU. Checked against fp32 (ONNX Runtime) before use, for each choice of
    :data:`BF16_FP32_CONVOLUTIONS`: with ``calibration`` images, by top-1 agreement on them
    (the fewest fp32 convolutions within 2 points of the best agreement win; the best must
    reach ``QuantizeSettings.min_agreement``); without, the logits on :func:`bf16_probe` must
    stay within :data:`BF16_PROBE_TOLERANCE` of fp32's range (the first choice that does wins).
    Otherwise ``ModelError``, code ``bf16_inaccurate``. Says on stderr what runs."""
    from imgrec.inference.onnx import cpu_session
    from imgrec.inference.openvino import (
        cpu_name,
        input_convolutions,
        keep_fp32_file,
        openvino_session,
        require_bf16,
    )

    require_bf16()
    path = Path(fp32_path)
    reference = cpu_session(path, 1)
    settings = QuantizeSettings()
    if calibration is not None:
        x, _, _ = load_calibration(calibration_files(calibration), pre, settings)
    else:
        x = bf16_probe(pre)
    ref = session_logits(reference, x)
    spread = float(ref.max() - ref.min()) or 1.0
    tried: list[tuple[Path, int, float]] = []  # (file, convolutions kept, score)
    for keep in BF16_FP32_CONVOLUTIONS:
        names = input_convolutions(path, keep)
        if tried and len(names) == tried[-1][1]:
            break  # no further convolution can stay fp32
        candidate = bf16_path(path, len(names), cache_dir)
        if not candidate.exists():
            keep_fp32_file(path, len(names), candidate)
            log.info("bf16 model %s keeps fp32: %s", candidate, ", ".join(names) or "nothing")
        got = session_logits(openvino_session(candidate, threads=1), x)
        if calibration is not None:
            tried.append((candidate, len(names), logits_agreement(ref, got)))
            continue
        tried.append((candidate, len(names), float(np.abs(got - ref).max()) / spread))
        if tried[-1][2] <= BF16_PROBE_TOLERANCE:
            break
    if calibration is not None:
        best = max(score for _, _, score in tried)
        chosen = next(t for t in tried if t[2] >= best - 0.02)
        checked = f"top-1 agrees with fp32 on {chosen[2]:.0%} of {len(x)} calibration images"
        ok = chosen[2] >= settings.min_agreement
        limit = f"< {settings.min_agreement:.0%}"
    else:
        chosen = tried[-1]
        checked = (
            f"logits within {chosen[2]:.1%} of fp32's range on a probe of flat and noise images"
        )
        ok = chosen[2] <= BF16_PROBE_TOLERANCE
        limit = f"> {BF16_PROBE_TOLERANCE:.0%}"
    where = f"with the first {chosen[1]} convolutions in fp32"
    if not ok:
        raise ModelError(
            f"the bf16 model's {checked} ({limit}), even {where}",
            hint="use --precision fp32",
            code="bf16_inaccurate",
        )
    print(f"OpenVINO bf16 on {cpu_name()}, {where} ({checked})", file=sys.stderr, flush=True)
    return chosen[0]
