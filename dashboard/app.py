"""The dashboard's web app: Starlette routes over server-rendered Jinja2 pages.

Pages are rendered on the server (autoescaped templates, SVG charts from
:mod:`dashboard.charts`); the only script is ``static/dashboard.js`` (uploads, drag and drop,
webcam, boxes), hand-written and served from this package. Page handlers are plain functions,
which Starlette runs in its thread pool, so file reads never block the event loop::

    app = create_app(DashboardConfig(store="model-store", log="logs/predictions"))
    uvicorn.run(app, host="127.0.0.1", port=8050)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import (
    BytecodeCache,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    select_autoescape,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from imgrec import storage
from imgrec.dashboard import pages, runs
from imgrec.dashboard.actions import apply_action
from imgrec.dashboard.config import DashboardConfig
from imgrec.dashboard.endpoint import thumbnail
from imgrec.dashboard.security import SANDBOX_CSP, SecurityMiddleware, check_action
from imgrec.dashboard.sources import Sources
from imgrec.dashboard.upload import predict_uploads, read_uploads
from imgrec.errors import ConfigError, ImgrecError, NotFoundError

HERE = Path(__file__).parent
NAV = (
    ("/", "Overview"),
    ("/try", "Try it"),
    ("/models", "Models"),
    ("/runs", "Runs"),
    ("/monitoring", "Monitoring"),
    ("/review", "Review queue"),
)


def _bytecode_cache() -> BytecodeCache | None:
    """Compiled templates kept in ``$IMGREC_CACHE/dashboard/templates``: a new process renders
    its first page without compiling (Jinja checks each entry against the template's source)."""
    folder = storage.cache_folder("dashboard") / "templates"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return FileSystemBytecodeCache(str(folder))


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        bytecode_cache=_bytecode_cache(),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["signed"] = _signed
    return env


def _num(value: Any, digits: int = 4) -> str:
    """A metric for a table: floats rounded (whole numbers as such), missing as blank."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) >= 1 else f"{value:.{digits}f}"
    return str(value)


def _signed(value: Any, digits: int = 4) -> str:
    return "" if value is None else f"{value:+.{digits}f}"


def _int(value: Any, name: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {str(value)[:40]!r}") from None


def _done(request: Request) -> dict[str, Any] | None:
    """The action just done, from the redirect's query (``done``, ``version``, ``served``)."""
    q = request.query_params
    if q.get("done") not in ("promote", "rollback") or not q.get("version", "").isdigit():
        return None
    return {"kind": q["done"], "version": int(q["version"]), "served": q.get("served") == "1"}


def create_app(config: DashboardConfig) -> Starlette:
    """The ASGI app for ``config`` (indexing of the prediction log starts in the background)."""
    src = Sources(config)
    env = _environment()

    def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Any:
        template = env.get_template(name)
        html = template.render(
            nav=NAV, path=request.url.path, config=config, request=request, **context
        )
        return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})

    def overview(request: Request) -> Response:
        return render(request, "overview.html", pages.overview(src))

    def try_it(request: Request) -> Response:
        health = src.endpoint.health() if src.endpoint else None
        return render(request, "try.html", {"health": health})

    def models_list(request: Request) -> Response:
        return render(request, "models.html", {**pages.models_page(src), "done": _done(request)})

    def model_detail(request: Request) -> Response:
        number = _int(request.path_params["version"], "version")
        return render(request, "model.html", pages.model_page(src, number))

    def compare(request: Request) -> Response:
        a = _int(request.query_params.get("a", ""), "a")
        b = _int(request.query_params.get("b", ""), "b")
        return render(request, "compare.html", pages.compare_page(src, a, b))

    def runs_list(request: Request) -> Response:
        return render(request, "runs.html", pages.runs_page(src))

    def run_detail(request: Request) -> Response:
        return render(request, "run.html", pages.run_page(src, request.path_params["run_id"]))

    def run_file(request: Request) -> Response:
        run = runs.get_run(config.runs, request.path_params["run_id"])
        path = runs.run_file(run, request.path_params["rel"])
        return _report_file(path)

    def monitoring(request: Request) -> Response:
        return render(request, "monitoring.html", pages.monitoring(src))

    def drift_report(request: Request) -> Response:
        rel = request.path_params["rel"]
        for report in src.reports():
            if report.rel == rel and report.has_html:
                root = Path(config.reports).resolve()
                return _report_file(root / rel / "report.html")
        raise NotFoundError(f"no drift report {rel!r}", hint="see the Monitoring page")

    def review(request: Request) -> Response:
        return render(request, "review.html", pages.review_page(src))

    def review_image(request: Request) -> Response:
        fp = f"sha256:{request.path_params['digits']}"
        uri = src.captures().get(fp)
        if uri is None:
            raise NotFoundError(f"no captured image {fp}", hint="see the Review queue")
        return Response(thumbnail(storage.read_bytes(uri)), media_type="image/jpeg",
                        headers={"cache-control": "private, max-age=3600"})  # fmt: skip

    async def api_predict(request: Request) -> Response:
        uploads = await read_uploads(request, config)
        results = await run_in_threadpool(predict_uploads, uploads, src.endpoint, config)
        return JSONResponse({"results": results})

    async def action(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=8, max_part_size=4096)
        check_action(config.allow_actions, config.token, str(form.get("token") or ""))
        kind = request.path_params["kind"]
        version = _int(form["version"], "version") if form.get("version") else None
        reason = str(form.get("reason") or "from the dashboard")[:200]
        done = await run_in_threadpool(apply_action, src.store, kind, version=version,
                                       reason=reason, server_url=config.server)  # fmt: skip
        src.forget()
        query = f"done={done.kind}&version={done.version}&served={int(done.served)}"
        return RedirectResponse(f"/models?{query}", status_code=303)

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ImgrecError)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)
        return render(request, "error.html", {"error": exc}, status=exc.http_status)

    routes = [
        Route("/", overview),
        Route("/try", try_it),
        Route("/models", models_list),
        Route("/models/compare", compare),
        Route("/models/{version}", model_detail),
        Route("/runs", runs_list),
        Route("/runs/{run_id}", run_detail),
        Route("/runs/{run_id}/files/{rel:path}", run_file),
        Route("/monitoring", monitoring),
        Route("/monitoring/reports/{rel:path}/report.html", drift_report),
        Route("/review", review),
        Route("/review/images/{digits:str}.jpg", review_image),
        Route("/api/predict", api_predict, methods=["POST"]),
        Route("/actions/{kind}", action, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={ImgrecError: on_error})
    app.add_middleware(SecurityMiddleware)
    app.state.sources = src
    src.start_indexing()
    return app


def _report_file(path: Path) -> Response:
    """A file a pipeline step or the monitor wrote: HTML in a CSP sandbox (its scripts get no
    access to the dashboard's origin), Markdown and text as plain text, images as images."""
    head = path.open("rb").read(64).lstrip().lower()
    if path.suffix in (".html", ".htm") or head.startswith((b"<!doctype html", b"<html")):
        return FileResponse(
            path, media_type="text/html", headers={"content-security-policy": SANDBOX_CSP}
        )
    if path.suffix in (".png", ".jpg", ".jpeg", ".svg"):
        return FileResponse(path, headers={"content-security-policy": SANDBOX_CSP})
    return FileResponse(path, media_type="text/plain; charset=utf-8")
