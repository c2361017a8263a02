"""Handlers of the meeting's life, its agenda and the year's plan (registered in handlers.HANDLERS).

Who may: a coordinator of the meeting's group (from the roster copy) or the administration (`by` None). Each change
loads the meeting locked, lets the aggregate judge it, and saves it in one unit of work, so a refused change leaves
nothing behind and an accepted one goes out with its event.
"""

from __future__ import annotations

from uuid import UUID

from netvaerk_shared.uow import AbstractUnitOfWork

from ..adapters.repository import Repositories
from ..domain import commands
from ..domain.errors import Conflict, Forbidden, NotFound
from ..domain.model import Meeting
from ..domain.series import Series
from . import seat_handlers

UnitOfWork = AbstractUnitOfWork[Repositories]


async def refuse_archived(uow: UnitOfWork, group_id: UUID) -> None:
    """An archived group (group.updated) takes no new meetings or series; what it had stays as it was."""
    if await uow.repo.rosters.group_archived(group_id):
        raise Conflict(f"The group {group_id} is archived in the members service: it takes no new meetings.")


async def may_plan(uow: UnitOfWork, group_id: UUID, by: UUID | None) -> None:
    """Forbidden unless `by` coordinates the group (or is None: the administration)."""
    if by is not None and not await uow.repo.plan.coordinates(group_id, by):
        raise Forbidden("Only a coordinator of the group (or the association's administration) may plan its meetings.")


async def _meeting(uow: UnitOfWork, meeting_id: UUID, by: UUID | None) -> Meeting:
    meeting = await uow.repo.plan.get(meeting_id)
    if meeting is None:
        raise NotFound(f"No meeting {meeting_id}.")
    await may_plan(uow, meeting.group_id, by)
    return meeting


async def reschedule_meeting(cmd: commands.RescheduleMeeting, uow: UnitOfWork) -> Meeting:
    async with uow:
        meeting = await _meeting(uow, cmd.meeting_id, cmd.by)
        seats_before = meeting.capacity
        changed = meeting.reschedule(
            now=uow.clock(),
            title=cmd.title,
            starts_at=cmd.starts_at,
            ends_at=cmd.ends_at,
            venue=cmd.venue,
            online_url=cmd.online_url,
            capacity=cmd.capacity,
            rsvp_deadline=cmd.rsvp_deadline,
        )
        if changed:
            await uow.repo.plan.update(meeting)
            if _more_seats(seats_before, meeting.capacity):
                await seat_handlers.refill(uow, meeting.id)  # the waiting list fills the new seats, in order
        await uow.commit()
    return meeting


def _more_seats(before: int | None, after: int | None) -> bool:
    return before is not None and (after is None or after > before)


async def cancel_meeting(cmd: commands.CancelMeeting, uow: UnitOfWork) -> Meeting:
    async with uow:
        meeting = await _meeting(uow, cmd.meeting_id, cmd.by)
        meeting.cancel(reason=cmd.reason, now=uow.clock())
        await uow.repo.plan.update(meeting)
        await uow.commit()
    return meeting


async def replace_agenda(cmd: commands.ReplaceAgenda, uow: UnitOfWork) -> Meeting:
    async with uow:
        meeting = await _meeting(uow, cmd.meeting_id, cmd.by)
        if meeting.replace_agenda(cmd.agenda, now=uow.clock()):
            await uow.repo.plan.update(meeting)
            await uow.repo.plan.save_agenda(meeting)
        await uow.commit()
    return meeting


async def record_minutes(cmd: commands.RecordMinutes, uow: UnitOfWork) -> Meeting:
    async with uow:
        meeting = await _meeting(uow, cmd.meeting_id, cmd.by)
        meeting.record_minutes(cmd.minutes, now=uow.clock())
        await uow.repo.plan.update(meeting)
        await uow.commit()
    return meeting


async def plan_series(cmd: commands.PlanSeries, uow: UnitOfWork) -> Series:
    series, meetings = Series.plan(
        group_id=cmd.group_id,
        title=cmd.title,
        rule=cmd.rule,
        first_day=cmd.first_day,
        count=cmd.count,
        now=uow.clock(),
        timezone=cmd.timezone,
        venue=cmd.venue,
        online_url=cmd.online_url,
        capacity=cmd.capacity,
        agenda=cmd.agenda,
        rsvp_days_before=cmd.rsvp_days_before,
    )
    async with uow:
        if not await uow.repo.rosters.group_known(cmd.group_id):
            raise NotFound(
                f"The group {cmd.group_id} is unknown to the meetings service: it has not (yet) received "
                "the group's creation from the members service. Check the group id, or try again shortly."
            )
        await refuse_archived(uow, cmd.group_id)
        await may_plan(uow, cmd.group_id, cmd.by)
        await uow.repo.plan.add_series(series, meetings)
        await uow.commit()
    return series


async def cancel_series(cmd: commands.CancelSeries, uow: UnitOfWork) -> UUID:
    """Every occurrence still to come is cancelled (each its own MeetingCancelled); held or past ones stay."""
    async with uow:
        group_id = await uow.repo.plan.series_group(cmd.series_id)
        if group_id is None:
            raise NotFound(f"No series {cmd.series_id}.")
        await may_plan(uow, group_id, cmd.by)
        now = uow.clock()
        for meeting in await uow.repo.plan.series_meetings(cmd.series_id):
            if meeting.status == "scheduled" and meeting.starts_at > now:
                meeting.cancel(reason=cmd.reason, now=now)
                await uow.repo.plan.update(meeting)
        await uow.commit()
    return cmd.series_id
