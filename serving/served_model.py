"""What one served model version is at run time, and how a MODEL argument is resolved.

``MODEL`` (for ``imgrec serve`` and the deploy step) is one of:

* a model directory, local or ``s3://`` (``model.json`` + ``weights.safetensors``);
* a model store with a version: ``STORE@production`` or ``STORE@3`` (``STORE`` is a local
  folder or ``s3://`` prefix, see :mod:`imgrec.model_store`); a bare ``STORE`` means
  ``@production``;
* a pretrained name such as ``efficientnet_lite0`` (the default: offline ImageNet weights).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgrec import storage
from imgrec.data.pixels import normalize_batch
from imgrec.inference.export_index import find_export
from imgrec.model_store import resolve_store_ref
from imgrec.models.card import Preprocessing
from imgrec.quantize import require_fp32
from imgrec.registry import Registry
from imgrec.serving.backends import BACKENDS, Backend, OnnxBackend
from imgrec.serving.protocol import Work, output_metadata, topk, v1_response, v2_response

DEFAULT_MODEL = "efficientnet_lite0"


@dataclass(frozen=True)
class ModelRef:
    """A resolved MODEL argument: what to load and which version label to report."""

    uri: str  # model directory or pretrained name, as accepted by imgrec.load_model
    version: str  # "3" for store versions, else the card's created time or "pretrained"
    store: str | None = None


def resolve_model(ref: str | os.PathLike[str]) -> ModelRef:
    """Resolve a MODEL argument (see the module docstring) to a loadable URI and a version."""
    text = os.fspath(ref)
    version = resolve_store_ref(text)
    if version is not None:
        store_uri = text.rpartition("@")[0] if "@" in text else text
        return ModelRef(version.model_uri, str(version.version), store=store_uri)
    return ModelRef(text, "pretrained" if not storage.exists(text) else "local")


@dataclass
class Runtime:
    """A loaded model version: classifier, backend and preprocessing (swapped as one object).

    ``classifier`` is a loaded ``imgrec.predictor.Classifier`` or, for a model found in the
    export index, an ``imgrec.inference.export_index.CachedExport`` (its card and classes)."""

    classifier: Any
    backend: Backend
    ref: ModelRef
    pre: Preprocessing = field(init=False)
    classes: list[str] = field(init=False)
    log_predictions = True  # records go to the prediction log (docs/prediction-log.md)
    decode_draft = True  # JPEGs may be decoded at a reduced scale (never below the resize)

    def __post_init__(self) -> None:
        self.pre = self.classifier.card.preprocessing
        self.classes = list(self.classifier.classes)

    @property
    def version(self) -> str:
        return self.ref.version

    @property
    def task(self) -> str:
        return str(getattr(self.classifier.card, "task", "classify"))

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``uint8`` or normalized ``float32 (B, 3, H, W)`` -> ``(logits, embedding)``."""
        if x.dtype == np.uint8:
            x = normalize_batch(x, self.pre)
        return self.backend.run(np.ascontiguousarray(x, dtype=np.float32))

    # --- responses (the same methods on serving.detection.DetectionRuntime) ------------------
    def output_types(self, top_k: int) -> list[dict[str, Any]]:
        """V2 metadata ``outputs``."""
        return output_metadata(min(top_k, len(self.classes)))

    def respond_v1(self, work: Work) -> dict[str, Any]:
        """The V1 JSON body."""
        return v1_response(work, self.classes, self.version)

    def respond_v2(self, work: Work, model_name: str) -> Any:
        """The V2 ``InferResponse``."""
        return v2_response(work, self.classes, self.version, model_name)

    def annotate(self, work: Work, i: int) -> bytes | None:
        """JPEG of item ``i`` with its top label drawn (runs in the decode pool)."""
        from imgrec.visualize import draw_label

        item, out = work.items[i], work.outputs[i]
        if item.image is None or out is None:
            return None
        ids, scores = topk(out[0], 1)
        shown = draw_label(item.image, f"{self.classes[int(ids[0])]} {float(scores[0]):.2f}")
        buf = io.BytesIO()
        shown.save(buf, format="JPEG", quality=85)
        return buf.getvalue()


