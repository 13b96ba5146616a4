"""TorchServe handler for imgrec model directories (packed into a ``.mar`` by ``build_mar``).

The archive holds ``model.json`` + ``weights.safetensors`` as extra files; the handler rebuilds
the network from the card (weights loaded from safetensors only), decodes each request body with
imgrec's robust decoder and preprocesses with the card's ``eval_transform`` split (the same code
as the KServe predictor). A bad image fails only its own request in a TorchServe batch (status
set per request index, JSON body with a stable ``code``). Response per image::

    {"labels": [...], "scores": [...], "class_ids": [...]}                 # a classifier
    {"detections": [{"label", "score", "box": [x1, y1, x2, y2]}, ...]}      # a detector

A detector (card ``task: detect``) answers with boxes in the image's own pixels above the
card's score threshold (``IMGREC_SCORE_THRESHOLD`` overrides it); ``IMGREC_ANNOTATE=1`` adds
``"annotated_image": {"b64": <JPEG with boxes drawn>}``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from typing import Any

import numpy as np
import torch
from ts.torch_handler.base_handler import BaseHandler

from imgrec.data.pixels import normalize_batch
from imgrec.errors import ImgrecError
from imgrec.predictor import load_model
from imgrec.serving.inputs import prepare_image

TOP_K = int(os.environ.get("IMGREC_TOP_K", "5"))
ANNOTATE = os.environ.get("IMGREC_ANNOTATE", "0") == "1"


class ImgrecHandler(BaseHandler):  # type: ignore[misc]
    """Image bytes (or base64 text) in; top-k labels and scores, or boxes for a detector."""

    def initialize(self, context: Any) -> None:
        from imgrec.models.card import read_card
        from imgrec.tasks import get_task

        model_dir = context.system_properties.get("model_dir")
        self.detector: Any = None
        if get_task(read_card(model_dir).task).serves == "boxes":
            from imgrec.models.detectors import load_detector

            self.detector, card = load_detector(model_dir)
        else:
            self.classifier = load_model(model_dir)
            card = self.classifier.card
        self.pre = card.preprocessing
        self.card = card
        self.context = context
        self.initialized = True

    def preprocess(self, data: list[dict[str, Any]]) -> tuple[list[int], torch.Tensor | None]:
        """Decode every request; failed ones get their status set and are left out."""
        self.errors: dict[int, dict[str, str]] = {}
        self.images: dict[int, Any] = {}  # detectors: the decoded image (size, annotation)
        good: list[int] = []
        pixels: list[np.ndarray] = []
        is_detector = self.detector is not None
        for idx, row in enumerate(data):
            body = row.get("data") if row.get("data") is not None else row.get("body")
            try:
                raw = _body_bytes(body)
                # detectors decode at full size: boxes map back to the image's own pixels
                item = prepare_image(
                    raw, self.pre, keep_image=is_detector, draft=not is_detector, stats=False
                )
                if item.error is not None:
                    raise item.error
            except ImgrecError as exc:
                self.errors[idx] = exc.response_body()
                self.context.set_response_status(
                    code=exc.http_status, phrase=json.dumps(exc.response_body()), idx=idx
                )
                continue
            assert item.pixels is not None
            good.append(idx)
            pixels.append(item.pixels)
            if item.image is not None:
                self.images[idx] = item.image
        if not pixels:
            return good, None
        x = normalize_batch(np.stack(pixels), self.pre)  # (B, 3, S, S) float32
        return good, torch.from_numpy(x)

    def inference(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        good, x = data
        if x is None:
            return good, None
        if self.detector is not None:
            with torch.inference_mode():
                return good, self.detector.predict(x)
        return good, self.classifier.predict_batch(x)

    def postprocess(self, data: Any) -> list[Any]:
        good, logits = data
        n = max([*good, *self.errors, -1]) + 1
        out: list[Any] = [self.errors.get(i) for i in range(n)]
        if logits is not None and self.detector is not None:
            for row, idx in enumerate(good):
                out[idx] = self._detections(logits[row], self.images[idx])
        elif logits is not None:
            probs = torch.softmax(logits.float(), dim=1)
            k = min(TOP_K, probs.shape[1])
            scores, ids = probs.topk(k, dim=1)
            classes = self.classifier.classes
            for row, idx in enumerate(good):
                out[idx] = {
                    "labels": [classes[int(j)] for j in ids[row]],
                    "scores": [round(float(s), 6) for s in scores[row]],
                    "class_ids": [int(j) for j in ids[row]],
                }
        return out

    def _detections(self, found: dict[str, torch.Tensor], image: Any) -> dict[str, Any]:
        """One image's detections in its own pixels (as ``imgrec predict`` reports them)."""
        from imgrec.tasks.detect.evaluate import card_threshold
        from imgrec.tasks.detect.predict import detection_records, draw_detections

        size = self.pre.input_size
        w, h = image.width, image.height
        scale = np.array([w / size, h / size, w / size, h / size])
        boxes = found["boxes"].float().numpy().astype(np.float64) * scale
        arrays = {
            "boxes": np.clip(boxes, 0, [w, h, w, h]),
            "scores": found["scores"].float().numpy(),
            "labels": found["labels"].numpy(),
        }
        env = os.environ.get("IMGREC_SCORE_THRESHOLD")
        threshold = float(env) if env else card_threshold(self.card)
        records = detection_records(arrays, self.card.classes, threshold)
        result: dict[str, Any] = {"detections": records}
        if ANNOTATE:
            buf = io.BytesIO()
            draw_detections(image, records).save(buf, format="JPEG", quality=85)
            result["annotated_image"] = {"b64": base64.b64encode(buf.getvalue()).decode()}
        return result

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """One response per request of the TorchServe batch, in order."""
        self.context = context
        result = self.postprocess(self.inference(self.preprocess(data)))
        return result + [{"code": "internal_error"}] * (len(data) - len(result))


def _body_bytes(body: Any) -> bytes:
    from imgrec.errors import EmptyFileError, InvalidBase64Error

    if body is None:
        raise EmptyFileError("the request body is empty", hint="send the image file as the body")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidBase64Error(f"body is not valid base64: {exc}") from None
    if isinstance(body, dict) and isinstance(body.get("b64"), str):
        return _body_bytes(body["b64"])
    raise ImgrecError(f"unsupported body of type {type(body).__name__}", code="bad_request")
