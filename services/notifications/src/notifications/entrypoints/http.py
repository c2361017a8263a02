"""HTTP API of the notifications service: the delivery log, a member's preferences, one-click unsubscribe and the
GDPR export. Its real work is event-driven.

`POST /unsubscribe/{token}` needs no member header (the token names the member and is signed), but it does need the
bearer token like every route, as the meetings service's calendar feeds do: the web gateway, which holds it, serves
the public List-Unsubscribe URL and answers the mail client's RFC 8058 POST by calling this route."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import FastAPI, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from netvaerk_shared.http import Caller, Problem, Runtime, UoW, problems, protected_router, service_app
from netvaerk_shared.inputs import Flag

from .. import views
from ..adapters.unsubscribe import UnsubscribeTokens
from ..bootstrap import bootstrap
from ..config import Settings
from ..domain import commands, model
from ..domain.errors import DomainError
from ..service_layer.handlers import handle

Status = Literal["pending", "sent", "failed", "skipped"]
Kind = Literal[
    "welcome",
    "invitation",
    "meeting_update",
    "cancellation",
    "agenda_update",
    "rsvp_confirmation",
    "waitlist_promotion",
    "proposal_accepted",
]
Language = Literal["da", "en"]


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


class OwnDelivery(BaseModel):
    """A delivery as the member sees it: what was (or will be) sent, and how it went; no error text."""

    notification_id: UUID
    kind: str
    channel: str
    cause_event_id: UUID
    status: str
    subject: str | None
    created_at: datetime
    sent_at: datetime | None


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


class CategoryPreference(BaseModel):
    email: bool = Field(description="Send e-mails of this category (transactional ones always go)")
    language: Language | None = Field(description="Their language; null: the member's profile's")


class Preferences(BaseModel):
    member_id: UUID
    announcements: CategoryPreference = Field(description="Invitations, meeting changes, accepted proposals")
    reminders: CategoryPreference = Field(description="Reminders before meetings")
    agenda_updates: CategoryPreference = Field(description="Agenda changes (at most one a meeting an hour)")


class CategoryPreferenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Flag
    language: Language | None = None


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    announcements: CategoryPreferenceIn
    reminders: CategoryPreferenceIn
    agenda_updates: CategoryPreferenceIn


class StoredPreference(BaseModel):
    member_id: UUID
    category: str
    email: bool
    language: str | None
    updated_at: datetime


class MemberExport(BaseModel):
    service: str
    contact: Contact | None
    groups: list[GroupMembership]
    preferences: list[StoredPreference]
    deliveries: list[Delivery]


class Unsubscribed(BaseModel):
    category: str = Field(description="The category now turned off: announcements, reminders or agenda_updates")
    email: bool = Field(description="Always false: e-mails of this category no longer go")


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
    "/members/{member_id}/deliveries",
    tags=["members"],
    response_model=list[OwnDelivery],
    responses=problems(403),
    summary="A member's own delivery log, newest first (the member, or the administration)",
)
async def own_deliveries(
    member_id: UUID,
    runtime: Runtime,
    caller: Caller,
    status: Status | None = None,
    kind: Kind | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[dict[str, Any]]:
    caller.require_self_or_admin(member_id)
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


@router.get(
    "/members/{member_id}/preferences",
    tags=["preferences"],
    response_model=Preferences,
    responses=problems(403, 404),
    summary="A member's choices per category of e-mail (the member, or the administration)",
)
async def get_preferences(member_id: UUID, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    caller.require_self_or_admin(member_id)
    found = await views.preferences(runtime.engine, member_id)
    if found is None:
        raise Problem(404, f"This service knows no member {member_id}.")
    return found


@router.put(
    "/members/{member_id}/preferences",
    tags=["preferences"],
    response_model=Preferences,
    responses=problems(403, 404),
    summary="Set a member's choices for every category (the member, or the administration)",
)
async def put_preferences(
    member_id: UUID, body: PreferencesIn, uow: UoW, runtime: Runtime, caller: Caller
) -> dict[str, Any] | None:
    caller.require_self_or_admin(member_id)
    chosen = tuple(
        model.Preference(member_id, category, email=choice.email, language=choice.language)
        for category, choice in ((c, getattr(body, c)) for c in model.CATEGORIES)
    )
    await handle(commands.SetPreferences(member_id, chosen), uow)  # NotFound: 404
    return await views.preferences(runtime.engine, member_id)


@router.post(
    "/unsubscribe/{token}",
    tags=["preferences"],
    response_model=Unsubscribed,
    responses=problems(404),
    summary="One-click unsubscribe (RFC 8058): the List-Unsubscribe link's token turns its category off",
    description="Needs no member header: the token, HMAC-signed, names the member and the category. Idempotent. "
    "A token that is not one of ours (forged, garbled, cut short) or names a member this service no longer "
    "knows is 404. Called by the web gateway, which serves the public URL, with the bearer token and no body.",
)
async def one_click_unsubscribe(
    token: Annotated[str, Path(description="The token from the List-Unsubscribe URL")], uow: UoW, runtime: Runtime
) -> dict[str, Any]:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    found = UnsubscribeTokens(settings.unsubscribe_key(), settings.public_base_url).read(token)
    if found is None:
        raise Problem(404, "No such subscription.")
    member_id, category = found
    await handle(commands.Unsubscribe(member_id, category), uow)  # NotFound: 404
    return {"category": category, "email": False}


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
        description="Welcome emails, meeting invitations, updates and cancellations (with ICS), agenda notices, "
        "RSVP receipts, seats from the waiting list and accepted proposals for members, from MEMBERS and MEETINGS "
        "events; members' preferences and one-click unsubscribe. Publishes NOTIFICATIONS events "
        "(notifications.>) through an outbox.",
        routers=[router],
        domain_error=DomainError,
    )


app = create_app()
