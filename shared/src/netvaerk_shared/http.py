"""What every service's HTTP side has in common: the strict edge (rate limit, authentication before the body is read,
a body limit enforced while it streams in, JSON only), RFC 9457 problem+json errors, trace context, metrics, health,
an OpenAPI document that tells the truth, and the operator's dead-letter and outbox endpoints."""

from __future__ import annotations

import hmac
import logging
import os
import time
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import metrics, tracing
from .db import is_outage
from .outbox import EventTooLarge

log = logging.getLogger(__name__)
access_log = logging.getLogger("netvaerk.access")
PROBLEM = "application/problem+json"
DEFAULT_MAX_BODY = 1 << 20  # 1 MiB
DATABASE_RETRY_AFTER = 5  # seconds a client is asked to wait while the database is away


# ------------------------------------------------------------------------------------------------------ problem+json


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Problem(Exception):
    """An error that becomes an RFC 9457 problem+json response (`type: about:blank`: the title is the status phrase)."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers, extra


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": status_phrase(status), "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = dict(headers or {})
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers or None)


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the field in the request (`body` for the body as a whole)")
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; `errors` lists the fields at fault (400, 413, 422)."""

    model_config = ConfigDict(extra="allow", title="Problem")
    type: str = Field("about:blank", description="about:blank: the title is the HTTP status phrase")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    retry_after: int | None = Field(None, description="Seconds to wait (also in the Retry-After header)")


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # Pydantic names the branch of a union (`str`, `function-after[...]`) in the location: not a field
    parts = [p for p in parts if not (p in ("str", "int", "list", "dict", "none") or "[" in p)]
    return ".".join(parts) or "body"


def _json_position(doc: Any, pos: Any) -> str:
    if not isinstance(doc, str) or not isinstance(pos, int):
        return ""
    line = doc.count("\n", 0, pos) + 1
    column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
    return f" at line {line}, column {column}"


