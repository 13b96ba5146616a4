"""The Try-it page's uploads: bounded reading, the API's decoder, frames of short videos.

The request body is counted while it streams and refused past ``max_upload_bytes`` (413, the
API's ``payload_too_large``), and at most ``max_files`` files are parsed. Each file then goes
through :func:`dashboard.endpoint.check_upload` (``imgrec.data.images``: magic-byte sniffing,
the pixel limit before any pixel buffer, full decode), so a text file, a truncated JPEG or a
decompression bomb gets the same error code and message as from the API (BAD-INPUTS row 40).
A short video (MP4, WebM, AVI) contributes up to :data:`VIDEO_FRAMES` evenly spaced frames.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from starlette.requests import Request

from imgrec.dashboard.config import DashboardConfig
from imgrec.dashboard.endpoint import Endpoint, Upload, check_upload
from imgrec.errors import (
    CorruptImageError,
    EndpointUnavailableError,
    ImageTooLargeError,
    ImgrecError,
    NoFilesError,
    UploadTooLargeError,
)

VIDEO_FRAMES = 8


async def read_uploads(request: Request, config: DashboardConfig) -> list[Upload]:
    """The files of a multipart upload, the whole body bounded by ``max_upload_bytes``."""
    limit = config.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(total, limit)
        chunks.append(chunk)
    request._body = b"".join(chunks)  # what Starlette's form parser reads from
    form = await request.form(max_files=config.max_files, max_fields=config.max_files)
    uploads = []
    for _, value in form.multi_items():
        if not isinstance(value, str):
            uploads.append(Upload(_file_name(value.filename), await value.read()))
    await form.close()
    if not uploads:
        raise NoFilesError("the upload holds no files", hint="choose or drop image files")
    return uploads


def _file_name(raw: str | None) -> str:
    """The file's name as the user sees it: browsers send ``"``, CR and LF in multipart file
    names as ``%22``, ``%0D``, ``%0A`` (HTML's form encoding), undone here."""
    name = str(raw or "upload")[:200]
    return name.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


def _too_large(size: int, limit: int) -> UploadTooLargeError:
    return UploadTooLargeError(
        f"upload of {size} bytes exceeds the limit of {limit} bytes",
        hint="upload fewer or smaller files at once",
    )


def is_video(data: bytes) -> bool:
    """MP4/MOV (``ftyp`` box), WebM/Matroska (EBML) or AVI, by their first bytes."""
    return (
        data[4:8] == b"ftyp"
        or data[:4] == b"\x1a\x45\xdf\xa3"
        or (data[:4] == b"RIFF" and data[8:12] == b"AVI ")
    )


def video_frames(upload: Upload, max_pixels: int) -> list[Upload]:
    """Up to :data:`VIDEO_FRAMES` evenly spaced frames of a video as JPEG uploads."""
    import cv2

    fd, path = tempfile.mkstemp(suffix=".video")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(upload.data)
        cap = cv2.VideoCapture(path)
        try:
            width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            if not cap.isOpened() or count <= 0:
                raise CorruptImageError(
                    f"{upload.name} could not be read as a video",
                    hint="upload an MP4 or WebM file, or images",
                )
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"video frames of {width}x{height} exceed the limit of {max_pixels} pixels",
                    hint="upload a smaller video",
                )
            frames = []
            for i in sorted({int(k * count / VIDEO_FRAMES) for k in range(VIDEO_FRAMES)}):
                cap.set(cv2.CAP_PROP_POS_FRAMES, i)
                ok, frame = cap.read()
                if not ok:
                    continue
                ok, jpeg = cv2.imencode(".jpg", frame)
                if ok:
                    frames.append(Upload(f"{upload.name} @ {i / fps:.1f} s", jpeg.tobytes()))
            return frames
        finally:
            cap.release()
    finally:
        os.unlink(path)


def predict_uploads(
    uploads: list[Upload], endpoint: Endpoint | None, config: DashboardConfig
) -> list[dict[str, Any]]:
    """Check every upload, send the good ones to the endpoint in one V2 request; one result
    per image (``name``, ``width``, ``height``, ``preview``, and predictions or ``error``)."""
    from imgrec.data.images import max_pixels_setting

    limit = max_pixels_setting()
    items: list[Upload] = []
    for upload in uploads:
        if is_video(upload.data):
            try:
                items.extend(check_upload(f, limit) for f in video_frames(upload, limit))
            except ImgrecError as exc:
                upload.error = exc
                items.append(upload)
        else:
            items.append(check_upload(upload, limit))
    good = [u for u in items if u.error is None]
    answers: list[dict[str, Any]] = []
    if good:
        if endpoint is None:
            raise EndpointUnavailableError(
                "no model server is configured",
                hint="start the dashboard with --server http://127.0.0.1:8080",
            )
        answers = endpoint.infer([u.data for u in good], top_k=config.top_k)
    by_id = {id(u): a for u, a in zip(good, answers, strict=True)}
    results = []
    for u in items:
        doc: dict[str, Any] = {"name": u.name}
        if u.error is not None:
            doc["error"] = u.error.to_dict()
        else:
            doc.update(width=u.width, height=u.height, preview=u.preview, **by_id[id(u)])
        results.append(doc)
    return results
