"""What every service's HTTP side has in common, put together: `service_app()` builds a service's FastAPI app from
the edge (edge.py), problem+json (problems.py), the shared dependencies (deps.py), the truthful OpenAPI document
(openapi.py) and the operations API (ops.py). The names routes need are re-exported here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI

from .deps import (
    ACTING_MEMBER_HEADER,
    Caller,
    Principal,
    Runtime,
    UoW,
    get_principal,
    get_runtime,
    get_uow,
    protected_router,
    require_token,
)
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
from .settings import LoggingSettings

if TYPE_CHECKING:
    from .runtime import ServiceRuntime

__all__ = [
    "ACTING_MEMBER_HEADER",
    "Caller",
    "Principal",
    "get_principal",
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
    "use_runtime",
]

log = logging.getLogger(__name__)


def service_app(
    *,
    runtime_factory: Callable[[], ServiceRuntime],
    title: str,
    description: str,
    routers: Iterable[APIRouter],
    domain_error: type[Exception],
    version: str = "1.0.0",
    capability_routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """Build a service's FastAPI app with every route in place (so `app.openapi()` is complete without starting it).
    `runtime_factory()` is called in the lifespan (never at import) and returns the ServiceRuntime that the routes
    reach through the `Runtime` dependency; `use_runtime` puts a prepared one in its place.

    `capability_routers`: routes whose URL carries its own secret and that clients without the API token call (see
    EdgePolicy.capability_paths): they need no bearer token; each route's path up to its first parameter becomes a
    capability prefix, and no other route may start with it."""
    from fastapi_offline import FastAPIOffline

    from .logs import configure

    capability = list(capability_routers)
    prefixes = tuple(sorted({_static_prefix(route.path) for r in capability for route in r.routes}))  # type: ignore[attr-defined]
    policy = EdgePolicy(capability_paths=prefixes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime: ServiceRuntime = app.state.runtime_factory()
        configure(runtime.service, runtime.settings.log_level)
        app.state.runtime = runtime
        settings = runtime.settings
        policy.set(
            per_minute=settings.rate_limit_per_minute,
            max_body=settings.max_body_bytes,
            token=settings.api_token,
            gateway_key=settings.gateway_token_key,
            audience=runtime.service,
        )
        await runtime.start()
        log.info("%s started", runtime.service)
        try:
            yield
        finally:
            await runtime.stop()

    # JSON lines from the first line uvicorn writes (the lifespan applies the service's own settings again)
    configure(runtime_factory.__module__.split(".")[0], LoggingSettings().log_level)
    # Swagger UI from the installed fastapi-offline package: /docs works without reaching a CDN
    app = FastAPIOffline(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        static_url="/docs/static",
        redoc_url=None,
    )
    protected = list(routers)
    for router in protected:
        for route in router.routes:
            path = getattr(route, "path", "")
            if prefixes and path.startswith(prefixes):
                raise ValueError(f"{path} starts with a capability prefix {prefixes} but needs the bearer token")
        app.include_router(router)
    for router in capability:
        app.include_router(router)
    app.include_router(operations_router())
    install_problem_handlers(app, domain_error)
    app.add_middleware(EdgeMiddleware, policy=policy)
    app.state.runtime_factory = runtime_factory
    app.state.edge = policy
    app.openapi = lambda: truthful_openapi(app)  # type: ignore[method-assign]
    return app


def _static_prefix(path: str) -> str:
    """ "/calendar/{token}.ics" -> "/calendar/": what a capability route's URLs all start with."""
    static = path.split("{", 1)[0]
    if len(static.strip("/")) == 0:
        raise ValueError(f"a capability route needs a fixed first segment: {path}")
    return static


def use_runtime(app: FastAPI, runtime: ServiceRuntime) -> None:
    """Run the app of `service_app` on `runtime` (prepared by a test: its settings, its database) from its next
    lifespan on, instead of on what its runtime_factory makes. The test support's `running_app` and API-contract
    harness start apps this way."""
    app.state.runtime_factory = lambda: runtime
