"""Command handlers: one function per command.

HANDLERS run in their own unit of work (HTTP). The roster handlers run on a connection the event consumer already
holds: its transaction also records the event id in the inbox, so the two commit together or not at all.
`repository` is the factory conn -> repository; unit tests pass a fake.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from netvaerk_shared.uow import commit_with_events

from ..adapters.repository import Repository
from ..domain import commands
from ..domain.errors import NotFound
from ..domain.model import Meeting
from .translator import to_contract

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def schedule_meeting(
    cmd: commands.ScheduleMeeting, uow, clock: Clock = utc_now, repository=Repository
) -> Meeting:
    meeting = Meeting.schedule(
        group_id=cmd.group_id,
        title=cmd.title,
        starts_at=cmd.starts_at,
        ends_at=cmd.ends_at,
        now=clock(),
        timezone=cmd.timezone,
        venue=cmd.venue,
        online_url=cmd.online_url,
        capacity=cmd.capacity,
        agenda=cmd.agenda,
    )
    async with uow:
        repo = repository(uow.conn)
        if not await repo.group_known(cmd.group_id):
            raise NotFound(
                f"The group {cmd.group_id} is unknown to the meetings service: it has not (yet) received "
                "the group's creation from the members service. Check the group id, or try again shortly."
            )
        await repo.add_meeting(meeting)
        await commit_with_events(uow, repo.seen, to_contract)
    return meeting


HANDLERS = {
    commands.ScheduleMeeting: schedule_meeting,
}


async def handle(cmd, uow, clock: Clock = utc_now, repository=Repository):
    return await HANDLERS[type(cmd)](cmd, uow, clock, repository)


# -- the roster copy, fed by MEMBERS events ----------------------------------------------------------------------
async def record_group(cmd: commands.RecordGroup, conn, repository=Repository) -> None:
    await repository(conn).record_group(cmd.group_id, cmd.name, cmd.slug, cmd.region)


async def record_membership(cmd: commands.RecordMembership, conn, repository=Repository) -> None:
    await repository(conn).record_membership(cmd.group_id, cmd.member_id, cmd.role, cmd.joined_at)


async def record_memberships(cmds: list[commands.RecordMembership], conn, repository=Repository) -> None:
    """The same as record_membership for a whole batch of events, in a few statements."""
    await repository(conn).record_memberships([(c.group_id, c.member_id, c.role, c.joined_at) for c in cmds])
