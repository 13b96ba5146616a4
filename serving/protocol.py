"""V1 and V2 (Open Inference Protocol) request parsing and response building.

V1 ``POST /v1/models/{name}:predict``::

    {"instances": [{"image": {"b64": "<base64 JPEG/PNG/...>"}}, ...],
     "parameters": {"top_k": 5, "annotate": false}}
    -> {"id": ..., "model_version": ..., "predictions": [
          {"labels": [...], "scores": [...], "class_ids": [...]}            # per instance
          or {"error": {"code": "corrupt_image", "message": ...}}]}          # a bad instance

V2 ``POST /v2/models/{name}/infer``: input ``image`` (BYTES ``[N]``: encoded image bytes, or
base64 strings in JSON) or ``input`` (FP32 ``[N, 3, S, S]``: already preprocessed); outputs
``label`` (BYTES ``[N, k]``), ``score`` (FP32 ``[N, k]``), ``class_id`` (INT64 ``[N, k]``), plus
``error`` (BYTES ``[N]``, empty for good items) when some items failed and ``annotated_image``
(BYTES ``[N]``, JPEG) when ``parameters.annotate`` is true.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgrec.errors import BadRequestError, ImgrecError, InvalidBase64Error
from imgrec.inference.scores import top_k_softmax
from imgrec.serving._kserve import InferOutput, InferRequest, InferResponse
from imgrec.serving.inputs import PreparedImage

IMAGE_INPUT = "image"
TENSOR_INPUT = "input"
OUTPUTS = ("label", "score", "class_id")


@dataclass
class Work:
    """One parsed request: raw items plus options; filled with results as it goes."""

    protocol: str  # "v1" | "v2"
    raw: list[Any]  # bytes, base64 str, or float32 (3, S, S) per item
    top_k: int = 5
    annotate: bool = False
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    request: InferRequest | None = None
    runtime: Any = None  # the model version that served this request
    items: list[PreparedImage] = field(default_factory=list)
    # classifiers: (logits, embedding); detectors: {"boxes", "scores", "labels"} in input pixels
    outputs: list[Any] = field(default_factory=list)
    annotated: list[bytes | None] = field(default_factory=list)
    score_threshold: float | None = None  # detectors: overrides the card's threshold
    max_detections: int = 100  # detectors: per image
    detections: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # detectors


def _options(params: Any, request_id: str | None) -> dict[str, Any]:
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise BadRequestError(f"'parameters' must be an object, got {type(params).__name__}")
    top_k = params.get("top_k", 5)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise BadRequestError(f"parameters.top_k must be a positive integer, got {top_k!r}")
    annotate = params.get("annotate", False)
    if not isinstance(annotate, bool):
        raise BadRequestError(f"parameters.annotate must be true or false, got {annotate!r}")
    threshold = params.get("score_threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0 <= threshold <= 1
    ):
        raise BadRequestError(
            f"parameters.score_threshold must be a number in [0, 1], got {threshold!r}"
        )
    max_det = params.get("max_detections", 100)
    if isinstance(max_det, bool) or not isinstance(max_det, int) or max_det < 1:
        raise BadRequestError(
            f"parameters.max_detections must be a positive integer, got {max_det!r}"
        )
    out: dict[str, Any] = {
        "top_k": top_k,
        "annotate": annotate,
        "score_threshold": None if threshold is None else float(threshold),
        "max_detections": max_det,
    }
    if request_id:
        out["request_id"] = str(request_id)[:128]
    return out


def _check_count(n: int, limit: int) -> None:
    if n == 0:
        raise BadRequestError("the request holds no images", hint="send at least one instance")
    if n > limit:
        raise BadRequestError(
            f"the request holds {n} images; at most {limit} are accepted per request",
            hint="split it into several requests",
            code="too_many_images",
        )


def parse_v1(body: Any, *, max_images: int, request_id: str | None = None) -> Work:
    """Parse a V1 body (already JSON-decoded by KServe) into :class:`Work`."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        raise BadRequestError(
            'expected a JSON object {"instances": [{"image": {"b64": "..."}}, ...]}',
            hint="see docs/serving.md",
        )
    instances = body["instances"]
    _check_count(len(instances), max_images)
    raw: list[Any] = []
    for inst in instances:
        value = inst
        if isinstance(value, dict) and "image" in value:
            value = value["image"]
        if isinstance(value, dict) and isinstance(value.get("b64"), str):
            value = value["b64"]
        raw.append(value if isinstance(value, str) else None)
    return Work("v1", raw, **_options(body.get("parameters"), request_id))


