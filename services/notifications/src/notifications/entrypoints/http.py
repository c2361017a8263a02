"""HTTP API of the notifications service: the delivery log and GDPR export. Its real work is event-driven."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field

from netvaerk_shared.http import Problem, Runtime, UoW, problems, protected_router, service_app

from .. import views
from ..bootstrap import bootstrap
from ..domain import commands
from ..domain.errors import DomainError
from ..service_layer.handlers import handle

Status = Literal["pending", "sent", "failed"]
Kind = Literal["welcome", "invitation"]


class Delivery(BaseModel):
    notification_id: UUID
    member_id: UUID
    kind: str
    channel: str
    cause_event_id: UUID
    status: str
    attempts: int
    subject: str | None
    message_id: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime


class Contact(BaseModel):
    member_id: UUID
    name: str
    email: str
    locale: str
    updated_at: datetime


class GroupMembership(BaseModel):
    group_id: UUID
    member_id: UUID
    role: str


class MemberExport(BaseModel):
    service: str
    contact: Contact | None
    groups: list[GroupMembership]
    deliveries: list[Delivery]


router = protected_router()


@router.get(
    "/deliveries", tags=["deliveries"], summary="The delivery log (newest first)", response_model=list[Delivery]
)
async def delivery_log(
    runtime: Runtime,
    member_id: UUID | None = None,
    status: Status | None = None,
    kind: Kind | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[dict[str, Any]]:
    return await views.deliveries(
        runtime.engine, member_id=member_id, status=status, kind=kind, limit=limit, offset=offset
    )


@router.get(
    "/members/{member_id}/export",
    tags=["members"],
    response_model=MemberExport,
    responses=problems(404),
    summary="GDPR: everything this service stores about a member (404 when it stores nothing)",
)
async def export(member_id: UUID, runtime: Runtime) -> dict[str, Any]:
    data = await views.member_export(runtime.engine, member_id)
    if data is None:
        raise Problem(404, f"This service holds nothing about member {member_id}.")
    return data


class DeliveryRetryOutcome(BaseModel):
    notification_id: UUID
    outcome: str = Field(description="`retried`: pending again with fresh attempts; the worker sends it next")


@router.post(
    "/admin/deliveries/{notification_id}/retry",
    tags=["operations"],
    response_model=DeliveryRetryOutcome,
    summary="Send a failed delivery again (after its cause was fixed)",
    responses=problems(404, 409),
)
async def retry_delivery(notification_id: UUID, uow: UoW, runtime: Runtime) -> dict[str, Any]:
    await handle(commands.RetryDelivery(notification_id), uow)  # NotFound: 404; NotFailed: 409
    worker = runtime.workers.get("deliveries")  # none in an instance that runs no deliveries
    if worker is not None:
        worker.wake()
    return {"notification_id": notification_id, "outcome": "retried"}


def create_app() -> FastAPI:
    return service_app(
        runtime_factory=bootstrap,
        title="Netværk notifications",
        description="Welcome emails and meeting invitations (with ICS) for members, from MEMBERS and MEETINGS "
        "events. Publishes NOTIFICATIONS events (notifications.>) through an outbox.",
        routers=[router],
        domain_error=DomainError,
    )


app = create_app()
