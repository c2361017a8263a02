"""The web gateway's FastAPI app: the members' pages, the JSON API under /api/, health, and the edge in front of
them. Run it with `uvicorn gateway.app:app`; `create_app()` builds one for a test."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from netvaerk_shared.logs import configure
from netvaerk_shared.openapi import truthful_openapi
from netvaerk_shared.problems import install_problem_handlers, problem_response

from .adapters.services import Refused, Unavailable
from .bootstrap import Gateway, bootstrap
from .entrypoints import api, pages
from .entrypoints.edge import GatewayEdge
from .entrypoints.session import Forbidden, SignInRequired

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(make_gateway: Callable[[], Awaitable[Gateway]] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = await (app.state.make_gateway or bootstrap)()
        configure("gateway", gw.settings.log_level)
        app.state.gateway = gw
        edge.configure(per_minute=gw.settings.rate_limit_per_minute, max_body=gw.settings.max_body_bytes)
        log.info("gateway started")
        try:
            yield
        finally:
            await gw.close()

    app = FastAPI(
        title="Netværk web gateway",
        description=(
            "The members' web pages and a JSON API under /api/ for other clients. Sign in by the link the gateway "
            "emails (POST /login on the pages); the session cookie `nv_session` then authenticates the API, and "
            "every change carries the session's CSRF token in `X-CSRF-Token`."
        ),
        version="1.0.0",
        lifespan=lifespan,
        redoc_url=None,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
    )
    app.state.make_gateway = make_gateway
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        gw: Gateway = request.app.state.gateway
        services = await gw.services.ready()
        return JSONResponse({"status": "ok", "services": services})

    app.include_router(api.router)
    app.include_router(pages.router)
    install_problem_handlers(app)

    async def on_error(request: Request, exc: Exception) -> Response:
        if not _is_api(request):
            return await pages.error_page(request, exc)
        if isinstance(exc, Unavailable):
            return problem_response(
                503,
                f"The {exc.service} service is unavailable; try again shortly.",
                instance=request.url.path,
                retry_after=5,
            )
        if isinstance(exc, Refused):
            extra: dict[str, Any] = {"errors": exc.problem["errors"]} if exc.problem.get("errors") else {}
            status = exc.status if exc.status < 500 else 502
            return problem_response(status, exc.detail or None, instance=request.url.path, **extra)
        if isinstance(exc, Forbidden):
            return problem_response(403, "You do not have access to that.", instance=request.url.path)
        if isinstance(exc, SignInRequired):
            return problem_response(401, "Sign in first.", instance=request.url.path)
        return problem_response(404, "Not found.", instance=request.url.path)

    for exc_class in (Unavailable, Refused, Forbidden, SignInRequired, LookupError):
        app.add_exception_handler(exc_class, on_error)

    default_http = app.exception_handlers[StarletteHTTPException]
    default_validation = app.exception_handlers[RequestValidationError]

    async def http_error(request: Request, exc: Exception) -> Response:
        if _is_api(request) or not isinstance(exc, StarletteHTTPException):
            return await _call(default_http, request, exc)
        return await pages.error_page(request, LookupError() if exc.status_code == 404 else Forbidden())

    async def validation_error(request: Request, exc: Exception) -> Response:
        if _is_api(request):
            return await _call(default_validation, request, exc)
        return await pages.error_page(request, LookupError())

    async def crashed(request: Request, exc: Exception) -> Response:
        """Anything unforeseen: logged with its traceback (by the server), answered with a page or a problem that
        says sorry, never the traceback itself."""
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        if _is_api(request):
            return problem_response(
                500, "Something went wrong on our side; it has been logged.", instance=request.url.path
            )
        return await pages.error_page(request, exc)

    app.add_exception_handler(Exception, crashed)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)

    edge = GatewayEdge(app.router)  # configured from the settings in the lifespan
    app.add_middleware(_EdgeHolder, edge=edge)
    app.openapi = lambda: truthful_openapi(app)  # type: ignore[method-assign]
    return app


async def _call(handler: Any, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    return await result if inspect.isawaitable(result) else result


class _EdgeHolder:
    """Puts the one GatewayEdge (whose limits the lifespan sets) in front of the app's own middleware stack."""

    def __init__(self, app: Any, edge: GatewayEdge) -> None:
        edge.app = app
        self.edge = edge

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.edge(scope, receive, send)


app = create_app()
