"""Detection models in the KServe predictor: runtime, V1/V2 responses, annotated images.

A model directory whose card has ``task: detect`` is served by :class:`DetectionRuntime`
(PyTorch eager: torchvision detectors do not export to ONNX reliably). Requests go through the
same parse -> admit -> decode -> batch path as classifiers; the batcher's rows are each image's
detections in model-input pixels, scaled here to the image's own pixels (after EXIF
orientation; images are decoded at full size for detectors, no JPEG ``draft``).

V1 per instance: ``{"detections": [{"label", "score", "box": [x1, y1, x2, y2]}, ...]}``
(best first, at most ``max_detections``, scores >= ``score_threshold``: the card's unless the
request's ``parameters.score_threshold`` overrides it). V2 outputs: ``detections`` (BYTES
``[N]``, that list as JSON), ``count`` (INT64 ``[N]``), ``boxes`` (FP32 ``[N, M, 4]``),
``scores`` (FP32 ``[N, M]``), ``class_id`` (INT64 ``[N, M]``), ``label`` (BYTES ``[N, M]``),
padded to the request's largest count ``M`` (at least 1) with score 0, class -1, label "".
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgrec.data.pixels import normalize_batch
from imgrec.models.card import Preprocessing
from imgrec.serving._kserve import InferResponse
from imgrec.serving.protocol import Work, _item_error, _output

MAX_DETECTIONS = 100


@dataclass
class DetectionRuntime:
    """A loaded detection model version (swapped as one object, like ``Runtime``)."""

    detector: Any
    card: Any
    ref: Any  # serving.served_model.ModelRef
    threads: int | None = None
    pre: Preprocessing = field(init=False)
    classes: list[str] = field(init=False)
    threshold: float = field(init=False)
    task = "detect"
    log_predictions = True  # detection records go to the prediction log
    decode_draft = False  # boxes must map back to the full image's pixels

    def __post_init__(self) -> None:
        from imgrec.tasks.detect.evaluate import card_threshold

        self.pre = self.card.preprocessing
        self.classes = list(self.card.classes)
        self.threshold = card_threshold(self.card)

    @property
    def version(self) -> str:
        return str(self.ref.version)

    def run(self, x: np.ndarray) -> list[dict[str, np.ndarray]]:
        """``uint8`` or normalized ``float32 (B, 3, S, S)`` -> per image ``boxes`` (input
        pixels), ``scores``, ``labels`` (class indices), as NumPy arrays."""
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)  # the batcher's own thread
        if x.dtype == np.uint8:
            x = normalize_batch(x, self.pre)
        batch = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        with torch.inference_mode():
            found = self.detector.predict(batch)
        return [
            {
                "boxes": o["boxes"].float().cpu().numpy().astype(np.float64),
                "scores": o["scores"].float().cpu().numpy(),
                "labels": o["labels"].cpu().numpy(),
            }
            for o in found
        ]

    # --- responses (the same methods as serving.served_model.Runtime) ----------------------
    def output_types(self, top_k: int) -> list[dict[str, Any]]:
        """V2 metadata ``outputs`` (``top_k`` does not apply to detectors)."""
        return output_metadata()

    def respond_v1(self, work: Work) -> dict[str, Any]:
        """The V1 JSON body."""
        return v1_response(work, self)

    def respond_v2(self, work: Work, model_name: str) -> InferResponse:
        """The V2 ``InferResponse``."""
        return v2_response(work, self, model_name)

    def annotate(self, work: Work, i: int) -> bytes | None:
        """JPEG of item ``i`` with its boxes and labels drawn (runs in the decode pool)."""
        return annotate(self, work, i)


def load_detection_runtime(ref: Any, *, backend: str, threads: int | None) -> DetectionRuntime:
    """Load the detector of ``ref`` (``backend`` is ignored: detectors run in PyTorch)."""
    from imgrec.models.detectors import load_detector

    del backend
    det, card = load_detector(ref.uri)
    return DetectionRuntime(det, card, ref, threads=threads or max(1, os.cpu_count() or 1))


def to_records(work: Work, runtime: DetectionRuntime, i: int) -> list[dict[str, Any]] | None:
    """Item ``i``'s detections in its own pixels (cached on ``work``), or None if it failed."""
    from imgrec.tasks.detect.predict import detection_records

    if i in work.detections:
        return work.detections[i]
    out = work.outputs[i] if i < len(work.outputs) else None
    item = work.items[i]
    if item.error is not None or out is None:
        return None
    found: dict[str, Any] = dict(out)  # type: ignore[call-overload]
    size = runtime.pre.input_size
    if item.size is not None:  # an encoded image: scale back to its pixels
        w, h = item.size
        scale = np.array([w / size, h / size, w / size, h / size])
        found["boxes"] = np.clip(found["boxes"] * scale, 0, [w, h, w, h])
    threshold = runtime.threshold if work.score_threshold is None else work.score_threshold
    records = detection_records(found, runtime.classes, threshold)[: work.max_detections]
    work.detections[i] = records
    return records


