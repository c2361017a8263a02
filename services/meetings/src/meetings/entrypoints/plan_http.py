"""HTTP API of the meeting's life, its agenda and the year's plan: move or change a meeting, cancel it with a reason,
give it a new agenda, write its minutes; plan a series in one step, list it, cancel it, export it as one CSV file.
Who may change: a coordinator of the group (`X-Netvaerk-Member`) or the administration (no such header); reading is
open to every caller with the token, as the other meeting routes are. Routes only translate to commands and queries."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from netvaerk_shared.http import Caller, Problem, Runtime, UoW, problems, protected_router
from netvaerk_shared.inputs import Integer, Line, Moment, Multiline

from .. import plan_views, views
from ..domain import commands
from ..domain.model import DEFAULT_TIMEZONE, KEEP, MAX_AGENDA_ITEMS, MAX_MEETING_MINUTES, MAX_REASON, Venue
from ..domain.series import MAX_OCCURRENCES, WEEKDAYS, Recurrence
from ..service_layer.handlers import handle
from .http import AgendaItemIn, MeetingOut, TimeZone, Url, VenueIn

WallClock = Annotated[
    str,
    Field(
        min_length=5,
        max_length=5,
        pattern=r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Local wall-clock time HH:MM in the series' zone",
        examples=["13:00"],
    ),
]


def _json_date(value: Any) -> Any:
    if not isinstance(value, str):  # Pydantic would read a number as Unix seconds; JSON Schema's date is a string
        raise PydanticCustomError("date_type", "Input should be an ISO 8601 date string (YYYY-MM-DD)")
    return value


Day = Annotated[date, BeforeValidator(_json_date)]
Reason = Annotated[str, Line(MAX_REASON, examples=["Oplægsholderen er blevet syg; vi finder en ny dato."])]

CHANGE_REFUSED = {
    "description": "A field is invalid, or a rule the schema cannot state is broken: a meeting starts in the future "
    "and ends after it starts, its agenda fits in between, its RSVP deadline is in the future and not after the start"
}
STATE_REFUSED = {"description": "The meeting was cancelled or has already begun, or it changed at the same time"}


class MeetingChangeIn(BaseModel):
    """Only the fields given change. `venue`, `online_url`, `capacity` and `rsvp_deadline` given as null are taken
    away; `title`, `starts_at` and `ends_at` as null stay as they are."""

    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, Line(200, examples=["Forårsmøde (flyttet)"])] | None = None
    starts_at: Moment | None = Field(default=None, description="ISO 8601 with a UTC offset, in the future")
    ends_at: Moment | None = Field(default=None, description="ISO 8601 with a UTC offset, after starts_at")
    venue: VenueIn | None = None
    online_url: Url | None = None
    capacity: Annotated[int, Integer(ge=1, le=10_000)] | None = None
    rsvp_deadline: Moment | None = None


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class AgendaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agenda: list[AgendaItemIn] = Field(
        max_length=MAX_AGENDA_ITEMS, description="The whole agenda, in order; the minutes together must fit"
    )


class MinutesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minutes: Annotated[str, Multiline(MAX_MEETING_MINUTES, description="The minutes (referat); not blank")]


class SeriesIn(BaseModel):
    """e.g. four a year: months [3, 6, 9, 12], weekday tuesday, week 2, 13:00-16:00, count 4."""

    model_config = ConfigDict(extra="forbid")
    group_id: UUID
    title: Annotated[str, Line(200, examples=["Netværksmøde"])]
    months: list[Annotated[int, Integer(ge=1, le=12)]] = Field(min_length=1, max_length=12, examples=[[3, 6, 9, 12]])
    weekday: Literal[WEEKDAYS]  # type: ignore[valid-type]
    week: Literal[1, 2, 3, 4, 5, -1] = Field(description="The first to fifth such weekday of the month, -1 the last")
    starts: WallClock
    ends: WallClock
    first_day: Day = Field(description="The first meeting is on or after this day (YYYY-MM-DD)")
    count: Annotated[int, Integer(ge=1, le=MAX_OCCURRENCES)]
    timezone: TimeZone = Field(default=DEFAULT_TIMEZONE, description="IANA zone the meetings are held in")
    venue: VenueIn | None = None
    online_url: Url | None = None
    capacity: Annotated[int, Integer(ge=1, le=10_000)] | None = None
    agenda: list[AgendaItemIn] = Field(default_factory=list, max_length=MAX_AGENDA_ITEMS)
    rsvp_days_before: Annotated[int, Integer(ge=0, le=90)] | None = Field(
        default=None, description="Each meeting's RSVP deadline this many days before it starts"
    )


class RuleOut(BaseModel):
    months: list[int]
    weekday: str
    week: int
    starts: str
    ends: str


class SeriesSummary(BaseModel):
    series_id: UUID
    group_id: UUID
    title: str
    timezone: str
    rule: RuleOut
    first_day: date
    count: int
    planned_at: datetime


class SeriesOut(SeriesSummary):
    meetings: list[MeetingOut]


router = protected_router()


@router.patch(
    "/meetings/{meeting_id}",
    tags=["meetings"],
    summary="Move a meeting, or change its title, place, link, seats or RSVP deadline (MeetingRescheduled)",
    response_model=MeetingOut,
    responses={**problems(403, 404), 409: STATE_REFUSED, 422: CHANGE_REFUSED},
)
async def change_meeting(
    meeting_id: UUID, body: MeetingChangeIn, uow: UoW, runtime: Runtime, caller: Caller
) -> dict[str, Any] | None:
    given = body.model_fields_set
    await handle(
        commands.RescheduleMeeting(
            meeting_id=meeting_id,
            by=caller.member_id,
            title=body.title,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            venue=(Venue(**body.venue.model_dump()) if body.venue else None) if "venue" in given else KEEP,
            online_url=body.online_url if "online_url" in given else KEEP,
            capacity=body.capacity if "capacity" in given else KEEP,
            rsvp_deadline=body.rsvp_deadline if "rsvp_deadline" in given else KEEP,
        ),
        uow,
    )
    return await views.get_meeting(runtime.engine, meeting_id)


@router.post(
    "/meetings/{meeting_id}/cancel",
    tags=["meetings"],
    summary="Cancel a meeting, saying why (MeetingCancelled)",
    response_model=MeetingOut,
    responses={**problems(403, 404, 422), 409: STATE_REFUSED},
)
async def cancel_meeting(
    meeting_id: UUID, body: CancelIn, uow: UoW, runtime: Runtime, caller: Caller
) -> dict[str, Any] | None:
    await handle(commands.CancelMeeting(meeting_id=meeting_id, reason=body.reason, by=caller.member_id), uow)
    return await views.get_meeting(runtime.engine, meeting_id)


@router.put(
    "/meetings/{meeting_id}/agenda",
    tags=["meetings"],
    summary="Give a meeting its whole agenda anew (AgendaUpdated)",
    response_model=MeetingOut,
    responses={
        **problems(403, 404),
        409: STATE_REFUSED,
        422: {"description": "A field is invalid, or the agenda's minutes do not fit in the meeting"},
    },
)
async def replace_agenda(
    meeting_id: UUID, body: AgendaIn, uow: UoW, runtime: Runtime, caller: Caller
) -> dict[str, Any] | None:
    agenda = tuple(i.to_item() for i in body.agenda)
    await handle(commands.ReplaceAgenda(meeting_id=meeting_id, agenda=agenda, by=caller.member_id), uow)
    return await views.get_meeting(runtime.engine, meeting_id)


@router.put(
    "/meetings/{meeting_id}/minutes",
    tags=["meetings"],
    summary="Write a meeting's minutes once it has begun; it counts as held from then on (AgendaUpdated)",
    response_model=MeetingOut,
    responses={
        **problems(403, 404),
        409: {"description": "The meeting was cancelled, has not begun yet, or changed at the same time"},
        422: {"description": "A field is invalid, or the minutes are blank"},
    },
)
async def record_minutes(
    meeting_id: UUID, body: MinutesIn, uow: UoW, runtime: Runtime, caller: Caller
) -> dict[str, Any] | None:
    await handle(commands.RecordMinutes(meeting_id=meeting_id, minutes=body.minutes, by=caller.member_id), uow)
    return await views.get_meeting(runtime.engine, meeting_id)


@router.post(
    "/series",
    status_code=201,
    tags=["series"],
    summary="Plan a group's series of meetings in one step (one MeetingScheduled each)",
    response_model=SeriesOut,
    responses={
        **problems(403, 404),
        409: {"description": "The group is archived: it takes no new meetings"},
        422: {
            "description": "A field is invalid, or an occurrence breaks a meeting's rules (in the past, the agenda "
            "does not fit, a wall-clock time skipped by daylight saving): the message names the occurrence"
        },
    },
)
async def plan_series(body: SeriesIn, uow: UoW, runtime: Runtime, caller: Caller) -> dict[str, Any] | None:
    series = await handle(
        commands.PlanSeries(
            group_id=body.group_id,
            title=body.title,
            rule=Recurrence(
                months=tuple(body.months),
                weekday=body.weekday,
                week=body.week,
                starts=time.fromisoformat(body.starts),
                ends=time.fromisoformat(body.ends),
            ),
            first_day=body.first_day,
            count=body.count,
            timezone=body.timezone,
            venue=Venue(**body.venue.model_dump()) if body.venue else None,
            online_url=body.online_url,
            capacity=body.capacity,
            agenda=tuple(i.to_item() for i in body.agenda),
            rsvp_days_before=body.rsvp_days_before,
            by=caller.member_id,
        ),
        uow,
    )
    return await plan_views.get_series(runtime.engine, series.id)


@router.get(
    "/series/{series_id}",
    tags=["series"],
    summary="A series with its meetings as they are now (moved, cancelled, held)",
    response_model=SeriesOut,
    responses=problems(404),
)
async def get_series(series_id: UUID, runtime: Runtime) -> dict[str, Any]:
    series = await plan_views.get_series(runtime.engine, series_id)
    if series is None:
        raise Problem(404, f"No series {series_id}.")
    return series


@router.get(
    "/groups/{group_id}/series",
    tags=["series"],
    summary="A group's series (its years' plans)",
    response_model=list[SeriesSummary],
    responses=problems(404),
)
async def group_series(group_id: UUID, runtime: Runtime) -> list[dict[str, Any]]:
    series = await plan_views.group_series(runtime.engine, group_id)
    if series is None:
        raise Problem(404, f"The group {group_id} is unknown to the meetings service.")
    return series


@router.post(
    "/series/{series_id}/cancel",
    tags=["series"],
    summary="Cancel every meeting of a series still to come, saying why (one MeetingCancelled each)",
    response_model=SeriesOut,
    responses={**problems(403, 404, 422), 409: {"description": "A meeting of the series changed at the same time"}},
)
async def cancel_series(
    series_id: UUID, body: CancelIn, uow: UoW, runtime: Runtime, caller: Caller
) -> dict[str, Any] | None:
    await handle(commands.CancelSeries(series_id=series_id, reason=body.reason, by=caller.member_id), uow)
    return await plan_views.get_series(runtime.engine, series_id)


@router.get(
    "/series/{series_id}/export.csv",
    tags=["series"],
    summary="A series as one CSV file (Danish headings, local times), for a spreadsheet or the group's website",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "One meeting a row"},
        **problems(404),
    },
)
async def export_series(series_id: UUID, runtime: Runtime) -> Response:
    series = await plan_views.get_series(runtime.engine, series_id)
    if series is None:
        raise Problem(404, f"No series {series_id}.")
    return Response(
        plan_views.series_csv(series),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="serie-{series_id}.csv"'},
    )