def parse_v2(request: InferRequest, *, max_images: int, input_size: int) -> Work:
    """Parse a V2 ``InferRequest`` with one ``image`` (BYTES) or ``input`` (FP32) input."""
    if len(request.inputs) != 1:
        names = [i.name for i in request.inputs]
        raise BadRequestError(
            f"expected exactly one input, got {names}",
            hint=f"send {IMAGE_INPUT!r} (BYTES) or {TENSOR_INPUT!r} (FP32)",
        )
    inp = request.inputs[0]
    opts = _options(dict(request.parameters or {}), request.id)
    if inp.name == IMAGE_INPUT:
        if inp.datatype != "BYTES":
            raise BadRequestError(f"input {IMAGE_INPUT!r} must be BYTES, got {inp.datatype}")
        data = np.asarray(inp.as_numpy(), dtype=object).reshape(-1)
        _check_count(len(data), max_images)
        return Work("v2", list(data), request=request, **opts)
    if inp.name == TENSOR_INPUT:
        want = [3, input_size, input_size]
        if inp.datatype != "FP32" or list(inp.shape)[1:] != want or len(inp.shape) != 4:
            raise BadRequestError(
                f"input {TENSOR_INPUT!r} must be FP32 [-1, {', '.join(map(str, want))}], "
                f"got {inp.datatype} {list(inp.shape)}",
                hint="preprocess with the model card's preprocessing (eval_transform)",
            )
        tensor = np.asarray(inp.as_numpy(), dtype=np.float32).reshape([-1, *want])
        _check_count(len(tensor), max_images)
        if not np.isfinite(tensor).all():
            raise BadRequestError(f"input {TENSOR_INPUT!r} holds NaN or infinite values")
        return Work("v2", list(tensor), request=request, **opts)
    raise BadRequestError(
        f"unknown input {inp.name!r}",
        hint=f"send {IMAGE_INPUT!r} (BYTES) or {TENSOR_INPUT!r} (FP32)",
    )


def raw_to_bytes(value: Any) -> bytes:
    """An item's encoded image bytes: raw bytes as is, strings decoded as base64."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, np.bytes_):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidBase64Error(
                f"image is not valid base64: {exc}", hint="encode the file bytes with base64"
            ) from None
    raise BadRequestError(
        'each instance must be {"image": {"b64": "<base64>"}}',
        hint="see docs/serving.md",
    )


def topk(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities' top ``k`` of one image's ``logits (C,)``: ``(class_ids,
    scores)``, best first (:func:`imgrec.inference.scores.top_k_softmax`)."""
    scores, ids = top_k_softmax(logits[None], k)
    return ids[0], scores[0]


def _item_error(i: int, exc: ImgrecError) -> dict[str, str]:
    return {"code": exc.code, "message": f"item {i}: {exc.message}", "hint": exc.hint}


def v1_response(work: Work, classes: list[str], version: str) -> dict[str, Any]:
    """The V1 JSON response body."""
    predictions: list[dict[str, Any]] = []
    for i, item in enumerate(work.items):
        out = work.outputs[i] if i < len(work.outputs) else None
        if item.error is not None or out is None:
            assert item.error is not None
            predictions.append({"error": _item_error(i, item.error)})
            continue
        ids, scores = topk(out[0], work.top_k)
        pred: dict[str, Any] = {
            "labels": [classes[j] for j in ids],
            "scores": [round(float(s), 6) for s in scores],
            "class_ids": [int(j) for j in ids],
        }
        if work.annotate and work.annotated and work.annotated[i] is not None:
            pred["annotated_image"] = {"b64": base64.b64encode(work.annotated[i] or b"").decode()}
        predictions.append(pred)
    return {"id": work.request_id, "model_version": version, "predictions": predictions}


