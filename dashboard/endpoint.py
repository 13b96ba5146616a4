"""The running model server, seen from the dashboard: health, metadata and V2 inference.

Uploaded files are first decoded here with the API's own decoder and limits
(:func:`imgrec.data.images.decode_image`), so a bad file gets exactly the API's error code and
message and never reaches the server; good images are sent to the KServe Open Inference
Protocol V2 route as BYTES (base64 in JSON). Classification answers ``label``/``score``
outputs, detection a ``detections`` output (boxes in the image's own pixels)::

    client = Endpoint("http://127.0.0.1:8080")
    client.health()                          # {"live": True, "ready": True, "model": "imgrec", ...}
    client.infer([jpeg_bytes], top_k=3)      # one dict per image
"""

from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import dataclass
from typing import Any

from imgrec.errors import EndpointError, EndpointUnavailableError, ImgrecError

# httpx, NumPy and Pillow load on first use: the dashboard starts without them (< 2 s goal).

HEALTH_TTL_S = 5.0


@dataclass
class Upload:
    """One uploaded file: its name and bytes; after :func:`check_upload`, its size or error."""

    name: str
    data: bytes
    width: int = 0
    height: int = 0
    preview: str = ""  # data: URL of the decoded (EXIF-oriented, RGB) image, for display
    error: ImgrecError | None = None


PREVIEW_SIDE = 1024


def check_upload(upload: Upload, max_pixels: int | None = None) -> Upload:
    """Decode ``upload`` as the API would; record its error or its size and a preview.

    The preview is the decoded image (orientation applied, like the server sees it), shrunk to
    at most :data:`PREVIEW_SIDE` px; boxes are drawn in the full image's pixel space over it.
    """
    from imgrec.data.images import decode_image

    try:
        image = decode_image(upload.data, max_pixels=max_pixels)
    except ImgrecError as exc:
        upload.error = exc
        return upload
    upload.width, upload.height = image.size
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    upload.preview = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    return upload


def thumbnail(data: bytes, side: int = 192) -> bytes:
    """A JPEG thumbnail of encoded image bytes, through the API's decoder and limits."""
    from imgrec.data.images import decode_image

    image = decode_image(data)
    image.thumbnail((side, side))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _reshape(output: dict[str, Any]) -> list[Any]:
    """A V2 JSON output's flat ``data`` as rows of its first dimension."""
    data = list(output.get("data") or [])
    shape = list(output.get("shape") or [len(data)])
    if len(shape) <= 1 or not shape[0]:
        return data
    width = len(data) // shape[0]
    return [data[i * width : (i + 1) * width] for i in range(shape[0])]


class Endpoint:
    """A KServe V2 endpoint at ``url`` serving ``model`` (found from ``/v1/models`` if unset)."""

    def __init__(self, url: str, model: str | None = None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._model = model
        self.timeout_s = timeout_s
        self._health: tuple[float, dict[str, Any]] | None = None

    def _get(self, path: str, timeout: float) -> Any:
        import httpx

        response = httpx.get(self.url + path, timeout=timeout)
        response.raise_for_status()
        return response.json()

    def model_name(self) -> str:
        import httpx

        if self._model is None:
            try:
                models = self._get("/v1/models", 2.0).get("models") or []
            except (httpx.HTTPError, ValueError) as exc:
                raise EndpointUnavailableError(
                    f"the model server at {self.url} did not answer: {exc}",
                    hint="start it (`imgrec serve ...`) or pass --server URL",
                ) from None
            self._model = str(models[0]) if models else "imgrec"
        return self._model

    def forget(self) -> None:
        """Drop the cached health (the served version just changed)."""
        self._health = None

    def health(self) -> dict[str, Any]:
        """Liveness, readiness and the served model's metadata (cached a few seconds)."""
        import httpx

        now = time.monotonic()
        if self._health and now - self._health[0] < HEALTH_TTL_S:
            return self._health[1]
        doc: dict[str, Any] = {"url": self.url, "live": False, "ready": False}
        try:
            doc["live"] = bool(self._get("/v2/health/live", 0.5).get("live", True))
            name = self.model_name()
            doc["model"] = name
            doc["ready"] = bool(self._get(f"/v2/models/{name}/ready", 0.5).get("ready", True))
            meta = self._get(f"/v2/models/{name}", 0.5)
            doc["version"] = str(meta.get("versions", [""])[0] if meta.get("versions") else "")
            doc["outputs"] = [o.get("name") for o in meta.get("outputs", [])]
        except (httpx.HTTPError, ImgrecError, ValueError) as exc:
            doc["error"] = str(exc).splitlines()[0][:200]
        self._health = (now, doc)
        return doc

    def infer(self, images: list[bytes], *, top_k: int = 5) -> list[dict[str, Any]]:
        """V2 inference on encoded images; one dict per image: ``predictions`` (label, score)
        for classifiers, ``detections`` (label, score, box) for detectors, or ``error``."""
        import httpx

        name = self.model_name()
        body = {
            "id": f"dashboard-{int(time.time() * 1000)}",
            "inputs": [
                {
                    "name": "image",
                    "datatype": "BYTES",
                    "shape": [len(images)],
                    "data": [base64.b64encode(b).decode() for b in images],
                }
            ],
            "parameters": {"top_k": top_k},
        }
        try:
            response = httpx.post(
                f"{self.url}/v2/models/{name}/infer", json=body, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise EndpointUnavailableError(
                f"the model server at {self.url} did not answer: {exc}",
                hint="start it (`imgrec serve ...`) or pass --server URL",
            ) from None
        if response.status_code != 200:
            try:
                err = response.json()
            except ValueError:
                err = {"message": response.text[:200]}
            raise EndpointError(
                str(err.get("message") or err.get("error") or response.status_code),
                hint=str(err.get("hint", "")),
                code=str(err.get("code") or EndpointError.code),
            )
        return parse_v2(response.json(), len(images))


def parse_v2(doc: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Per-image results from a V2 JSON response (classification or detection outputs)."""
    outputs = {o["name"]: _reshape(o) for o in doc.get("outputs", []) if "name" in o}
    version = str(doc.get("model_version", ""))
    results: list[dict[str, Any]] = []
    for i in range(n):
        error = outputs.get("error", [""] * n)[i]
        if error:
            results.append({"error": {"code": str(error), "message": str(error)}})
        elif "detections" in outputs:
            found = outputs["detections"][i]
            results.append({"detections": json.loads(found) if isinstance(found, str) else found})
        else:
            labels, scores = outputs.get("label", [[]] * n)[i], outputs.get("score", [[]] * n)[i]
            results.append(
                {
                    "predictions": [
                        {"label": str(lab), "score": float(s)}
                        for lab, s in zip(labels, scores, strict=True)
                        if lab != ""
                    ]
                }
            )
        results[-1]["model_version"] = version
    return results
