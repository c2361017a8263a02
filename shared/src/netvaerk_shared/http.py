"""What every service's HTTP side has in common, put together: `service_app()` builds a service's FastAPI app from
the edge (edge.py), problem+json (problems.py), the shared dependencies (deps.py), the truthful OpenAPI document
(openapi.py) and the operations API (ops.py). The names routes need are re-exported here."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

from .deps import Runtime, UoW, get_runtime, get_uow, protected_router, require_token
from .edge import DEFAULT_MAX_BODY, OPEN_PATHS, EdgeMiddleware, EdgePolicy, token_matches
from .openapi import truthful_openapi
from .ops import operations_router
from .problems import (
    DATABASE_RETRY_AFTER,
    PROBLEM,
    FieldError,
    Problem,
    ProblemDetails,
    install_problem_handlers,
    problem_response,
    problems,
    status_phrase,
)

__all__ = [
    "DATABASE_RETRY_AFTER",
    "DEFAULT_MAX_BODY",
    "OPEN_PATHS",
    "PROBLEM",
    "EdgeMiddleware",
    "EdgePolicy",
    "FieldError",
    "Problem",
    "ProblemDetails",
    "Runtime",
    "UoW",
    "get_runtime",
    "get_uow",
    "install_problem_handlers",
    "operations_router",
    "problem_response",
    "problems",
    "protected_router",
    "require_token",
    "service_app",
    "status_phrase",
    "token_matches",
    "truthful_openapi",
]

log = logging.getLogger(__name__)


def service_app(
    *, runtime_factory, title: str, description: str, routers, domain_error: type[Exception], version: str = "1.0.0"
) -> FastAPI:
    """Build a service's FastAPI app with every route in place (so `app.openapi()` is complete without starting it).
    `runtime_factory()` is called in the lifespan (never at import) and returns the ServiceRuntime that the routes
    reach through the `Runtime` dependency."""
    from contextlib import asynccontextmanager

    from fastapi_offline import FastAPIOffline

    from .logs import configure

    holder: dict = {}
    policy = EdgePolicy()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime = holder.get("runtime") or runtime_factory()
        configure(runtime.service, runtime.settings.log_level)
        app.state.runtime = runtime
        settings = runtime.settings
        policy.set(
            per_minute=settings.rate_limit_per_minute, max_body=settings.max_body_bytes, token=settings.api_token
        )
        await runtime.start()
        log.info("%s started", runtime.service)
        try:
            yield
        finally:
            await runtime.stop()

    # JSON lines from the first line uvicorn writes (the lifespan applies the service's own settings again)
    configure(runtime_factory.__module__.split(".")[0], os.environ.get("LOG_LEVEL", "INFO"))
    # Swagger UI from the installed fastapi-offline package: /docs works without reaching a CDN
    app = FastAPIOffline(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        static_url="/docs/static",
        redoc_url=None,
    )
    for router in routers:
        app.include_router(router)
    app.include_router(operations_router())
    install_problem_handlers(app, domain_error)
    app.add_middleware(EdgeMiddleware, policy=policy)
    app.state.runtime_holder = holder
    app.state.edge = policy
    app.openapi = lambda: truthful_openapi(app)  # type: ignore[method-assign]
    return app
