"""HTTP API of the seats: answering a meeting's invitation, sending a colleague in one's place, the answers and the
waiting list, attendance and a member's history. Routes only translate to commands and queries; who may is decided
here (the caller) and in the domain (the roster)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from netvaerk_shared.contracts.meetings import RsvpResponse, RsvpStatus
from netvaerk_shared.http import Caller, Problem, Runtime, UoW, problems, protected_router
from netvaerk_shared.inputs import Flag

from .. import seat_views
from ..domain import commands
from ..service_layer.handlers import handle


class RsvpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response: RsvpResponse


class ColleagueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    colleague_id: UUID


class AttendanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attended: Flag


class RsvpOut(BaseModel):
    meeting_id: UUID
    member_id: UUID
    response: RsvpResponse
    status: RsvpStatus
    waitlist_position: int | None
    arrival: int
    on_behalf_of: UUID | None
    answered_at: datetime


class SeatsOut(BaseModel):
    meeting_id: UUID
    capacity: int | None
    confirmed: int
    waitlisted: int
    answers: list[RsvpOut]


class AttendanceOut(BaseModel):
    meeting_id: UUID
    member_id: UUID
    attended: bool
    recorded_at: datetime


class HistoryEntry(BaseModel):
    meeting_id: UUID
    group_id: UUID
    title: str
    starts_at: datetime
    ends_at: datetime
    meeting_status: str
    rsvp: RsvpOut | None
    attended: bool | None


# -- the GDPR export's part (MemberExport in http.py) -------------------------------------------------------------
class OrganisationExport(BaseModel):
    organisation_id: UUID
    updated_at: datetime


class RsvpExport(BaseModel):
    meeting_id: UUID
    response: RsvpResponse
    status: RsvpStatus
    answered_at: datetime
    on_behalf_of: UUID | None


class AttendanceExport(BaseModel):
    meeting_id: UUID
    attended: bool
    recorded_at: datetime


router = protected_router()


@router.put(
    "/meetings/{meeting_id}/rsvps/{member_id}",
    tags=["rsvp"],
    summary="A member's answer: attending, tentative or declined (a full meeting puts 'attending' on the waiting list)",
    response_model=RsvpOut,
    responses={
        **problems(403, 404),
        409: {"description": "The meeting was cancelled or has begun, or the RSVP deadline has passed"},
    },
)
async def answer(meeting_id: UUID, member_id: UUID, body: RsvpIn, uow: UoW, runtime: Runtime, caller: Caller) -> Any:
    caller.require_self_or_admin(member_id)
    await handle(commands.AnswerInvitation(meeting_id, member_id, body.response.value), uow)
    return await seat_views.answer(runtime.engine, meeting_id, member_id)


@router.post(
    "/meetings/{meeting_id}/rsvps/{member_id}/colleague",
    tags=["rsvp"],
    summary="Send a colleague of the same organisation in one's place (they take over the seat or place in line)",
    response_model=RsvpOut,
    responses={
        **problems(403, 404),
        409: {"description": "The member holds no seat or place, the colleague holds one already, or it has begun"},
        422: {"description": "The colleague is not of the member's organisation (or is the member)"},
    },
)
async def send_colleague(
    meeting_id: UUID, member_id: UUID, body: ColleagueIn, uow: UoW, runtime: Runtime, caller: Caller
) -> Any:
    caller.require_self_or_admin(member_id)
    await handle(commands.SendColleague(meeting_id, member_id, body.colleague_id), uow)
    return await seat_views.answer(runtime.engine, meeting_id, body.colleague_id)


@router.get(
    "/meetings/{meeting_id}/rsvps",
    tags=["rsvp"],
    summary="The answers: seats by arrival, then the waiting list in order, then the rest (the group's members only)",
    response_model=SeatsOut,
    responses=problems(403, 404),
)
async def seats(meeting_id: UUID, runtime: Runtime, caller: Caller) -> Any:
    await _group_member_or_admin(runtime, meeting_id, caller)
    return await seat_views.seats(runtime.engine, meeting_id)


@router.put(
    "/meetings/{meeting_id}/attendance/{member_id}",
    tags=["rsvp"],
    summary="Record whether a member came (the group's coordinators, at or after the start)",
    response_model=AttendanceOut,
    responses={
        **problems(403, 404),
        409: {"description": "The meeting has not begun yet, or was cancelled"},
        422: {"description": "The member is neither in the group nor answered the invitation"},
    },
)
async def record_attendance(
    meeting_id: UUID, member_id: UUID, body: AttendanceIn, uow: UoW, runtime: Runtime, caller: Caller
) -> Any:
    await handle(commands.RecordAttendance(meeting_id, member_id, body.attended, by=caller.member_id), uow)
    return await seat_views.attendance(runtime.engine, meeting_id, member_id)


@router.get(
    "/members/{member_id}/meetings",
    tags=["rsvp"],
    summary="A member's history: the meetings they answered or were recorded at, with answer and attendance",
    response_model=list[HistoryEntry],
    responses=problems(403),
)
async def history(member_id: UUID, runtime: Runtime, caller: Caller) -> Any:
    caller.require_self_or_admin(member_id)
    return await seat_views.member_history(runtime.engine, member_id)


async def _group_member_or_admin(runtime: Runtime, meeting_id: UUID, caller: Caller) -> None:
    group_id = await seat_views.meeting_group(runtime.engine, meeting_id)
    if group_id is None:
        raise Problem(404, f"No meeting {meeting_id}.")
    if caller.member_id is not None and await seat_views.role_of(runtime.engine, group_id, caller.member_id) is None:
        raise Problem(403, "Only the group's members (or the administration) may see the answers.")
