"""Save meetings, and keep the copy of the group rosters, with SQLAlchemy Core on the unit of work's connection.

Two repositories, since they hold two different things: `MeetingRepository` the Meeting aggregates this service owns,
`RosterRepository` its copy of the groups and memberships the members service announced (facts to record, no rules,
no events). `Repositories` carries both as the unit of work's `uow.repo`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from netvaerk_shared.db import dialect_insert

from ..domain.model import Meeting
from . import orm

_INSERT_MEETING = insert(orm.meetings)
_INSERT_AGENDA_ITEM = insert(orm.agenda_items)
_GROUP_KNOWN = select(orm.groups.c.id).where(orm.groups.c.id == bindparam("group_id"))


class MeetingRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.seen: list[Meeting] = []  # aggregates touched: their events go out with the commit

    async def add(self, meeting: Meeting) -> None:
        venue = meeting.venue
        await self.conn.execute(
            _INSERT_MEETING,
            {
                "id": meeting.id,
                "group_id": meeting.group_id,
                "title": meeting.title,
                "starts_at": meeting.starts_at,
                "ends_at": meeting.ends_at,
                "timezone": meeting.timezone,
                "venue_name": venue.name if venue else None,
                "venue_address": venue.address if venue else None,
                "venue_host_organisation": venue.host_organisation if venue else None,
                "online_url": meeting.online_url,
                "capacity": meeting.capacity,
                "sequence": meeting.sequence,
                "scheduled_at": meeting.scheduled_at,
            },
        )
        if meeting.agenda:
            await self.conn.execute(
                _INSERT_AGENDA_ITEM,
                [
                    {
                        "meeting_id": meeting.id,
                        "position": item.position,
                        "kind": item.kind,
                        "title": item.title,
                        "speaker": item.speaker,
                        "speaker_organisation": item.speaker_organisation,
                        "minutes": item.minutes,
                        "tags": list(item.tags),
                    }
                    for item in meeting.agenda
                ],
            )
        self.seen.append(meeting)


class RosterRepository:
    """The roster copy, fed by MEMBERS events on separate durables: rows may arrive in any order and more than once."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def group_known(self, group_id: UUID) -> bool:
        return (await self.conn.execute(_GROUP_KNOWN, {"group_id": group_id})).first() is not None

    async def record_group(self, group_id: UUID, name: str, slug: str, region: str) -> None:
        # A GroupCreated seen again (republished under a new event id) changes nothing: the first copy stands, and a
        # later group.updated, once consumed, must not be undone by an old GroupCreated arriving behind it.
        stmt = dialect_insert(self.conn, orm.groups).values(id=group_id, name=name, slug=slug, region=region)
        await self.conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))

    async def record_membership(self, group_id: UUID, member_id: UUID, role: str, joined_at: datetime) -> None:
        # The newest join wins, whatever order the events come in.
        gm = orm.group_members
        stmt = dialect_insert(self.conn, gm).values(
            group_id=group_id, member_id=member_id, role=role, joined_at=joined_at
        )
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["group_id", "member_id"],
                set_={"role": stmt.excluded.role, "joined_at": stmt.excluded.joined_at},
                where=stmt.excluded.joined_at >= gm.c.joined_at,
            )
        )

    async def record_memberships(self, rows: Iterable[tuple[UUID, UUID, str, datetime]]) -> None:
        """Many joins in one statement a chunk; the newest join of each pair wins, as in record_membership."""
        newest: dict[tuple[UUID, UUID], tuple[str, datetime]] = {}
        for group_id, member_id, role, joined_at in rows:
            key = (group_id, member_id)
            if key not in newest or joined_at >= newest[key][1]:
                newest[key] = (role, joined_at)
        values = [{"group_id": g, "member_id": m, "role": r, "joined_at": t} for (g, m), (r, t) in newest.items()]
        gm = orm.group_members
        for i in range(0, len(values), 500):
            stmt = dialect_insert(self.conn, gm).values(values[i : i + 500])
            await self.conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["group_id", "member_id"],
                    set_={"role": stmt.excluded.role, "joined_at": stmt.excluded.joined_at},
                    where=stmt.excluded.joined_at >= gm.c.joined_at,
                )
            )


class Repositories:
    """`uow.repo`: both repositories on one connection (one transaction)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.meetings = MeetingRepository(conn)
        self.rosters = RosterRepository(conn)

    @property
    def seen(self) -> list[Meeting]:
        return self.meetings.seen  # the roster copy records facts and raises no events
