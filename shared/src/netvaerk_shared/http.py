"""What every service's HTTP side has in common: problem+json errors, bearer auth, rate limits, trace context,
metrics, health, and the operator's dead-letter and outbox endpoints."""
from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import metrics, tracing

log = logging.getLogger(__name__)
access_log = logging.getLogger("netvaerk.access")
PROBLEM = "application/problem+json"


class Problem(Exception):
    """An error that becomes an RFC 9457 problem+json response."""

    def __init__(self, status: int, title: str, detail: str, *, type_: str = "about:blank", **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.type, self.extra = status, title, detail, type_, extra


def problem_response(status: int, title: str, detail: str | None = None, *, type_: str = "about:blank",
                     instance: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(exc.status, exc.title, exc.detail, type_=exc.type, instance=request.url.path,
                                **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in exc.errors()
        ]
        return problem_response(422, "Invalid request", "One or more fields are invalid.",
                                instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return problem_response(exc.status_code, _TITLES.get(exc.status_code, "Error"), str(exc.detail),
                                instance=request.url.path)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError):
        # two requests raced for the same unique value (slug, email, membership): the loser gets a clear 409
        return problem_response(409, "Conflict", "The change clashes with data that already exists "
                                "(perhaps created by a request at the same moment).", instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(500, "Internal error", "Something went wrong on our side; it has been logged.",
                                instance=request.url.path)


_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
           409: "Conflict", 422: "Invalid request", 429: "Too many requests"}


def bearer_auth(token: str):
    """A dependency that demands `Authorization: Bearer <API_TOKEN>` (compared in constant time)."""

    async def _check(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if not token or scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise Problem(401, "Unauthorized", "A valid bearer token is required.")

    return Depends(_check)


OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/asyncapi.json")


class RateLimits:
    """Token bucket settings, filled in from the settings when the app starts (0 = off)."""

    def __init__(self, per_minute: int = 600) -> None:
        self.set(per_minute)

    def set(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(10.0, per_minute / 6.0)


class EdgeMiddleware:
    """Pure ASGI: W3C trace context in and out, Prometheus request metrics, a token-bucket rate limit per client."""

    def __init__(self, app, *, limits: RateLimits | None = None) -> None:
        self.app = app
        self.limits = limits or RateLimits()
        self.buckets: dict[str, tuple[float, float]] = {}

    def _allow(self, client: str) -> tuple[bool, float]:
        now = time.monotonic()
        rate, burst = self.limits.rate, self.limits.burst
        tokens, last = self.buckets.get(client, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            return False, (1.0 - tokens) / rate
        self.buckets[client] = (tokens - 1.0, now)
        if len(self.buckets) > 10_000:  # forget idle clients
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 120}
        return True, 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"traceparent", b"").decode("latin-1")
        traceparent = tracing.child_of(incoming)
        token = tracing.current_traceparent.set(traceparent)
        start = time.perf_counter()
        status_holder = {"status": 500}

        async def _send(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"traceparent", traceparent.encode())]
            await send(message)

        try:
            if self.limits.rate > 0 and not path.startswith(OPEN_PATHS):
                client = (scope.get("client") or ("?", 0))[0]
                ok, retry = self._allow(client)
                if not ok:
                    response = problem_response(429, "Too many requests", "Slow down and try again shortly.",
                                                instance=path, retry_after=max(1, int(retry + 0.999)))
                    return await response(scope, receive, _send)
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            route_path = getattr(route, "path", None) or ("unmatched" if status_holder["status"] == 404 else path)
            metrics.http_requests.labels(scope.get("method", ""), route_path, str(status_holder["status"])).inc()
            elapsed = time.perf_counter() - start
            metrics.http_duration.labels(scope.get("method", ""), route_path).observe(elapsed)
            if not path.startswith(OPEN_PATHS):
                access_log.info("%s %s %s", scope.get("method"), path, status_holder["status"],
                                extra={"status": status_holder["status"], "duration_ms": round(elapsed * 1000, 2)})
            tracing.current_traceparent.reset(token)


def operations_router(runtime) -> APIRouter:
    """/healthz, /readyz, /metrics, and the token-protected /admin endpoints for dead letters and the outbox."""
    router = APIRouter()
    auth = bearer_auth(runtime.settings.api_token)

    @router.get("/healthz", tags=["operations"], summary="Alive")
    async def healthz():
        return {"status": "ok", "service": runtime.service}

    @router.get("/readyz", tags=["operations"], summary="Database and NATS reachable")
    async def readyz():
        checks = await runtime.readiness()
        ok = all(checks.values())
        body = {"status": "ready" if ok else "not ready", "checks": checks}
        if ok:
            return body
        return problem_response(503, "Not ready", ", ".join(k for k, v in checks.items() if not v) + " unreachable",
                                checks=checks)

    @router.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def prometheus():
        await runtime.refresh_gauges()
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @router.get("/asyncapi.json", tags=["operations"], summary="AsyncAPI 3.0 document of this service's events")
    async def asyncapi():
        from .asyncapi import specification

        server = runtime.settings.nats_url.split("@")[-1]  # never the credentials
        return specification(runtime.service, [c.contract for c in runtime.consumers.values()], server=server)

    @router.get("/admin/dead-letters", tags=["operations"], dependencies=[auth],
                summary="Events this service could not process")
    async def dead_letters(include_replayed: bool = False, limit: int = Query(100, ge=1, le=1000)):
        from .consumer import list_dead_letters

        return await list_dead_letters(runtime.engine, runtime.tables, include_replayed=include_replayed,
                                       limit=limit)

    @router.post("/admin/dead-letters/{dead_letter_id}/replay", tags=["operations"], dependencies=[auth],
                 summary="Run a dead letter through its consumer again (idempotent)")
    async def replay(dead_letter_id: str):
        from .consumer import replay_dead_letter

        outcome, error = await replay_dead_letter(runtime.engine, runtime.tables, runtime.consumers, dead_letter_id)
        if outcome == "not_found":
            raise Problem(404, "Not found", f"No dead letter {dead_letter_id}.")
        if outcome == "already_replayed":
            raise Problem(409, "Already replayed", f"Dead letter {dead_letter_id} was replayed before.")
        if outcome == "failed":
            raise Problem(422, "Replay failed", error or "The consumer failed again.")
        return {"id": dead_letter_id, "outcome": outcome}

    @router.get("/admin/outbox", tags=["operations"], dependencies=[auth], summary="Outbox backlog")
    async def outbox_state():
        from .outbox import backlog

        count, age = await backlog(runtime.engine, runtime.tables)
        return {"unpublished": count, "oldest_age_seconds": round(age, 3)}

    return router


def service_app(*, runtime_factory, title: str, description: str, routers, domain_error: type[Exception],
                version: str = "1.0.0") -> FastAPI:
    """Build a service's FastAPI app. `runtime_factory()` is called in the lifespan (never at import) and must
    return a started-to-be ServiceRuntime; routers are functions runtime -> APIRouter."""
    from contextlib import asynccontextmanager

    from .logs import configure

    holder: dict = {}
    limits = RateLimits()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime = holder.get("runtime") or runtime_factory()
        configure(runtime.service, runtime.settings.log_level)
        app.state.runtime = runtime
        for make_router in routers:
            app.include_router(make_router(runtime))
        app.include_router(operations_router(runtime))
        limits.set(runtime.settings.rate_limit_per_minute)
        await runtime.start()
        log.info("%s started", runtime.service)
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    install_problem_handlers(app)

    @app.exception_handler(domain_error)
    async def _domain(request: Request, exc):
        return problem_response(exc.status, exc.title, exc.detail, instance=request.url.path)

    app.add_middleware(EdgeMiddleware, limits=limits)
    app.state.runtime_holder = holder
    return app

