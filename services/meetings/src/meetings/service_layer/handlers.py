"""Command handlers: one function per command, registered in HANDLERS, each `handler(cmd, uow)` in one unit of work.

HTTP routes and event subscribers call the same `handle(cmd, uow)`. A subscriber's unit of work is joined to the
event consumer's transaction, which also records the event id in the inbox: effect and inbox row commit together or
not at all. The unit of work brings the repositories (`uow.repo.meetings`, `uow.repo.rosters`) and the clock
(`uow.clock()`); unit tests give it fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from netvaerk_shared.uow import AbstractUnitOfWork

from ..adapters.repository import Repositories
from ..domain import commands
from ..domain.errors import NotFound
from ..domain.model import Meeting

UnitOfWork = AbstractUnitOfWork[Repositories]


async def schedule_meeting(cmd: commands.ScheduleMeeting, uow: UnitOfWork) -> Meeting:
    meeting = Meeting.schedule(
        group_id=cmd.group_id,
        title=cmd.title,
        starts_at=cmd.starts_at,
        ends_at=cmd.ends_at,
        now=uow.clock(),
        timezone=cmd.timezone,
        venue=cmd.venue,
        online_url=cmd.online_url,
        capacity=cmd.capacity,
        agenda=cmd.agenda,
    )
    async with uow:
        if not await uow.repo.rosters.group_known(cmd.group_id):
            raise NotFound(
                f"The group {cmd.group_id} is unknown to the meetings service: it has not (yet) received "
                "the group's creation from the members service. Check the group id, or try again shortly."
            )
        await uow.repo.meetings.add(meeting)
        await uow.commit()
    return meeting


# -- the roster copy, fed by MEMBERS events ----------------------------------------------------------------------
async def record_group(cmd: commands.RecordGroup, uow: UnitOfWork) -> None:
    async with uow:
        await uow.repo.rosters.record_group(cmd.group_id, cmd.name, cmd.slug, cmd.region)
        await uow.commit()


async def record_membership(cmd: commands.RecordMembership, uow: UnitOfWork) -> None:
    async with uow:
        await uow.repo.rosters.record_membership(cmd.group_id, cmd.member_id, cmd.role, cmd.joined_at)
        await uow.commit()


async def record_memberships(cmd: commands.RecordMemberships, uow: UnitOfWork) -> None:
    """The same as record_membership for a whole batch of events, in a few statements."""
    async with uow:
        await uow.repo.rosters.record_memberships(
            (c.group_id, c.member_id, c.role, c.joined_at) for c in cmd.memberships
        )
        await uow.commit()


Command = commands.ScheduleMeeting | commands.RecordGroup | commands.RecordMembership | commands.RecordMemberships

HANDLERS: dict[type[Command], Callable[[Any, UnitOfWork], Awaitable[Any]]] = {
    commands.ScheduleMeeting: schedule_meeting,
    commands.RecordGroup: record_group,
    commands.RecordMembership: record_membership,
    commands.RecordMemberships: record_memberships,
}


async def handle(cmd: Command, uow: UnitOfWork) -> Any:
    """Run the command's handler; returns what it returns (the meeting scheduled, or nothing)."""
    return await HANDLERS[type(cmd)](cmd, uow)
