"""The operations API of every service: health, readiness, metrics, the AsyncAPI document, and the operator's
dead-letter and outbox endpoints behind the bearer token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from . import metrics
from .deps import Runtime, protected_router
from .problems import DATABASE_RETRY_AFTER, PROBLEM, Problem, problem_response, problems


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


class OutboxRetryOutcome(BaseModel):
    event_id: str
    outcome: str = Field(description="`retried`: no longer parked; the relay publishes it next")


def operations_router() -> APIRouter:
    """/healthz, /readyz, /metrics, /asyncapi.json, and the token-protected /admin endpoints."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Alive", response_model=Health)
    async def healthz(runtime: Runtime) -> dict[str, str]:
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
    async def readyz(runtime: Runtime) -> Response | dict[str, Any]:
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
    async def prometheus(runtime: Runtime) -> Response:
        await runtime.refresh_gauges()
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/asyncapi.json", summary="AsyncAPI 3.0 document of this service's events", response_model=dict[str, Any]
    )
    async def asyncapi(runtime: Runtime) -> dict[str, Any]:
        from .asyncapi import specification

        server = runtime.settings.nats_url.split("@")[-1]  # never the credentials
        return specification(runtime.service, [c.contract for c in runtime.consumers.values()], server=server)

    admin = protected_router(tags=["operations"])

    @admin.get("/admin/dead-letters", summary="Events this service could not process", response_model=list[DeadLetter])
    async def dead_letters(
        runtime: Runtime, include_replayed: bool = False, limit: int = Query(100, ge=1, le=1000)
    ) -> list[dict[str, Any]]:
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
    ) -> dict[str, str]:
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
    ) -> dict[str, Any]:
        from .consumer import UnknownConsumer, replay_dead_letters

        try:
            return await replay_dead_letters(
                runtime.engine, runtime.tables, runtime.consumers, consumer=consumer, limit=limit
            )
        except UnknownConsumer:
            raise Problem(404, f"No consumer {consumer} in this service.") from None

    @admin.get("/admin/outbox", summary="Outbox backlog and parked events", response_model=OutboxState)
    async def outbox_state(runtime: Runtime, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
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
        response_model=OutboxRetryOutcome,
        summary="Put a parked event back for the relay, once its cause is fixed (e.g. max_payload raised)",
        responses=problems(404, 409),
    )
    async def retry_outbox_event(
        runtime: Runtime, event_id: Annotated[str, Path(max_length=64, pattern=r"^[0-9A-Za-z._:-]{1,64}$")]
    ) -> dict[str, str]:
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
