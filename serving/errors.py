"""The one place that maps errors to the servers' HTTP responses.

The request-level error classes live in :mod:`imgrec.errors` with every other error (they are
re-exported here). Every error response, TorchServe's included, is JSON
``{"error": message, "code": code, "message": message, "hint": hint}``: ``error`` keeps
KServe's own shape, ``code`` is the stable machine-readable name clients branch on.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from imgrec.errors import (
    BadRequestError,
    ImgrecError,
    InferenceTimeoutError,
    OverloadedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnauthorizedError,
    error_body,
)
from imgrec.serving._kserve import InvalidInput

__all__ = [
    "BadRequestError",
    "InferenceTimeoutError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RequestTimeoutError",
    "UnauthorizedError",
    "error_response",
    "install_error_handlers",
]
log = logging.getLogger("imgrec.serving")


def error_response(exc: ImgrecError) -> JSONResponse:
    """Map an imgrec error to its HTTP response (status, JSON body, ``Retry-After``)."""
    headers: dict[str, str] = {}
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse(
        status_code=exc.http_status,
        content=exc.response_body(),
        headers=headers,
    )


def _handler(status: int, code: str, *, log_trace: bool = False) -> Any:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        if log_trace:
            log.error("unhandled error", exc_info=exc)
        return JSONResponse(status_code=status, content=error_body(code, str(exc)))

    return handle


async def _imgrec_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImgrecError)
    return error_response(exc)


async def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = f"invalid request body at {where}: {first.get('msg', exc)}"
    return JSONResponse(
        status_code=400,
        content=error_body("bad_request", message, "see docs/serving.md for the request format"),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error a JSON body with a stable ``code`` (overrides KServe's handlers)."""
    from kserve.errors import (
        InferenceError,
        ModelNotFound,
        ModelNotReady,
        ServerNotReady,
    )

    app.add_exception_handler(ImgrecError, _imgrec_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(InvalidInput, _handler(400, "bad_request"))
    app.add_exception_handler(ModelNotFound, _handler(404, "model_not_found"))
    app.add_exception_handler(ModelNotReady, _handler(503, "model_not_ready"))
    app.add_exception_handler(ServerNotReady, _handler(503, "server_not_ready"))
    app.add_exception_handler(NotImplementedError, _handler(501, "not_implemented"))
    app.add_exception_handler(InferenceError, _handler(500, "inference_error", log_trace=True))
    app.add_exception_handler(Exception, _handler(500, "internal_error", log_trace=True))
