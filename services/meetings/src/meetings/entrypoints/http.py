"""HTTP API of the meetings service: scheduling meetings, and reading its copy of the group rosters.
Routes only translate to commands and queries."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from netvaerk_shared.contracts import AgendaKind
from netvaerk_shared.http import Caller, Problem, Runtime, UoW, problems, protected_router, service_app
from netvaerk_shared.inputs import Integer, Line, Moment, OptionalLine

from .. import views
from ..bootstrap import bootstrap
from ..domain import commands
from ..domain.errors import DomainError
from ..domain.model import (
    DEFAULT_TIMEZONE,
    MAX_AGENDA_ITEMS,
    MAX_ITEM_MINUTES,
    MAX_MATERIALS,
    MAX_TAGS,
    AgendaItem,
    Venue,
)
from ..service_layer.handlers import handle
from . import (
    proposals_http,  # topic proposals and calendar feeds (issue 9: proposals + calendar)
    seats_http,  # RSVP, waiting lists, attendance (issue 9: seats)
)
from .proposals_http import BackingExport, FeedOut, ProposalExport

# Limits chosen so the largest valid meeting makes an event of about 250 kB, well below NATS's 1 MiB.
# The zones of the pinned tzdata package, not zoneinfo.available_timezones(): that one also reads the machine's
# /usr/share/zoneinfo, so the document (and what the service accepts) changed from host to host, and it offered
# "localtime", the server's own zone, as a meeting's time zone.
_ZONES = tuple(sorted(resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()))
TimeZone = Literal[_ZONES]  # type: ignore[valid-type]
Url = Annotated[
    str,
    Field(
        max_length=2000,
        pattern=r"^https?://[^\x00-\x20\x7f-\x9f<>\"]+$",
        examples=["https://meet.example.org/offentlig-digitalisering"],
    ),
]


class VenueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Line(200, examples=["Eksempel Kommune, Rådhuset"])]
    address: Annotated[str, OptionalLine(500, examples=["Rådhuspladsen 1, 1550 København V"])] | None = None
    host_organisation: Annotated[str, OptionalLine(200, examples=["Eksempel Kommune"])] | None = None


Tag = Annotated[str, Line(50, examples=["databeskyttelse"])]


class AgendaItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: AgendaKind
    title: Annotated[str, Line(200, examples=["AI i sagsbehandlingen"])]
    speaker: Annotated[str, OptionalLine(200)] | None = None
    speaker_organisation: Annotated[str, OptionalLine(200)] | None = None
    minutes: Annotated[int, Integer(ge=0, le=MAX_ITEM_MINUTES)]
    tags: list[Annotated[str, Line(50, examples=["databeskyttelse"])]] = Field(
        default_factory=list, max_length=MAX_TAGS
    )
    materials: list[Url] = Field(
        default_factory=list, max_length=MAX_MATERIALS, description="Links to slides, papers, recordings"
    )

    def to_item(self) -> AgendaItem:
        return AgendaItem(
            kind=self.kind.value,
            title=self.title,
            minutes=self.minutes,
            speaker=self.speaker,
            speaker_organisation=self.speaker_organisation,
            tags=tuple(self.tags),
            materials=tuple(self.materials),
        )


class MeetingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_id: UUID
    title: Annotated[str, Line(200, examples=["Forårsmøde: data, AI og ansvar"])]
    starts_at: Moment = Field(
        description="ISO 8601 with a UTC offset, in the future", examples=["2030-03-11T16:00:00+01:00"]
    )
    ends_at: Moment = Field(
        description="ISO 8601 with a UTC offset, after starts_at", examples=["2030-03-11T18:00:00+01:00"]
    )
    timezone: TimeZone = Field(default=DEFAULT_TIMEZONE, description="IANA zone the meeting is held in")
    venue: VenueIn | None = None
    online_url: Url | None = None
    capacity: Annotated[int, Integer(ge=1, le=10_000)] | None = None
    agenda: list[AgendaItemIn] = Field(
        default_factory=list,
        max_length=MAX_AGENDA_ITEMS,
        description="In order; the items' minutes together must fit in the meeting",
    )
    rsvp_deadline: Moment | None = Field(
        default=None,
        description="ISO 8601 with a UTC offset: answers are taken until then; in the future, not after starts_at",
        examples=["2030-03-04T12:00:00+01:00"],
    )


class VenueOut(BaseModel):
    name: str
    address: str | None
    host_organisation: str | None


class AgendaItemOut(BaseModel):
    position: int
    kind: AgendaKind
    title: str
    speaker: str | None
    speaker_organisation: str | None
    minutes: int
    tags: list[str]
    materials: list[str]


class MeetingOut(BaseModel):
    meeting_id: UUID
    group_id: UUID
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    venue: VenueOut | None
    online_url: str | None
    capacity: int | None
    agenda: list[AgendaItemOut]
    sequence: int
    scheduled_at: datetime
    status: Literal["scheduled", "cancelled", "held"]
    rsvp_deadline: datetime | None
    series_id: UUID | None
    cancel_reason: str | None
    minutes: str | None = Field(description="The minutes (referat), written once the meeting has begun")


class RosterEntry(BaseModel):
    member_id: UUID
    role: str
    joined_at: datetime


class GroupCopy(BaseModel):
    group_id: UUID
    name: str
    slug: str
    region: str
    status: Literal["open", "closed", "archived"] = Field(
        description="As group.updated last told it; an archived group takes no new meetings"
    )
    member_ids: list[UUID]
    members: list[RosterEntry]


class GroupMembershipOut(BaseModel):
    group_id: UUID
    group_name: str | None
    role: str
    joined_at: datetime
    left_at: datetime | None = None


class MemberExport(BaseModel):
    service: str
    member_id: UUID
    group_memberships: list[GroupMembershipOut]
    proposals: list[ProposalExport] = []
    backed_proposals: list[BackingExport] = []
    calendar_feeds: list[FeedOut] = []
    organisation: list[seats_http.OrganisationExport] = []  # the id of the member's organisation, if known
    rsvps: list[seats_http.RsvpExport] = []
    attendance: list[seats_http.AttendanceExport] = []


router = protected_router()


@router.post(
    "/meetings",
    status_code=201,
    tags=["meetings"],
    summary="Schedule a meeting of a network group",
    response_model=MeetingOut,
    responses={
        **problems(403, 404),
        409: {"description": "The group is archived: it takes no new meetings"},
        422: {
            "description": (
                "A field is invalid, or a rule the schema cannot state is broken: the meeting must start in the "
                "future and end after it starts, and the agenda's minutes must fit between the two"
            )
        },
    },
)
async def schedule(body: MeetingIn, uow: UoW, runtime: Runtime, caller: Caller) -> dict[str, Any] | None:
    """A coordinator of the group (`X-Netvaerk-Member`) or the administration (no such header) may schedule."""
    meeting = await handle(
        commands.ScheduleMeeting(
            group_id=body.group_id,
            title=body.title,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            timezone=body.timezone,
            venue=Venue(**body.venue.model_dump()) if body.venue else None,
            online_url=body.online_url,
            capacity=body.capacity,
            agenda=tuple(i.to_item() for i in body.agenda),
            rsvp_deadline=body.rsvp_deadline,
            by=caller.member_id,
        ),
        uow,
    )
    return await views.get_meeting(runtime.engine, meeting.id)


@router.get(
    "/meetings/{meeting_id}",
    tags=["meetings"],
    summary="One meeting with its agenda",
    response_model=MeetingOut,
    responses=problems(404),
)
async def get_meeting(meeting_id: UUID, runtime: Runtime) -> dict[str, Any]:
    meeting = await views.get_meeting(runtime.engine, meeting_id)
    if meeting is None:
        raise Problem(404, f"No meeting {meeting_id}.")
    return meeting


@router.get(
    "/groups/{group_id}",
    tags=["groups"],
    response_model=GroupCopy,
    responses=problems(404),
    summary="This service's copy of a group and its members (404 until the group's creation arrived)",
)
async def get_group(group_id: UUID, runtime: Runtime) -> dict[str, Any]:
    group = await views.get_group(runtime.engine, group_id)
    if group is None:
        raise Problem(404, _unknown_group(group_id))
    return group


@router.get(
    "/groups/{group_id}/meetings",
    tags=["groups"],
    summary="A group's meetings, by start time",
    response_model=list[MeetingOut],
    responses=problems(404),
)
async def group_meetings(group_id: UUID, runtime: Runtime) -> list[dict[str, Any]]:
    meetings = await views.group_meetings(runtime.engine, group_id)
    if meetings is None:
        raise Problem(404, _unknown_group(group_id))
    return meetings


def utc_now() -> datetime:
    return datetime.now(UTC)


class UpcomingEntry(BaseModel):
    meeting: MeetingOut
    rsvp: seats_http.RsvpOut | None = Field(description="The member's own answer; null: not answered")


@router.get(
    "/members/{member_id}/upcoming",
    tags=["members"],
    summary="A member's coming meetings in the groups they are in, soonest first, each with their own answer",
    response_model=list[UpcomingEntry],
    responses=problems(403),
)
async def upcoming(
    member_id: UUID,
    runtime: Runtime,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=50, description="At most this many meetings")] = 10,
) -> list[dict[str, Any]]:
    caller.require_self_or_admin(member_id)
    return await views.upcoming_for(runtime.engine, member_id, utc_now(), limit)


@router.get(
    "/members/{member_id}/export",
    tags=["members"],
    response_model=MemberExport,
    responses=problems(404),
    summary="GDPR: everything this service stores about a member (404 when it stores nothing)",
)
async def export(member_id: UUID, runtime: Runtime) -> dict[str, Any]:
    data = await views.member_export(runtime.engine, member_id)
    if not views.holds_something(data):
        raise Problem(404, f"This service holds nothing about member {member_id}.")
    return data


def _unknown_group(group_id: UUID) -> str:
    return (
        f"The group {group_id} is unknown to the meetings service: it has not (yet) received the group's "
        "creation from the members service."
    )


def create_app() -> FastAPI:
    from . import plan_http  # the meeting's life, its agenda, the year's plan (builds on the models above)

    return service_app(
        runtime_factory=bootstrap,
        title="Netværk meetings",
        description="Meetings of network groups and their agendas. Keeps a copy of the group rosters from MEMBERS "
        "events; publishes MEETINGS events (meetings.>) through an outbox.",
        routers=[router, plan_http.router, seats_http.router, proposals_http.router],
        domain_error=DomainError,
        capability_routers=[proposals_http.capability_router],  # the calendar feeds: the URL's token is the key
    )


app = create_app()
