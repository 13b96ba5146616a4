"""An ASGI wrapper that bounds what one request can cost before any handler runs.

* bodies larger than ``max_body_bytes`` get 413 after at most that many bytes were read: a
  declared ``Content-Length`` over the limit is refused without reading, a lying or missing one
  is counted while streaming (BAD-INPUTS row 19);
* a client that announces a body and stalls gets 408 after ``read_timeout_s``;
* multipart and form bodies (not an inference format here) get 415 without being read (row 20);
* more than ``max_inflight`` concurrent POSTs get a fast 503 with ``Retry-After`` (row 22), so
  buffered bodies are bounded by ``max_inflight * max_body_bytes``.

Health and metadata routes (GET) pass straight through and keep answering under load.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgrec.errors import ImgrecError, UnsupportedContentTypeError
from imgrec.serving.errors import (
    BadRequestError,
    OverloadedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    error_response,
)

_REFUSED_CONTENT_TYPES = ("multipart/", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class RequestLimits:
    """Per-request bounds; defaults suit a CPU server with 32-image requests."""

    max_body_bytes: int = 32 * 1024 * 1024
    read_timeout_s: float = 30.0
    max_inflight: int = 64


class RequestLimitMiddleware:
    """Wrap an ASGI app with the bounds of :class:`RequestLimits`."""

    def __init__(self, app: ASGIApp, limits: RequestLimits | None = None) -> None:
        self.app = app
        self.limits = limits or RequestLimits()
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limits.max_inflight:
            exc: ImgrecError = OverloadedError(
                f"{self.inflight} requests in flight (limit {self.limits.max_inflight})"
            )
            await error_response(exc)(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self._limited(scope, receive, send)
        finally:
            self.inflight -= 1

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            self._check_headers(headers)
            body = await self._read_body(receive)
        except ImgrecError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _check_headers(self, headers: dict[str, Any]) -> None:
        content_type = headers.get("content-type", "").lower()
        if content_type.startswith(_REFUSED_CONTENT_TYPES):
            raise UnsupportedContentTypeError(
                f"content type {content_type.split(';')[0]!r} is not accepted",
                hint="send JSON (V1/V2) or the V2 binary tensor format",
            )
        declared = headers.get("content-length")
        if declared is None:
            return
        if not declared.strip().isdigit():
            raise BadRequestError(f"invalid Content-Length {declared[:40]!r}")
        if int(declared) > self.limits.max_body_bytes:
            raise PayloadTooLargeError(
                f"body of {int(declared)} bytes exceeds the limit of "
                f"{self.limits.max_body_bytes} bytes",
                hint="send fewer or smaller images per request (or raise --max-body-mb)",
            )

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.limits.read_timeout_s)
            except asyncio.TimeoutError:
                raise RequestTimeoutError(
                    f"request body not received within {self.limits.read_timeout_s:g} s",
                    hint="send the whole body promptly; check Content-Length",
                ) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.limits.max_body_bytes:
                raise PayloadTooLargeError(
                    f"body exceeds the limit of {self.limits.max_body_bytes} bytes",
                    hint="send fewer or smaller images per request (or raise --max-body-mb)",
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
