"""Run the KServe predictor: kserve's ``ModelServer`` on a chosen host and port, with limits.

KServe 0.21's ``RESTServer`` always binds ``0.0.0.0`` and serves the module-level FastAPI app of
``kserve.model_server``. :class:`ImgrecModelServer` keeps kserve's app, routes and dataplane but
builds the REST server itself so it can bind loopback by default, wrap the app in
:class:`~serving.limits.RequestLimitMiddleware`, install imgrec's error mapping and add the
admin route used for hot swaps::

    from imgrec.serving.server import serve
    serve("efficientnet_lite0", port=8080)          # blocks; Ctrl-C stops it

The admin route ``POST /imgrec/admin/models/{name}/load`` (body ``{"model": "STORE@production"}``,
header ``Authorization: Bearer TOKEN``) loads a new version and switches to it without failing
in-flight requests; ``"canary_percent": P`` loads it as a canary taking P % of the requests.
The token comes from ``IMGREC_ADMIN_TOKEN`` or is generated; either way it
is written, with the URL and pid, to a ``0600`` state file (:func:`state_path`) so that the local
deploy step can find the running server.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
import secrets
import signal
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from timing_asgi import TimingMiddleware

from imgrec.errors import ImgrecError
from imgrec.serving._kserve import DataPlane, RESTServer, kserve, kserve_model_server
from imgrec.serving.errors import BadRequestError, UnauthorizedError, install_error_handlers
from imgrec.serving.limits import RequestLimitMiddleware, RequestLimits
from imgrec.serving.local_server import DEFAULT_NAME, state_path
from imgrec.serving.logs import configure_logs
from imgrec.serving.model import ImgrecModel, ServingOptions
from imgrec.serving.protocol import decode_binary_request

log = logging.getLogger("imgrec.serving")


def _loop_factory() -> Any:
    """uvloop when installed (what uvicorn's ``loop="auto"`` picks), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with kserve's dependencies
        return asyncio.new_event_loop
    return uvloop.new_event_loop


class _RESTServer(RESTServer):
    def __init__(
        self,
        *args: Any,
        host: str,
        limits: RequestLimits,
        admin: _Admin,
        access_log: bool = False,
        **kw: Any,
    ):
        super().__init__(*args, **kw)
        self.config.host = host
        self.config.access_log = access_log
        self.limits = limits
        self.admin = admin

    def create_application(self) -> None:
        super().create_application()
        app: FastAPI = kserve_model_server.app
        # kserve always adds timing_asgi's per-request timer; its only output is the
        # kserve.trace INFO line silenced in ImgrecModelServer, so it is pure cost on the loop.
        app.user_middleware = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
        install_error_handlers(app)
        self.admin.register(app)
        app.add_middleware(RequestLimitMiddleware, limits=self.limits)  # outermost

    @property
    def uvicorn_server(self) -> Any:
        return self._server


class _Admin:
    """The token-protected hot-swap route."""

    def __init__(self, models: dict[str, ImgrecModel], token: str) -> None:
        self.models = models
        self.token = token
        self.lock = asyncio.Lock()

    def register(self, app: FastAPI) -> None:
        app.add_api_route("/imgrec/admin/models/{model_name}/load", self.load, methods=["POST"])
        app.add_api_route("/imgrec/admin/models/{model_name}", self.info, methods=["GET"])

    def _check(self, request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise UnauthorizedError(
                "missing or wrong admin token", hint="send 'Authorization: Bearer <token>'"
            )

    def _model(self, name: str) -> ImgrecModel:
        if name not in self.models:
            raise ImgrecError(
                f"no model named {name!r}",
                hint=f"served: {list(self.models)}",
                code="model_not_found",
            )
        return self.models[name]

    async def info(self, model_name: str, request: Request) -> dict[str, Any]:
        self._check(request)
        model = self._model(model_name)
        runtime = model._runtime()
        return {
            "name": model_name,
            "version": runtime.version,
            "model": runtime.ref.uri,
            "store": runtime.ref.store,
            "canary": _canary_info(model),
            "swaps": model.swaps,
            "backend": model.options.backend,
            "precision": model.options.precision,
            "capture": model.capture.stats() if model.capture else None,
        }

    async def load(self, model_name: str, request: Request) -> dict[str, Any]:
        self._check(request)
        model = self._model(model_name)
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise BadRequestError('expected {"model": "<model dir | STORE@version>"}')
        canary = body.get("canary_percent")
        if canary is not None and (isinstance(canary, bool) or not isinstance(canary, int)):
            raise BadRequestError("canary_percent must be a whole number 1-99")
        async with self.lock:  # one swap at a time; serving continues meanwhile
            runtime = await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(model.swap, body["model"], canary_percent=canary)
            )
        return {
            "name": model_name,
            "version": runtime.version,
            "model": runtime.ref.uri,
            "canary_percent": canary,
        }


def _canary_info(model: ImgrecModel) -> dict[str, Any] | None:
    canary = model.canary
    if canary is None:
        return None
    return {"version": canary.version, "model": canary.ref.uri, "store": canary.ref.store,
            "percent": model.canary_percent}  # fmt: skip


class _DataPlane(DataPlane):  # type: ignore[misc]
    """KServe's dataplane with a binary V2 decoder that keeps image bytes intact."""

    def decode_inference_request(self, body: Any, headers: dict[str, str], model_name: str) -> Any:
        if isinstance(body, bytes):
            length = headers.get("inference-header-content-length")
            if length is None or not str(length).isdigit():
                raise BadRequestError(
                    "binary V2 request without a valid Inference-Header-Content-Length header"
                )
            return decode_binary_request(body, int(length), model_name)
        return super().decode_inference_request(body, headers, model_name)


class ImgrecModelServer(kserve.ModelServer):  # type: ignore[misc]
    """kserve's ``ModelServer`` bound to ``host`` with imgrec's limits and error mapping."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        limits: RequestLimits | None = None,
        admin_token: str | None = None,
        log_level: str = "info",
        access_log: bool = False,
    ) -> None:
        super().__init__(http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False)
        self.dataplane = _DataPlane(model_registry=self.registered_models)
        # after kserve configured its loggers: imgrec's lines; kserve/uvicorn INFO only at debug
        configure_logs(log_level, access_log=access_log)
        self.access_log = access_log
        warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
        self.host = host
        self.limits = limits or RequestLimits()
        self.admin_token = (
            admin_token or os.environ.get("IMGREC_ADMIN_TOKEN") or (secrets.token_urlsafe(24))
        )
        self.rest: _RESTServer | None = None
        self._models: dict[str, ImgrecModel] = {}

    def start(self, models: list[Any]) -> None:
        """Register ``models`` and serve until SIGINT/SIGTERM: uvicorn's graceful shutdown, then
        the models stop (queued prediction-log and capture records are written)."""
        self._register_and_check_atleast_one_model_is_ready(models)
        self._models = {m.name: m for m in models if isinstance(m, ImgrecModel)}
        self.rest = _RESTServer(
            "kserve.model_server:app",
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            host=self.host,
            limits=self.limits,
            admin=_Admin(self._models, self.admin_token),
            access_log=self.access_log,
            workers=1,
            grace_period=self.grace_period,
            event_loop="auto",
            timeout_keep_alive=self.timeout_keep_alive,
        )
        state = state_path(self.http_port)
        self._write_state(state)
        previous = _exit_cleanly_on_sigterm()
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(self._run())
        finally:
            state.unlink(missing_ok=True)
            for model in self._models.values():
                model.stop()  # the prediction log's and the capture's last records
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    async def _run(self) -> None:
        assert self.rest is not None
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(4, "imgrec-io"))
        announce = asyncio.create_task(self._announce_ready())
        try:
            await self.rest.start()
        finally:
            announce.cancel()

    async def _announce_ready(self) -> None:
        assert self.rest is not None
        while not self.rest.uvicorn_server.started:
            await asyncio.sleep(0.05)
        log.info("ready on %s (Ctrl-C stops)", self._url())

    def _url(self) -> str:
        url_host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{url_host}:{self.http_port}"

    def _write_state(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {
                    "url": self._url(),
                    "pid": os.getpid(),
                    "token": self.admin_token,
                    "models": list(self._models),
                },
                fh,
            )
        os.replace(tmp, path)


def serve(
    model: str = "efficientnet_lite0",
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    name: str = DEFAULT_NAME,
    options: ServingOptions | None = None,
    limits: RequestLimits | None = None,
    admin_token: str | None = None,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve ``model`` with the KServe predictor until interrupted (blocking).

    ``model`` is a model directory, ``STORE@production`` / ``STORE@N``, or a pretrained name.
    This is what ``imgrec serve`` and ``make run`` call. ``log_level`` (debug, info, warning)
    and ``access_log``: see :func:`serving.logs.configure_logs`.
    """
    configure_logs(log_level, access_log=access_log)
    predictor = ImgrecModel(name, model, options)
    predictor.load()
    runtime = predictor.runtime
    log.info(
        "loaded %s (version %s, %s backend, %s)",
        runtime.ref.uri if runtime else model,
        runtime.ref.version if runtime else "?",
        predictor.options.backend,
        predictor.options.precision,
    )
    server = ImgrecModelServer(
        host=host,
        port=port,
        limits=limits,
        admin_token=admin_token,
        log_level=log_level,
        access_log=access_log,
    )
    server.start([predictor])


def example_requests(name: str = DEFAULT_NAME, url: str = "http://127.0.0.1:8080") -> str:
    """curl commands for V1 and V2 (printed by ``imgrec serve`` and ``make run``)."""
    return "\n".join(
        [
            "# V1 (base64 JSON):",
            f'curl -s {url}/v1/models/{name}:predict -H "Content-Type: application/json" \\',
            '  -d "{\\"instances\\": [{\\"image\\": {\\"b64\\": \\"$(base64 -w0 cat.jpg)\\"}}]}"',
            "# V2 (Open Inference Protocol, BYTES input as base64 in JSON):",
            f'curl -s {url}/v2/models/{name}/infer -H "Content-Type: application/json" \\',
            '  -d "{\\"inputs\\": [{\\"name\\": \\"image\\", \\"datatype\\": \\"BYTES\\", '
            '\\"shape\\": [1], \\"data\\": [\\"$(base64 -w0 cat.jpg)\\"]}]}"',
            f"curl -s {url}/v2/models/{name}   # metadata",
        ]
    )


def serve_production(
    store_uri: str, *, host: str = "127.0.0.1", port: int = 8080, name: str = DEFAULT_NAME
) -> None:
    """Print example requests, then serve ``STORE@production`` until Ctrl-C (``make run``)."""
    url = f"http://{host}:{port}"
    print(f"serving the production model of {store_uri} as {name!r} on {url} (Ctrl-C stops)")
    print(example_requests(name, url), flush=True)
    serve(f"{store_uri}@production", host=host, port=port, name=name)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _exit_cleanly_on_sigterm() -> Any:
    """Make SIGTERM (Kubernetes' stop, ``kill``) end the process through ``finally`` blocks.

    uvicorn catches SIGTERM, shuts the HTTP server down gracefully, restores the handler it
    found and raises the signal again. With the default handler that kills the process on the
    spot: the models' ``stop`` never ran and the prediction log's and the capture's queued
    records were lost. With this one the signal ends the process with exit code 0 after them.
    Returns the previous handler (None off the main thread, where signals can't be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _stop_on_sigterm)