RUNTIMES_BY_OUTPUT: Registry[Any] = Registry("served output kind", list_hint="docs/serving.md")
"""A task's ``TaskSpec.serves`` (``labels`` | ``boxes``) -> ``loader(ref, *, backend, threads,
**precision)`` returning the served runtime; ``precision`` (``fp32`` | ``int8``) and
``calibration`` are passed only when not fp32. A new task that answers with labels or boxes
is served without a line here."""


def _torch_for_loading(backend: str) -> None:
    """Import torch (a model is about to be built) with one intra-op thread unless it runs the
    model: with another backend torch only loads weights and exports, and its idle OpenMP
    pool must not spin on the cores the server needs."""
    if backend != "torch":
        import torch

        torch.set_num_threads(1)


@RUNTIMES_BY_OUTPUT.register("labels")
def load_classifier_runtime(
    ref: ModelRef, *, backend: str, threads: int | None, **precision: Any
) -> Runtime:
    """A classifier on ``backend`` (``onnx`` or ``torch``); ``precision=``/``calibration=``
    go to the backend (int8: :func:`serving.backends.quantized_path`).

    fp32 on ``onnx`` first looks the model up in the export index: found, it is served from
    the checked export with its card alone, and torch is not imported."""
    make_backend = BACKENDS.get(backend)
    found = None
    if backend == "onnx" and precision.get("precision", "fp32") == "fp32":
        found = find_export(ref.uri)
    if found is not None:
        if ref.version == "local":
            ref = ModelRef(ref.uri, str(found.card.created or "local"), ref.store)
        return Runtime(found, OnnxBackend.from_index(found, threads=threads), ref)
    from imgrec.predictor import load_model

    _torch_for_loading(backend)
    classifier = load_model(ref.uri)
    if ref.version == "local":
        ref = ModelRef(ref.uri, str(getattr(classifier.card, "created", "local")), ref.store)
    return Runtime(classifier, make_backend(classifier, threads=threads, **precision), ref)


@RUNTIMES_BY_OUTPUT.register("boxes")
def _load_detector_runtime(
    ref: ModelRef, *, backend: str, threads: int | None, **precision: Any
) -> Any:
    from imgrec.serving.detection import load_detection_runtime

    BACKENDS.get(backend)  # an unknown backend name fails the same way for every task
    require_fp32(
        precision.get("precision", "fp32"),
        "for classifiers",
        hint="serve detection models without --precision (fp32)",
    )
    _torch_for_loading(backend)
    runtime = load_detection_runtime(ref, backend=backend, threads=threads)
    if ref.version == "local":
        runtime.ref = ModelRef(ref.uri, str(runtime.card.created or "local"), ref.store)
    return runtime


def model_task(uri: str) -> str:
    """The ``task`` of the model card at ``uri``; pretrained names are classifiers."""
    from imgrec.models.card import CARD_FILE, read_card

    if not storage.exists(storage.join(uri, CARD_FILE)):
        return "classify"
    return str(read_card(uri).task)


def served_output(uri: str) -> str:
    """What the model at ``uri`` answers with: its task's ``serves`` (``labels`` or ``boxes``)."""
    from imgrec.tasks import get_task

    return get_task(model_task(uri)).serves


def load_runtime(
    model: str | os.PathLike[str] | ModelRef,
    *,
    backend: str = "onnx",
    threads: int | None = None,
    precision: str = "fp32",
    calibration: str | os.PathLike[str] | None = None,
) -> Any:
    """Load ``model`` and build its inference runtime (slow: seconds; call off the event loop).

    Classifiers give a :class:`Runtime`, detectors a ``serving.detection.DetectionRuntime``.
    ``precision="int8"`` (onnx backend, classifiers) quantizes with the ``calibration`` images
    on first use (cached); without ``calibration`` it raises ``ConfigError``.
    """
    ref = model if isinstance(model, ModelRef) else resolve_model(model)
    extra: dict[str, Any] = {}
    if precision != "fp32" or calibration is not None:
        extra = {"precision": precision, "calibration": calibration}
    loader = RUNTIMES_BY_OUTPUT.get(served_output(ref.uri))
    return loader(ref, backend=backend, threads=threads, **extra)
