"""HTTP API of the meetings service: scheduling meetings, and reading its copy of the group rosters.
Routes only translate to commands and queries."""
from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from netvaerk_shared.contracts import AgendaKind
from netvaerk_shared.http import Problem, bearer_auth, service_app

from .. import views
from ..bootstrap import bootstrap
from ..domain import commands
from ..domain.errors import DomainError
from ..domain.model import DEFAULT_TIMEZONE, AgendaItem, Venue
from ..service_layer.handlers import handle


class VenueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["Eksempel Kommune, Rådhuset"])
    address: str | None = Field(default=None, max_length=500, examples=["Rådhuspladsen 1, 1550 København V"])
    host_organisation: str | None = Field(default=None, max_length=200, examples=["Eksempel Kommune"])


class AgendaItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: AgendaKind
    title: str = Field(min_length=1, max_length=200, examples=["AI i sagsbehandlingen"])
    speaker: str | None = Field(default=None, max_length=200)
    speaker_organisation: str | None = Field(default=None, max_length=200)
    minutes: int = Field(ge=0, le=600)
    tags: list[str] = Field(default_factory=list, max_length=20)


class MeetingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_id: UUID
    title: str = Field(min_length=1, max_length=200, examples=["Forårsmøde: data, AI og ansvar"])
    starts_at: AwareDatetime = Field(description="ISO 8601 with a UTC offset", examples=["2027-03-11T16:00:00+01:00"])
    ends_at: AwareDatetime = Field(description="ISO 8601 with a UTC offset", examples=["2027-03-11T18:00:00+01:00"])
    timezone: str = Field(default=DEFAULT_TIMEZONE, max_length=64, description="IANA zone the meeting is held in")
    venue: VenueIn | None = None
    online_url: str | None = Field(default=None, max_length=2000)
    capacity: int | None = Field(default=None, ge=1, le=10_000)
    agenda: list[AgendaItemIn] = Field(default_factory=list, max_length=100)


def api(runtime) -> APIRouter:
    router = APIRouter(dependencies=[bearer_auth(runtime.settings.api_token)])

    @router.post("/meetings", status_code=201, tags=["meetings"], summary="Schedule a meeting of a network group")
    async def schedule(body: MeetingIn):
        meeting = await handle(commands.ScheduleMeeting(
            group_id=body.group_id, title=body.title, starts_at=body.starts_at, ends_at=body.ends_at,
            timezone=body.timezone, venue=Venue(**body.venue.model_dump()) if body.venue else None,
            online_url=body.online_url, capacity=body.capacity,
            agenda=tuple(AgendaItem(kind=i.kind.value, title=i.title, minutes=i.minutes, speaker=i.speaker,
                                    speaker_organisation=i.speaker_organisation, tags=tuple(i.tags))
                         for i in body.agenda)),
            runtime.uow())
        return await views.get_meeting(runtime.engine, meeting.id)

    @router.get("/meetings/{meeting_id}", tags=["meetings"], summary="One meeting with its agenda")
    async def get_meeting(meeting_id: UUID):
        meeting = await views.get_meeting(runtime.engine, meeting_id)
        if meeting is None:
            raise Problem(404, "Not found", f"No meeting {meeting_id}.")
        return meeting

    @router.get("/groups/{group_id}", tags=["groups"],
                summary="This service's copy of a group and its members (404 until the group's creation arrived)")
    async def get_group(group_id: UUID):
        group = await views.get_group(runtime.engine, group_id)
        if group is None:
            raise Problem(404, "Not found", _unknown_group(group_id))
        return group

    @router.get("/groups/{group_id}/meetings", tags=["groups"], summary="A group's meetings, by start time")
    async def group_meetings(group_id: UUID):
        meetings = await views.group_meetings(runtime.engine, group_id)
        if meetings is None:
            raise Problem(404, "Not found", _unknown_group(group_id))
        return meetings

    @router.get("/members/{member_id}/export", tags=["members"],
                summary="GDPR: everything this service stores about a member")
    async def export(member_id: UUID):
        return await views.member_export(runtime.engine, member_id)

    return router


def _unknown_group(group_id: UUID) -> str:
    return (f"The group {group_id} is unknown to the meetings service: it has not (yet) received the group's "
            "creation from the members service.")


def create_app():
    return service_app(
        runtime_factory=bootstrap, title="Netværk meetings",
        description="Meetings of network groups and their agendas. Keeps a copy of the group rosters from MEMBERS "
                    "events; publishes MEETINGS events (meetings.>) through an outbox.",
        routers=[api], domain_error=DomainError)


app = create_app()