def detection_log_record(
    work: Work, runtime: DetectionRuntime, i: int, model: str, latency_ms: float
) -> dict[str, Any]:
    """Item ``i``'s prediction-log record: its served detections, box areas as fractions of
    its own pixels (of the model input for a tensor input)."""
    from imgrec.serving.prediction_log import detection_record

    item = work.items[i]
    size = item.size or (runtime.pre.input_size, runtime.pre.input_size)
    return detection_record(
        request_id=work.request_id, item=i, model=model, version=runtime.version,
        stats=item.stats, detections=to_records(work, runtime, i) or [], image_size=size,
        latency_ms=latency_ms, protocol=work.protocol,
    )  # fmt: skip


def annotate(runtime: DetectionRuntime, work: Work, i: int) -> bytes | None:
    """JPEG of item ``i`` with its boxes and labels drawn (runs in the decode pool)."""
    from imgrec.tasks.detect.predict import draw_detections

    records = to_records(work, runtime, i)
    item = work.items[i]
    if item.image is None or records is None:
        return None
    buf = io.BytesIO()
    draw_detections(item.image, records).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def v1_response(work: Work, runtime: DetectionRuntime) -> dict[str, Any]:
    """The V1 JSON body for a detection model."""
    predictions: list[dict[str, Any]] = []
    for i, item in enumerate(work.items):
        records = to_records(work, runtime, i)
        if records is None:
            assert item.error is not None
            predictions.append({"error": _item_error(i, item.error)})
            continue
        pred: dict[str, Any] = {"detections": records}
        if work.annotate and work.annotated and work.annotated[i] is not None:
            pred["annotated_image"] = {"b64": base64.b64encode(work.annotated[i] or b"").decode()}
        predictions.append(pred)
    return {"id": work.request_id, "model_version": runtime.version, "predictions": predictions}


def v2_response(work: Work, runtime: DetectionRuntime, model_name: str) -> InferResponse:
    """The V2 ``InferResponse`` for a detection model (outputs in the module docstring)."""
    n = len(work.items)
    per_item = [to_records(work, runtime, i) for i in range(n)]
    m = max([1, *(len(r) for r in per_item if r is not None)])
    boxes = np.zeros((n, m, 4), dtype=np.float32)
    scores = np.zeros((n, m), dtype=np.float32)
    ids = np.full((n, m), -1, dtype=np.int64)
    labels = np.full((n, m), "", dtype=object)
    count = np.zeros((n,), dtype=np.int64)
    as_json = np.full((n,), "", dtype=object)
    errors = np.full((n,), "", dtype=object)
    index = {name: j for j, name in enumerate(runtime.classes)}
    for i, records in enumerate(per_item):
        if records is None:
            error = work.items[i].error
            errors[i] = error.code if error is not None else "internal_error"
            continue
        count[i] = len(records)
        as_json[i] = json.dumps(records)
        for j, rec in enumerate(records):
            boxes[i, j], scores[i, j] = rec["box"], rec["score"]
            ids[i, j], labels[i, j] = index[rec["label"]], rec["label"]
    outputs = [
        _output("detections", as_json, "BYTES"),
        _output("count", count, "INT64"),
        _output("boxes", boxes, "FP32"),
        _output("scores", scores, "FP32"),
        _output("class_id", ids, "INT64"),
        _output("label", labels, "BYTES"),
    ]
    if any(errors):
        outputs.append(_output("error", errors, "BYTES"))
    if work.annotate:
        shown = [base64.b64encode(a).decode() if a else "" for a in work.annotated]
        outputs.append(_output("annotated_image", np.array(shown, dtype=object), "BYTES"))
    request = work.request
    return InferResponse(
        response_id=work.request_id,
        model_name=model_name,
        model_version=runtime.version,
        infer_outputs=outputs,
        use_binary_outputs=bool(request is not None and request.use_binary_outputs),
        requested_outputs=request.request_outputs if request is not None else None,
    )


def output_metadata() -> list[dict[str, Any]]:
    """V2 model metadata ``outputs`` of a detection model (``-1``: varies per request)."""
    return [
        {"name": "detections", "datatype": "BYTES", "shape": [-1]},
        {"name": "count", "datatype": "INT64", "shape": [-1]},
        {"name": "boxes", "datatype": "FP32", "shape": [-1, -1, 4]},
        {"name": "scores", "datatype": "FP32", "shape": [-1, -1]},
        {"name": "class_id", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "label", "datatype": "BYTES", "shape": [-1, -1]},
        {"name": "error", "datatype": "BYTES", "shape": [-1]},
        {"name": "annotated_image", "datatype": "BYTES", "shape": [-1]},
    ]