def _allowed_methods(request: Request) -> str:
    """The methods some route serves on this path: asked of the router itself (routes of included routers too)."""
    from starlette.routing import Match

    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install_problem_handlers(app: FastAPI, domain_error: type[Exception] | None = None) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(exc.status, exc.detail, instance=request.url.path, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        decode = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if decode is not None:
            where = _json_position(getattr(exc, "body", None), decode["loc"][-1] if decode.get("loc") else None)
            message = f"The body is not valid JSON{where}: {(decode.get('ctx') or {}).get('error', 'decode error')}."
            return problem_response(
                400, message, instance=request.url.path, errors=[{"field": "body", "message": message}]
            )
        fields = [{"field": _field(e["loc"]), "message": e["msg"]} for e in errors]
        return problem_response(422, "One or more fields are invalid.", instance=request.url.path, errors=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if exc.detail != status_phrase(exc.status_code) else None
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the methods of the first route on the path only
            headers["Allow"] = _allowed_methods(request)
        return problem_response(exc.status_code, detail, instance=request.url.path, headers=headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError):
        # two requests raced for the same unique value (slug, email, membership): the loser gets a clear 409
        return problem_response(
            409,
            "The change clashes with data that already exists (perhaps created by a request at the same moment).",
            instance=request.url.path,
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError):
        # the edge's limits should have caught it; if a value still does not fit its column, it is the client's
        log.warning("database refused a value on %s: %s", request.url.path, str(exc.orig)[:300])
        return problem_response(422, "A value does not fit what this service can store.", instance=request.url.path)

    @app.exception_handler(EventTooLarge)
    async def _too_large(request: Request, exc: EventTooLarge):
        return problem_response(
            413, str(exc), instance=request.url.path, errors=[{"field": exc.field or "body", "message": str(exc)}]
        )

    async def _database_away(request: Request, exc: Exception):
        log.warning(
            "database unavailable on %s: %s: %s",
            request.url.path,
            type(exc).__name__,
            str(exc).splitlines()[0][:300] if str(exc) else "",
        )
        return problem_response(
            503,
            "The service's database is unavailable; nothing was changed. Try again shortly.",
            instance=request.url.path,
            retry_after=DATABASE_RETRY_AFTER,
        )

    async def _database_error(request: Request, exc: Exception):
        if is_outage(exc):
            return await _database_away(request, exc)
        log.error("database error on %s", request.url.path, exc_info=exc)
        return problem_response(500, "Something went wrong on our side; it has been logged.", instance=request.url.path)

    for exc_class in (DBAPIError, ConnectionError, TimeoutError, OSError):
        app.add_exception_handler(exc_class, _database_error)

    if domain_error is not None:

        @app.exception_handler(domain_error)
        async def _domain(request: Request, exc):
            return problem_response(exc.status, exc.detail, instance=request.url.path)

    # Anything else is answered by EdgeMiddleware: one JSON log line, a 500 problem, and nothing re-raised to the
    # server (Starlette's ServerErrorMiddleware would re-raise it, and uvicorn print a second, plain-text traceback).


# ------------------------------------------------------------------------------------------------- authentication

_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="The API token (API_TOKEN) as `Authorization: Bearer <token>`."
)


def token_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> None:
    """Checked by the edge middleware already, before the body is read; here again so that no route depends on the
    middleware being in place, and so that the OpenAPI document declares the security scheme."""
    if not token_matches(request.headers.get("authorization", ""), request.app.state.edge.token):
        raise Problem(401, "A valid bearer token is required.", headers={"WWW-Authenticate": "Bearer"})


def protected_router(**kwargs: Any) -> APIRouter:
    """A router whose every operation needs the bearer token."""
    return APIRouter(dependencies=[Depends(require_token)], **kwargs)


async def get_runtime(request: Request):  # async: a sync dependency would cost a thread hop per request
    return request.app.state.runtime


Runtime = Annotated[Any, Depends(get_runtime)]


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the errors an operation can return besides the common ones (the document adds those)."""
    return {status: {"description": status_phrase(status)} for status in statuses}


# --------------------------------------------------------------------------------------------------------- the edge

OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/asyncapi.json")
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class EdgePolicy:
    """The edge's settings, filled in from the service's settings when the app starts."""

    def __init__(self, per_minute: int = 600, max_body: int = DEFAULT_MAX_BODY, token: str = "") -> None:
        self.set(per_minute=per_minute, max_body=max_body, token=token)

    def set(self, *, per_minute: int, max_body: int, token: str) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(10.0, per_minute / 6.0)
        self.max_body = max_body
        self.token = token


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class _BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    """Pure ASGI, in this order: trace context and metrics; for every path but the open ones a token-bucket rate limit
    per client (429), the bearer token (401, before a byte of the body is read), then the body: JSON only (415) and at
    most `max_body` bytes, counted while it streams in (413, without reading the rest)."""

    def __init__(self, app, *, policy: EdgePolicy | None = None) -> None:
        self.app = app
        self.policy = policy or EdgePolicy()
        self.buckets: dict[str, tuple[float, float]] = {}

    def _allow(self, client: str) -> tuple[bool, float]:
        now = time.monotonic()
        rate, burst = self.policy.rate, self.policy.burst
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
                status_holder["started"] = True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"traceparent", traceparent.encode())]
            await send(message)

        try:
            refusal, receive = await self._check(scope, path, headers, receive)
            if refusal is not None:
                return await refusal(scope, receive, _send)
            try:
                await self.app(scope, receive, _send)
            except Exception:
                log.exception("unhandled error on %s %s", scope.get("method"), path)
                if status_holder.get("started"):
                    return  # too late for a problem response; the server closes the connection
                response = problem_response(500, "Something went wrong on our side; it has been logged.", instance=path)
                await response(scope, receive, _send)
        finally:
            route = scope.get("route")
            route_path = getattr(route, "path", None) or ("unmatched" if status_holder["status"] == 404 else path)
            metrics.http_requests.labels(scope.get("method", ""), route_path, str(status_holder["status"])).inc()
            elapsed = time.perf_counter() - start
            metrics.http_duration.labels(scope.get("method", ""), route_path).observe(elapsed)
            if not path.startswith(OPEN_PATHS):
                access_log.info(
                    "%s %s %s",
                    scope.get("method"),
                    path,
                    status_holder["status"],
                    extra={"status": status_holder["status"], "duration_ms": round(elapsed * 1000, 2)},
                )
            tracing.current_traceparent.reset(token)

    async def _check(self, scope, path: str, headers: dict, receive):
        """(a refusal response or None, the receive callable the app should use)."""
        if path.startswith(OPEN_PATHS):
            return None, receive
        policy = self.policy
        if policy.rate > 0:
            ok, retry = self._allow((scope.get("client") or ("?", 0))[0])
            if not ok:
                return problem_response(
                    429, "Slow down and try again shortly.", instance=path, retry_after=max(1, int(retry + 0.999))
                ), receive
        if not token_matches(headers.get(b"authorization", b"").decode("latin-1"), policy.token):
            return problem_response(
                401, "A valid bearer token is required.", instance=path, headers={"WWW-Authenticate": "Bearer"}
            ), receive
        if scope.get("method") not in _BODY_METHODS:
            return None, receive
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return problem_response(400, "Content-Length is not a number.", instance=path), receive
            if int(length) > policy.max_body:
                return self._too_large(path), receive
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if (chunked or (length is not None and int(length) > 0)) and not _is_json(
            headers.get(b"content-type", b"").decode("latin-1")
        ):
            return problem_response(
                415, "The body must be JSON (Content-Type: application/json).", instance=path
            ), receive
        try:
            body = await self._read(receive, policy.max_body)
        except _BodyTooLarge:
            return self._too_large(path), receive
        if body and not _is_json(headers.get(b"content-type", b"").decode("latin-1")):
            return problem_response(
                415, "The body must be JSON (Content-Type: application/json).", instance=path
            ), receive
        return None, _replay(body, receive)

    def _too_large(self, path: str):
        limit = self.policy.max_body
        message = f"The body may be at most {limit} bytes."
        return problem_response(413, message, instance=path, errors=[{"field": "body", "message": message}])

    @staticmethod
    async def _read(receive, limit: int) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def _receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return _receive


# ------------------------------------------------------------------------------------------------------- the document

_COMMON_PROTECTED = (401, 429, 503)
_COMMON_BODY = (400, 413, 415, 422)


def truthful_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, completed with what the edge does to every operation: the problem+json schema for every
    error, the errors the middleware itself answers (401, 429, 400/413/415 for bodies), and no FastAPI default
    `HTTPValidationError` (every 422 is problem+json)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in problem.pop("$defs", {}).items():
        schemas[name] = sub
    schemas["Problem"] = problem
    ref = {"$ref": "#/components/schemas/Problem"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            extra: list[int] = []
            if operation.get("security"):
                extra += _COMMON_PROTECTED
            if "requestBody" in operation:
                extra += _COMMON_BODY
            if operation.get("parameters"):
                extra.append(422)
            for status in extra:
                responses.setdefault(str(status), {"description": status_phrase(status)})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {PROBLEM: {"schema": ref}}
                    if status in ("429", "503"):
                        response["headers"] = {
                            "Retry-After": {
                                "description": "Seconds to wait before trying again",
                                "schema": {"type": "integer"},
                            }
                        }
                    if status == "401":
                        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = schema
    return schema


# -------------------------------------------------------------------------------------------------- operations API


class Health(BaseModel):
    status: str
    service: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, bool]


class DeadLetter(BaseModel):
    id: str
    consumer: str
    stream: str
    stream_seq: int | None
    subject: str
    event_id: str | None
    type: str | None
    body: Any = Field(description="The message as received (JSON where it parsed, else text)")
    headers: dict[str, Any] | None
    reason: str
    deliveries: int
    created_at: datetime
    replayed_at: datetime | None
    replay_error: str | None


class ReplayOutcome(BaseModel):
    id: str
    outcome: str


class ReplayedDeadLetter(BaseModel):
    id: str
    event_id: str | None
    stream_seq: int | None
    outcome: str = Field(description="`processed`, or `duplicate` when the event had been done already")


class ReplayStop(BaseModel):
    id: str
    event_id: str | None
    stream_seq: int | None
    error: str = Field(description="Why it failed again (exception class and message)")


class ReplayBatch(BaseModel):
    replayed: list[ReplayedDeadLetter] = Field(description="Replayed, in the order they were done (stream order)")
    failed: ReplayStop | None = Field(description="The dead letter that failed again; nothing after it was tried")
    remaining: int = Field(description="Dead letters still open (of the consumer asked for, if any)")


class ParkedEvent(BaseModel):
    """An outbox row the relay gave up on: it can never be published as it is. The body is left out (personal data)."""

    position: int = Field(description="Place in the outbox: the relay publishes in this order")
    event_id: str
    type: str
    subject: str
    attempts: int = Field(description="Failed attempts to publish it")
    last_error: str | None = Field(description="Why it was parked (and any earlier failure)")
    created_at: datetime
    parked_at: datetime


class OutboxState(BaseModel):
    unpublished: int = Field(description="Rows waiting for the relay (parked rows not included)")
    oldest_age_seconds: float = Field(description="Age of the oldest row waiting for the relay; 0 when none")
    parked: int = Field(description="Rows parked because they can never be published as they are")
    parked_events: list[ParkedEvent] = Field(description="The parked rows, oldest first (at most `limit`)")


class RetryOutcome(BaseModel):
    event_id: str
    outcome: str = Field(description="`retried`: no longer parked; the relay publishes it next")


def operations_router() -> APIRouter:
    """/healthz, /readyz, /metrics, /asyncapi.json, and the token-protected /admin endpoints."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Alive", response_model=Health)
    async def healthz(runtime: Runtime):
        return {"status": "ok", "service": runtime.service}

    @router.get(
        "/readyz",
        response_model=Readiness,
        summary='Can this instance serve its API? 200 while its database answers ("degraded: nats" while '
        "NATS is away: the outbox holds every change); 503 while the database is away",
        responses={
            503: {
                "description": "Not ready",
                "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        },
    )
    async def readyz(runtime: Runtime):
        checks = await runtime.readiness()
        if not checks.get("database"):
            return problem_response(503, "database unreachable", checks=checks, retry_after=DATABASE_RETRY_AFTER)
        degraded = [name for name, ok in checks.items() if not ok]
        return {"status": "degraded: " + ", ".join(degraded) if degraded else "ready", "checks": checks}

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus(runtime: Runtime):
        await runtime.refresh_gauges()
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/asyncapi.json", summary="AsyncAPI 3.0 document of this service's events", response_model=dict[str, Any]
    )
    async def asyncapi(runtime: Runtime):
        from .asyncapi import specification

        server = runtime.settings.nats_url.split("@")[-1]  # never the credentials
        return specification(runtime.service, [c.contract for c in runtime.consumers.values()], server=server)

    admin = protected_router(tags=["operations"])

    @admin.get("/admin/dead-letters", summary="Events this service could not process", response_model=list[DeadLetter])
    async def dead_letters(runtime: Runtime, include_replayed: bool = False, limit: int = Query(100, ge=1, le=1000)):
        from .consumer import list_dead_letters

        return await list_dead_letters(runtime.engine, runtime.tables, include_replayed=include_replayed, limit=limit)

    @admin.post(
        "/admin/dead-letters/{dead_letter_id}/replay",
        response_model=ReplayOutcome,
        summary="Run a dead letter through its consumer again (idempotent)",
        responses=problems(404, 409, 422),
    )
    async def replay(
        runtime: Runtime, dead_letter_id: Annotated[str, Path(max_length=64, pattern=r"^[0-9a-fA-F-]{1,64}$")]
    ):
        from .consumer import replay_dead_letter

        outcome, error = await replay_dead_letter(runtime.engine, runtime.tables, runtime.consumers, dead_letter_id)
        if outcome == "not_found":
            raise Problem(404, f"No dead letter {dead_letter_id}.")
        if outcome == "already_replayed":
            raise Problem(409, f"Dead letter {dead_letter_id} was replayed before.")
        if outcome == "failed":
            raise Problem(422, error or "The consumer failed again.")
        return {"id": dead_letter_id, "outcome": outcome}

    @admin.post(
        "/admin/dead-letters/replay",
        response_model=ReplayBatch,
        summary="Replay the open dead letters (of one consumer) in their original stream order, stopping at "
        "the first that fails again",
        responses=problems(404),
    )
    async def replay_many(
        runtime: Runtime,
        consumer: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z0-9-]{1,100}$")] = None,
        limit: int = Query(1000, ge=1, le=10000),
    ):
        from .consumer import UnknownConsumer, replay_dead_letters

        try:
            return await replay_dead_letters(
                runtime.engine, runtime.tables, runtime.consumers, consumer=consumer, limit=limit
            )
        except UnknownConsumer:
            raise Problem(404, f"No consumer {consumer} in this service.") from None

    @admin.get("/admin/outbox", summary="Outbox backlog and parked events", response_model=OutboxState)
    async def outbox_state(runtime: Runtime, limit: int = Query(100, ge=1, le=1000)):
        from .outbox import backlog, parked

        count, age = await backlog(runtime.engine, runtime.tables)
        parked_count, parked_rows = await parked(runtime.engine, runtime.tables, limit=limit)
        return {
            "unpublished": count,
            "oldest_age_seconds": round(age, 3),
            "parked": parked_count,
            "parked_events": parked_rows,
        }

    @admin.post(
        "/admin/outbox/{event_id}/retry",
        response_model=RetryOutcome,
        summary="Put a parked event back for the relay, once its cause is fixed (e.g. max_payload raised)",
        responses=problems(404, 409),
    )
    async def retry_outbox_event(
        runtime: Runtime, event_id: Annotated[str, Path(max_length=64, pattern=r"^[0-9A-Za-z._:-]{1,64}$")]
    ):
        from .outbox import notify_channel, retry_parked

        outcome = await retry_parked(runtime.engine, runtime.tables, event_id, notify=notify_channel(runtime.service))
        if outcome == "not_found":
            raise Problem(404, f"No event {event_id} in the outbox.")
        if outcome == "not_parked":
            raise Problem(409, f"Event {event_id} is not parked (it is published or waiting for the relay).")
        runtime.wake_relay()
        return {"event_id": event_id, "outcome": outcome}

    router.include_router(admin)
    return router


# ------------------------------------------------------------------------------------------------------ the service


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
