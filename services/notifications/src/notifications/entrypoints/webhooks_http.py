"""HTTP API of the signed webhooks (the administration's only: a member's `X-Netvaerk-Member` header gets 403), and
of an address's deliverability. The secret is in the answer to a registration and to a rotation, once, and nowhere
else."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field

from netvaerk_shared.http import Caller, Problem, Runtime, UoW, problems, protected_router
from netvaerk_shared.inputs import Line

from .. import views
from ..config import Settings
from ..domain import commands
from ..domain import webhook_commands as hooks
from ..domain.webhooks import MAX_URL_LENGTH
from ..service_layer.handlers import handle
from .kinds import AnnouncedKind

DeliveryStatus = Literal["pending", "delivered", "failed"]
WebhookUrl = Annotated[
    str,
    Field(
        min_length=8,
        max_length=MAX_URL_LENGTH,
        pattern=r"^https?://[^\x00-\x20\x7f-\x9f<>\"@#]+$",
        description="https (http only to a loopback address in development and test); no user name, password or "
        "fragment; in production no private, loopback or link-local IP address",
        examples=["https://hooks.example.org/netvaerk"],
    ),
]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Line(200, examples=["Eksempel Kommunes intranet"])]
    url: WebhookUrl
    kinds: list[AnnouncedKind] | None = Field(
        default=None, max_length=20, description="The notification kinds wanted; absent or null: every kind"
    )
    organisation_id: UUID | None = Field(
        default=None, description="Only notifications of this organisation's members; absent or null: every member's"
    )


class WebhookOut(BaseModel):
    id: UUID
    name: str
    url: str
    kinds: list[str] | None
    organisation_id: UUID | None
    created_at: datetime
    rotating_until: datetime | None = Field(
        description="While set, the previous secret signs too (every delivery carries both signatures)"
    )


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="The signing secret, shown this once: keep it, it is never shown again")


class WebhookDeliveryOut(BaseModel):
    id: UUID = Field(description="Netvaerk-Webhook-Id: the same on every attempt")
    webhook_id: UUID
    event_id: str = Field(description="The CloudEvent's id")
    event_type: str
    status: str
    attempts: int
    last_status: int | None = Field(description="The subscriber's last HTTP status; null: no answer")
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None


class WebhookRetryOutcome(BaseModel):
    delivery_id: UUID
    outcome: str = Field(description="`retried`: pending again with fresh attempts; the worker posts it next")


class Deliverability(BaseModel):
    member_id: UUID
    deliverable: bool = Field(description="False: mails to the member's address are not attempted")
    undeliverable_at: datetime | None = Field(description="When a permanent SMTP refusal marked the address")
    reason: str | None = Field(description="The refusal, e.g. `smtp 550 5.1.1` (no reply text)")


router = protected_router()


def _settings(runtime: Any) -> Settings:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    return settings


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def _one(runtime: Any, webhook_id: UUID) -> dict[str, Any]:
    found = await views.webhooks(runtime.engine, webhook_id)
    if not found:
        raise Problem(404, f"No webhook {webhook_id}.")
    return found[0]


@router.post(
    "/webhooks",
    status_code=201,
    tags=["webhooks"],
    response_model=WebhookWithSecret,
    responses=problems(403, 422),
    summary="Register a webhook subscriber (the administration); the answer shows its secret, once",
    description="422 also for a URL that is well-formed but breaks a rule JSON Schema cannot state: plain http to "
    "anything but a loopback address, or outside development and test; a user name or password in it; in "
    "production an IP address that is not public (private, loopback, link-local, reserved).",
)
async def register_webhook(body: WebhookIn, uow: UoW, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    caller.require_admin()
    secret = _new_secret()
    webhook = await handle(
        hooks.RegisterWebhook(
            webhook_id=uuid.uuid4(),
            name=body.name,
            url=body.url,
            secret=secret,
            environment=_settings(runtime).environment,
            kinds=tuple(body.kinds) if body.kinds is not None else None,
            organisation_id=body.organisation_id,
        ),
        uow,
    )  # BadWebhookUrl: 422
    return {**await _one(runtime, webhook.id), "secret": secret}


@router.get(
    "/webhooks",
    tags=["webhooks"],
    response_model=list[WebhookOut],
    responses=problems(403),
    summary="The webhook subscribers (never their secrets)",
)
async def list_webhooks(runtime: Runtime, caller: Caller) -> list[dict[str, Any]]:
    caller.require_admin()
    return await views.webhooks(runtime.engine)


@router.get(
    "/webhooks/{webhook_id}",
    tags=["webhooks"],
    response_model=WebhookOut,
    responses=problems(403, 404),
    summary="One webhook subscriber (never its secret)",
)
async def get_webhook(webhook_id: UUID, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    caller.require_admin()
    return await _one(runtime, webhook_id)


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    tags=["webhooks"],
    responses=problems(403, 404),
    summary="Remove a webhook subscriber: nothing more is posted to it (what it was still owed is dropped)",
)
async def delete_webhook(webhook_id: UUID, uow: UoW, caller: Caller) -> Response:
    caller.require_admin()
    await handle(hooks.DeleteWebhook(webhook_id), uow)  # NotFound: 404
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    tags=["webhooks"],
    response_model=WebhookWithSecret,
    responses=problems(403, 404),
    summary="A new secret, shown once; the previous one signs too for the grace period (WEBHOOK_SECRET_GRACE_SECONDS)",
)
async def rotate_secret(webhook_id: UUID, uow: UoW, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    caller.require_admin()
    secret = _new_secret()
    grace = _settings(runtime).webhook_secret_grace_seconds
    await handle(hooks.RotateWebhookSecret(webhook_id, secret, grace), uow)  # NotFound: 404
    return {**await _one(runtime, webhook_id), "secret": secret}


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    tags=["webhooks"],
    response_model=list[WebhookDeliveryOut],
    responses=problems(403, 404),
    summary="What was posted (or is owed) to a subscriber, newest first; `status=failed`: the parked ones",
)
async def webhook_deliveries(
    webhook_id: UUID,
    runtime: Runtime,
    caller: Caller,
    status: DeliveryStatus | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[dict[str, Any]]:
    caller.require_admin()
    await _one(runtime, webhook_id)
    return await views.webhook_deliveries(runtime.engine, webhook_id, status=status, limit=limit, offset=offset)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    tags=["webhooks"],
    response_model=WebhookRetryOutcome,
    responses=problems(403, 404, 409),
    summary="Post a parked (failed) delivery again, with fresh attempts",
)
async def retry_webhook_delivery(
    webhook_id: UUID, delivery_id: UUID, uow: UoW, runtime: Runtime, caller: Caller
) -> dict[str, Any]:
    caller.require_admin()
    await handle(hooks.RetryWebhookDelivery(webhook_id, delivery_id), uow)  # NotFound: 404; NotFailed: 409
    worker = runtime.workers.get("webhooks")
    if worker is not None:
        worker.wake()
    return {"delivery_id": delivery_id, "outcome": "retried"}


@router.get(
    "/members/{member_id}/deliverability",
    tags=["members"],
    response_model=Deliverability,
    responses=problems(403, 404),
    summary="Whether mails to the member's address are attempted (the administration)",
)
async def get_deliverability(member_id: UUID, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    caller.require_admin()
    found = await views.deliverability(runtime.engine, member_id)
    if found is None:
        raise Problem(404, f"This service knows no member {member_id}.")
    return found


@router.delete(
    "/members/{member_id}/deliverability",
    tags=["members"],
    response_model=Deliverability,
    responses=problems(403, 404),
    summary="Clear the address's undeliverable mark: mails to it are attempted again (the administration)",
)
async def clear_deliverability(member_id: UUID, uow: UoW, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    caller.require_admin()
    await handle(commands.ClearUndeliverable(member_id), uow)  # NotFound: 404
    found = await views.deliverability(runtime.engine, member_id)
    assert found is not None
    return found
