"""HTTP API of the notifications service: the delivery log, a member's preferences, one-click unsubscribe and the
GDPR export. Its real work is event-driven.

`POST /unsubscribe/{token}` is a capability URL (shared edge: EdgePolicy.capability_paths): the mail client's RFC 8058
one-click POST carries no API token and no member header, so the token in the URL (HMAC-signed, naming the member
and the category) is the key; the edge rate-limits it, takes at most 1 KiB of form body and keeps the token out of
the access log, as for the meetings service's calendar feeds.

`POST /members/{member_id}/sign-in-mail` is the web gateway's (as the administration): the link it carries is a
secret, kept with the delivery only until the mail is sent or has failed for good, and never logged nor answered."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, FastAPI, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from netvaerk_shared import tracing
from netvaerk_shared.http import Caller, Problem, Runtime, UoW, problems, protected_router, service_app
from netvaerk_shared.inputs import Flag, Line

from .. import views
from ..adapters.unsubscribe import UnsubscribeTokens
from ..bootstrap import bootstrap
from ..config import Settings
from ..domain import commands, model
from ..domain.errors import DomainError, TooMany
from ..service_layer.handlers import handle
from .kinds import Kind
from .webhooks_http import router as webhooks_router

Status = Literal["pending", "sent", "failed", "skipped"]
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
    organisation_id: UUID | None = None
    profile_at: datetime | None = None
    undeliverable_at: datetime | None = Field(default=None, description="When a permanent SMTP refusal marked it")
    undeliverable_reason: str | None = None


class GroupMembership(BaseModel):
    group_id: UUID
    member_id: UUID
    role: str
    joined_at: datetime | None = None
    left_at: datetime | None = Field(
        default=None, description="Set: the member left the group (kept so a late join does not bring them back)"
    )
    role_at: datetime | None = None


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


class StoredRsvp(BaseModel):
    meeting_id: UUID
    member_id: UUID
    group_id: UUID
    response: str
    status: str
    waitlist_position: int | None
    answered_at: datetime


class MemberExport(BaseModel):
    service: str
    contact: Contact | None
    groups: list[GroupMembership]
    preferences: list[StoredPreference]
    rsvps: list[StoredRsvp] = Field(description="The member's latest answer per meeting (whom reminders go to)")
    deliveries: list[Delivery]


DaysBefore = Annotated[int, Field(ge=0, le=model.REMINDER_DAYS_MAX)]


class ReminderSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reminder_days: list[DaysBefore] = Field(
        max_length=model.REMINDERS_MAX,
        json_schema_extra={"uniqueItems": True},
        description="Days before the meeting a reminder goes to those attending or tentative (none: no reminders)",
    )
    nudge_days: DaysBefore | None = Field(
        description="Days before the meeting a nudge goes to members who have not answered (null: no nudge)"
    )
    local_hour: int = Field(
        ge=model.HOUR_EARLIEST, le=model.HOUR_LATEST, description="The hour they go, in the meeting's local time"
    )

    @field_validator("reminder_days")
    @classmethod
    def _one_a_day(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("each reminder on a day of its own")
        return value


class ReminderSettings(ReminderSettingsIn):
    group_id: UUID
    default: bool = Field(description="True: the group has not chosen, these are the defaults")


MAX_LINK_LENGTH = 600
# An absolute http(s) URL with a host, of printable characters only: no control character, no space of any kind
# (Unicode's too), none of <>" (it goes into an HTML attribute). The same expression checks it and the schema says it;
# spaces around it are allowed there because the shared policy (Line) trims them first.
_SPACES = r"\u0020\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\ufeff"  # what inputs.Line trims
_NOT_IN_LINK = r'\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff<>"'
LINK_PATTERN = f"^[{_SPACES}]*https?://[^/?#{_NOT_IN_LINK}][^{_NOT_IN_LINK}]*[{_SPACES}]*$"
_LINK = re.compile(LINK_PATTERN)


def _absolute_http_link(value: str) -> str:
    if not _LINK.match(value):
        raise PydanticCustomError(
            "link", "An absolute http:// or https:// URL with a host, without spaces, quotes or angle brackets."
        )
    return value


SignInLink = Annotated[
    str,
    Line(MAX_LINK_LENGTH),  # the shared policy first: control characters named, NFC, trimmed, bounded
    AfterValidator(_absolute_http_link),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 8,
            "maxLength": MAX_LINK_LENGTH,
            "pattern": LINK_PATTERN,
            "description": "The single-use sign-in URL the mail carries (a secret: never logged nor shown again)",
            "examples": ["https://netvaerk.example.org/login/eksempel-token"],
        }
    ),
]


class SignInMailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    link_id: UUID = Field(description="The gateway's id of the link: one mail per link, however often asked")
    link: SignInLink


class Queued(BaseModel):
    status: Literal["queued"] = Field(description="The mail is owed: the delivery worker sends it at once")


class Unsubscribed(BaseModel):
    category: str = Field(description="The category now turned off: announcements, reminders or agenda_updates")
    email: bool = Field(description="Always false: e-mails of this category no longer go")


router = protected_router()
capability_router = APIRouter()  # the one-click unsubscribe link: its token is the key


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


@capability_router.post(
    "/unsubscribe/{token}",
    tags=["preferences"],
    response_model=Unsubscribed,
    responses=problems(404),
    summary="One-click unsubscribe (RFC 8058): the List-Unsubscribe link's token turns its category off",
    description="Needs no member header: the token, HMAC-signed, names the member and the category. Idempotent. "
    "A token that is not one of ours (forged, garbled, cut short) or names a member this service no longer "
    "knows is 404. Needs no bearer token either: the mail client's one-click POST (a form body "
    "`List-Unsubscribe=One-Click`, or none) comes straight to this URL.",
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


def _may_set_reminders(caller: Any, role: str | None) -> None:
    if not caller.is_admin and role != "coordinator":
        raise Problem(403, "Only the administration or a coordinator of the group may do this.")


@router.get(
    "/groups/{group_id}/reminder-settings",
    tags=["reminders"],
    response_model=ReminderSettings,
    responses=problems(403),
    summary="When a group's members are reminded of its meetings (the administration, or a coordinator of it)",
)
async def get_reminder_settings(group_id: UUID, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    found = await views.reminder_settings(runtime.engine, group_id, caller.member_id)
    _may_set_reminders(caller, found.pop("caller_role"))
    return found


@router.put(
    "/groups/{group_id}/reminder-settings",
    tags=["reminders"],
    response_model=ReminderSettings,
    responses=problems(400, 403, 404),
    summary="Set when a group's members are reminded; its meetings still to come are planned anew",
    description="Reminders go `reminder_days` before a meeting to members who answered attending or tentative "
    "(one on the waiting list is told their place), a nudge `nudge_days` before it to members who have not "
    "answered, each at `local_hour` o'clock in the meeting's time zone (Europe/Copenhagen). A reminder whose time "
    "has passed when it is planned is skipped, never sent late. The administration, or a coordinator of the group "
    "(`X-Netvaerk-Member`); 404 for a group this service does not know.",
)
async def put_reminder_settings(
    group_id: UUID, body: ReminderSettingsIn, uow: UoW, runtime: Runtime, caller: Caller
) -> dict[str, Any]:
    chosen = model.ReminderSettings(tuple(body.reminder_days), body.nudge_days, body.local_hour)
    await handle(commands.SetReminderSettings(group_id, chosen, by=caller.member_id), uow)  # 400, 403, 404
    found = await views.reminder_settings(runtime.engine, group_id, None)
    found.pop("caller_role")
    return found


@router.post(
    "/members/{member_id}/sign-in-mail",
    status_code=202,
    tags=["members"],
    response_model=Queued,
    responses=problems(403, 404, 422, 429),
    summary="Send a member their single-use sign-in link (the web gateway, as the administration)",
    description="The mail goes in the member's language (the directory's), transactional: whatever their "
    "preferences, without List-Unsubscribe; to an address marked undeliverable it is not attempted (it fails, as "
    "every kind does). Once per `link_id`: asked again, nothing more is sent and the answer is the same 202. At most "
    f"{model.SIGN_IN_LIMIT} a member per {int(model.SIGN_IN_WINDOW.total_seconds() // 60)} minutes (429 with "
    "Retry-After). 404 for a member not in this service's directory. The link is kept only until the mail is sent "
    "or has failed for good: it is in no log, delivery log, export or event.",
)
async def send_sign_in_mail(
    member_id: UUID, body: SignInMailIn, uow: UoW, runtime: Runtime, caller: Caller
) -> dict[str, Any]:
    caller.require_admin()
    command = commands.SendSignInMail(member_id, body.link_id, body.link, traceparent=tracing.current_traceparent.get())
    try:
        await handle(command, uow)  # NotFound: 404
    except TooMany as exc:
        raise Problem(429, exc.detail, retry_after=exc.retry_after) from None
    worker = runtime.workers.get("deliveries")  # none in an instance that runs no deliveries
    if worker is not None:
        worker.wake()
    return {"status": "queued"}


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
        "RSVP receipts, seats from the waiting list, accepted proposals, reminders and nudges before meetings for "
        "members, from MEMBERS and MEETINGS events; members' preferences, groups' reminder settings and one-click "
        "unsubscribe. Publishes NOTIFICATIONS events "
        "(notifications.>) through an outbox, and posts them, signed, to the administration's webhook subscribers.",
        routers=[router, webhooks_router],
        capability_routers=[capability_router],
        domain_error=DomainError,
    )


app = create_app()
