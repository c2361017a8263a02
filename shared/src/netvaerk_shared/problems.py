"""RFC 9457 problem+json: one error shape for every service, and the handlers that turn exceptions into it
(domain errors, validation, JSON syntax, 405 with Allow, database outages as 503 with Retry-After)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .db import is_outage
from .outbox import EventTooLarge

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
DATABASE_RETRY_AFTER = 5  # seconds a client is asked to wait while the database is away


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


def _field(loc: Sequence[int | str]) -> str:
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
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, instance=request.url.path, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
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
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if exc.detail != status_phrase(exc.status_code) else None
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the methods of the first route on the path only
            headers["Allow"] = _allowed_methods(request)
        return problem_response(exc.status_code, detail, instance=request.url.path, headers=headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # two requests raced for the same unique value (slug, email, membership): the loser gets a clear 409
        return problem_response(
            409,
            "The change clashes with data that already exists (perhaps created by a request at the same moment).",
            instance=request.url.path,
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # the edge's limits should have caught it; if a value still does not fit its column, it is the client's
        log.warning("database refused a value on %s: %s", request.url.path, str(exc.orig)[:300])
        return problem_response(422, "A value does not fit what this service can store.", instance=request.url.path)

    @app.exception_handler(EventTooLarge)
    async def _too_large(request: Request, exc: EventTooLarge) -> JSONResponse:
        return problem_response(
            413, str(exc), instance=request.url.path, errors=[{"field": exc.field or "body", "message": str(exc)}]
        )

    async def _database_away(request: Request, exc: Exception) -> JSONResponse:
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

    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        if is_outage(exc):
            return await _database_away(request, exc)
        log.error("database error on %s", request.url.path, exc_info=exc)
        return problem_response(500, "Something went wrong on our side; it has been logged.", instance=request.url.path)

    for exc_class in (DBAPIError, ConnectionError, TimeoutError, OSError):
        app.add_exception_handler(exc_class, _database_error)

    if domain_error is not None:

        @app.exception_handler(domain_error)
        async def _domain(request: Request, exc: Any) -> JSONResponse:  # a domain_error: .status, .detail
            return problem_response(exc.status, exc.detail, instance=request.url.path)

    # Anything else is answered by EdgeMiddleware: one JSON log line, a 500 problem, and nothing re-raised to the
    # server (Starlette's ServerErrorMiddleware would re-raise it, and uvicorn print a second, plain-text traceback).


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the errors an operation can return besides the common ones (the document adds those)."""
    return {status: {"description": status_phrase(status)} for status in statuses}