def v2_response(work: Work, classes: list[str], version: str, model_name: str) -> InferResponse:
    """The V2 ``InferResponse`` (KServe encodes it as JSON or binary as the client asked)."""
    n = len(work.items)
    k = min(work.top_k, len(classes))
    labels = np.full((n, k), "", dtype=object)
    scores = np.zeros((n, k), dtype=np.float32)
    ids = np.full((n, k), -1, dtype=np.int64)
    errors = np.full((n,), "", dtype=object)
    for i, item in enumerate(work.items):
        out = work.outputs[i] if i < len(work.outputs) else None
        if item.error is not None or out is None:
            errors[i] = item.error.code if item.error is not None else "internal_error"
            continue
        ids[i], scores[i] = topk(out[0], k)
        labels[i] = [classes[j] for j in ids[i]]
    outputs = [
        _output("label", labels, "BYTES"),
        _output("score", scores, "FP32"),
        _output("class_id", ids, "INT64"),
    ]
    if any(errors):
        outputs.append(_output("error", errors, "BYTES"))
    if work.annotate:
        shown = np.array(
            [base64.b64encode(a).decode() if a else "" for a in work.annotated], dtype=object
        )
        outputs.append(_output("annotated_image", shown, "BYTES"))
    request = work.request
    return InferResponse(
        response_id=work.request_id,
        model_name=model_name,
        model_version=version,
        infer_outputs=outputs,
        use_binary_outputs=bool(request is not None and request.use_binary_outputs),
        requested_outputs=request.request_outputs if request is not None else None,
    )


def _output(name: str, data: np.ndarray, datatype: str) -> InferOutput:
    out = InferOutput(name=name, shape=list(data.shape), datatype=datatype)
    out.set_data_from_numpy(data, binary_data=False)
    return out


def input_metadata(input_size: int) -> list[dict[str, Any]]:
    """V2 model metadata ``inputs``."""
    return [
        {"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]},
        {"name": TENSOR_INPUT, "datatype": "FP32", "shape": [-1, 3, input_size, input_size]},
    ]


def output_metadata(top_k: int) -> list[dict[str, Any]]:
    """V2 model metadata ``outputs`` (``top_k`` is the default; requests may change it)."""
    return [
        {"name": "label", "datatype": "BYTES", "shape": [-1, top_k]},
        {"name": "score", "datatype": "FP32", "shape": [-1, top_k]},
        {"name": "class_id", "datatype": "INT64", "shape": [-1, top_k]},
        {"name": "error", "datatype": "BYTES", "shape": [-1]},
        {"name": "annotated_image", "datatype": "BYTES", "shape": [-1]},
    ]


def decode_binary_request(body: bytes, json_length: int, model_name: str) -> InferRequest:
    """Parse a V2 request in the binary tensor extension (what ``tritonclient.http`` sends).

    KServe 0.21's ``InferRequest.from_bytes`` re-encodes binary BYTES inputs as UTF-8 JSON
    strings, which fails for image bytes; this keeps them as raw bytes instead.
    """
    import orjson

    from imgrec.serving._kserve import InferInput, InvalidInput

    if json_length < 0 or json_length > len(body):
        raise InvalidInput(f"Inference-Header-Content-Length {json_length} is out of range")
    try:
        header = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Unrecognized request format: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise InvalidInput('expected a JSON header with an "inputs" list')
    start = json_length
    inputs = []
    for spec in header["inputs"]:
        if not isinstance(spec, dict) or not {"name", "shape", "datatype"} <= spec.keys():
            raise InvalidInput("each input needs name, shape and datatype")
        params = spec.get("parameters") or {}
        inp = InferInput(spec["name"], spec["shape"], spec["datatype"], parameters=params or None)
        if spec.get("data") is not None:
            inp.data = spec["data"]
        elif isinstance(params.get("binary_data_size"), int):
            end = start + params["binary_data_size"]
            if end > len(body):
                raise InvalidInput(f"input {spec['name']!r}: binary data shorter than declared")
            inp._raw_data = body[start:end]
            start = end
        else:
            raise InvalidInput(f"'data' field is missing for input {spec['name']!r}")
        inputs.append(inp)
    from kserve.protocol.infer_type import RequestedOutput

    outputs = header.get("outputs")
    requested = (
        [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in outputs]
        if isinstance(outputs, list) and outputs
        else None
    )
    return InferRequest(
        model_name=model_name,
        request_id=header.get("id"),
        parameters=header.get("parameters"),
        infer_inputs=inputs,
        request_outputs=requested,
    )
