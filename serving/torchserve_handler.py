"""TorchServe handler for imgrec model directories (packed into a ``.mar`` by ``build_mar``).

The archive holds ``model.json`` + ``weights.safetensors`` as extra files; the handler rebuilds
the network from the card (weights loaded from safetensors only), decodes each request body with
imgrec's robust decoder and preprocesses with the card's ``eval_transform`` split (the same code
as the KServe predictor). A bad image fails only its own request in a TorchServe batch (status
set per request index, JSON body with a stable ``code``). Response per image::

    {"labels": [...], "scores": [...], "class_ids": [...]}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

import numpy as np
import torch
from ts.torch_handler.base_handler import BaseHandler

from imgrec.errors import ImgrecError
from imgrec.predictor import load_model
from serving.inputs import normalize_batch, prepare_image

TOP_K = int(os.environ.get("IMGREC_TOP_K", "5"))


class ImgrecHandler(BaseHandler):  # type: ignore[misc]
    """Classification handler: bytes (or base64 text) in, top-k labels and scores out."""

    def initialize(self, context: Any) -> None:
        model_dir = context.system_properties.get("model_dir")
        self.classifier = load_model(model_dir)
        self.pre = self.classifier.card.preprocessing
        self.context = context
        self.initialized = True

    def preprocess(self, data: list[dict[str, Any]]) -> tuple[list[int], torch.Tensor | None]:
        """Decode every request; failed ones get their status set and are left out."""
        self.errors: dict[int, dict[str, str]] = {}
        good: list[int] = []
        pixels: list[np.ndarray] = []
        for idx, row in enumerate(data):
            body = row.get("data") if row.get("data") is not None else row.get("body")
            try:
                raw = _body_bytes(body)
                item = prepare_image(raw, self.pre)
                if item.error is not None:
                    raise item.error
            except ImgrecError as exc:
                self.errors[idx] = exc.to_dict()
                self.context.set_response_status(
                    code=exc.http_status, phrase=json.dumps(exc.to_dict()), idx=idx
                )
                continue
            assert item.pixels is not None
            good.append(idx)
            pixels.append(item.pixels)
        if not pixels:
            return good, None
        x = normalize_batch(np.stack(pixels), self.pre)  # (B, 3, S, S) float32
        return good, torch.from_numpy(x)

    def inference(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        good, x = data
        if x is None:
            return good, None
        return good, self.classifier.predict_batch(x)

    def postprocess(self, data: Any) -> list[Any]:
        good, logits = data
        n = max([*good, *self.errors, -1]) + 1
        out: list[Any] = [self.errors.get(i) for i in range(n)]
        if logits is not None:
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

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """One response per request of the TorchServe batch, in order."""
        self.context = context
        result = self.postprocess(self.inference(self.preprocess(data)))
        return result + [{"code": "internal_error"}] * (len(data) - len(result))


def _body_bytes(body: Any) -> bytes:
    from imgrec.errors import EmptyFileError
    from serving.protocol import InvalidBase64Error

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
