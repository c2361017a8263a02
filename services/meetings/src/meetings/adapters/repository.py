"""Save meetings, and keep the copy of the group rosters, with SQLAlchemy Core on the unit of work's connection.

Two repositories, since they hold two different things: `MeetingRepository` the Meeting aggregates this service owns,
`RosterRepository` its copy of the groups and memberships the members service announced (facts to record, no rules,
no events). `Repositories` carries both as the unit of work's `uow.repo`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from netvaerk_shared.db import dialect_insert
from netvaerk_shared.gdpr import scrub_messaging

from ..domain.model import Meeting
from ..domain.proposal import Proposal
from ..domain.rsvp import Seating
from . import orm
from .plan_repository import PlanRepository
from .proposal_repository import CalendarFeedRepository, ProposalRepository
from .seat_repository import SeatRepository

_INSERT_MEETING = insert(orm.meetings)
_INSERT_AGENDA_ITEM = insert(orm.agenda_items)
_GROUP_KNOWN = select(orm.groups.c.id).where(orm.groups.c.id == bindparam("group_id"))


def _join_set(stmt: Any) -> dict[str, Any]:
    return {"role": stmt.excluded.role, "joined_at": stmt.excluded.joined_at, "left_at": None}


def _join_wins(stmt: Any) -> ColumnElement[bool]:
    """The newest join wins, whatever order the events come in; a join wins over a leaving only when it is newer."""
    gm = orm.group_members
    newer_join = stmt.excluded.joined_at >= gm.c.joined_at
    return newer_join & (gm.c.left_at.is_(None) | (stmt.excluded.joined_at > gm.c.left_at))


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
                "status": meeting.status,
                "rsvp_deadline": meeting.rsvp_deadline,
                "series_id": meeting.series_id,
                "cancel_reason": meeting.cancel_reason,
                "minutes": meeting.minutes,
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
                        "materials": list(item.materials),
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

    async def record_group_change(self, group_id: UUID, name: str, slug: str, region: str, status: str) -> None:
        """group.updated: name, slug, region and status as they are now; the row is made if the group's creation has
        not been consumed yet (it then changes nothing). Once archived, a group stays archived: an update consumed
        late (a retried delivery) does not reopen it."""
        g = orm.groups
        stmt = dialect_insert(self.conn, g).values(id=group_id, name=name, slug=slug, region=region, status=status)
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={"name": name, "slug": slug, "region": region, "status": status},
                where=g.c.status != "archived",
            )
        )

    async def group_archived(self, group_id: UUID) -> bool:
        stmt = select(orm.groups.c.status).where(orm.groups.c.id == group_id)
        return (await self.conn.execute(stmt)).scalar_one_or_none() == "archived"

    async def record_membership(self, group_id: UUID, member_id: UUID, role: str, joined_at: datetime) -> None:
        # The newest join wins, whatever order the events come in.
        if await self._erased([member_id]):
            return  # a join that arrives after the member's erasure (another durable) does not bring them back
        gm = orm.group_members
        stmt = dialect_insert(self.conn, gm).values(
            group_id=group_id, member_id=member_id, role=role, joined_at=joined_at
        )
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["group_id", "member_id"],
                set_=_join_set(stmt),
                where=_join_wins(stmt),
            )
        )

    async def record_memberships(self, rows: Iterable[tuple[UUID, UUID, str, datetime]]) -> None:
        """Many joins in one statement a chunk; the newest join of each pair wins, as in record_membership."""
        newest: dict[tuple[UUID, UUID], tuple[str, datetime]] = {}
        rows = list(rows)
        erased = await self._erased([member_id for _, member_id, _, _ in rows])
        for group_id, member_id, role, joined_at in rows:
            if member_id in erased:
                continue
            key = (group_id, member_id)
            if key not in newest or joined_at >= newest[key][1]:
                newest[key] = (role, joined_at)
        values = [{"group_id": g, "member_id": m, "role": r, "joined_at": t} for (g, m), (r, t) in newest.items()]
        gm = orm.group_members
        for i in range(0, len(values), 500):
            stmt = dialect_insert(self.conn, gm).values(values[i : i + 500])
            await self.conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["group_id", "member_id"], set_=_join_set(stmt), where=_join_wins(stmt)
                )
            )

    async def record_leaving(self, group_id: UUID, member_id: UUID, left_at: datetime) -> None:
        """MemberLeft: the row stays with `left_at` set (a late, older join must not bring the member back); a row is
        made when the leaving comes before the join it ends."""
        if await self._erased([member_id]):
            return
        gm = orm.group_members
        stmt = dialect_insert(self.conn, gm).values(
            group_id=group_id, member_id=member_id, role="member", joined_at=left_at, left_at=left_at
        )
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["group_id", "member_id"],
                set_={"left_at": stmt.excluded.left_at},
                where=(gm.c.joined_at <= stmt.excluded.left_at)
                & (gm.c.left_at.is_(None) | (gm.c.left_at < stmt.excluded.left_at)),
            )
        )

    async def record_role(self, group_id: UUID, member_id: UUID, role: str) -> bool:
        """MemberRoleChanged: the member's role in the group now. False when the membership is not (yet) known."""
        gm = orm.group_members
        result = await self.conn.execute(
            update(gm).where(gm.c.group_id == group_id, gm.c.member_id == member_id).values(role=role)
        )
        return bool(result.rowcount)

    async def is_erased(self, member_id: UUID) -> bool:
        return bool(await self._erased([member_id]))

    async def role_of(self, group_id: UUID, member_id: UUID) -> str | None:
        """The member's role in the group, None when they are not (or no longer) in it."""
        gm = orm.group_members
        stmt = select(gm.c.role).where(gm.c.group_id == group_id, gm.c.member_id == member_id, gm.c.left_at.is_(None))
        return (await self.conn.execute(stmt)).scalar_one_or_none()

    # -- GDPR erasure -------------------------------------------------------------------------------------------
    async def _erased(self, member_ids: Sequence[UUID]) -> set[UUID]:
        e = orm.erased_members
        found: set[UUID] = set()
        unique = list(dict.fromkeys(member_ids))
        for i in range(0, len(unique), 500):
            stmt = select(e.c.member_id).where(e.c.member_id.in_(unique[i : i + 500]))
            found.update((await self.conn.execute(stmt)).scalars())
        return found

    async def forget_member(self, member_id: UUID, erased_at: datetime) -> int:
        """The member's roster rows go (members gave up their seats in the same erasure, so the copy follows: a
        group's count here stays the one members has), the id is remembered as erased, and the messaging tables
        forget the member. Their answers and attendance stay counted under a random id (seat_handlers.forget_seats).
        Returns the roster rows removed; a second call finds none."""
        gm = orm.group_members
        removed = await self.conn.execute(delete(gm).where(gm.c.member_id == member_id))
        stmt = dialect_insert(self.conn, orm.erased_members).values(member_id=member_id, erased_at=erased_at)
        await self.conn.execute(stmt.on_conflict_do_nothing(index_elements=["member_id"]))
        await scrub_messaging(self.conn, orm.messaging, member_id)
        return int(removed.rowcount or 0)


class Repositories:
    """`uow.repo`: both repositories on one connection (one transaction)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.meetings = MeetingRepository(conn)
        self.rosters = RosterRepository(conn)
        self.seats = SeatRepository(conn)
        self.plan = PlanRepository(conn, self.meetings)  # changes of meetings, the year's plans (shares `seen`)
        self.proposals = ProposalRepository(conn)
        self.feeds = CalendarFeedRepository(conn)

    @property
    def seen(self) -> list[Meeting | Seating | Proposal]:
        # the roster copy records facts and raises no events
        return [*self.meetings.seen, *self.seats.seen, *self.proposals.seen]
