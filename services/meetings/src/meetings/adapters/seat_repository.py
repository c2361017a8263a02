"""Load and save the seats of a meeting (`Seating`), with SQLAlchemy Core on the unit of work's connection.

`get(meeting_id)` locks the meeting's row (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite every write transaction
begins IMMEDIATE, which serialises writers the same way), so answers to one meeting are decided one at a time and
the order they were decided in is the waiting list's order: fifty members answering at once for ten seats gives ten
seats and forty places in line, never eleven seats.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from netvaerk_shared.db import dialect_insert, is_sqlite

from ..domain.rsvp import SEATED, Answer, Seating
from . import orm


class SeatRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.seen: list[Seating] = []

    async def get(self, meeting_id: UUID) -> Seating | None:
        m = orm.meetings
        stmt = select(m.c.id, m.c.group_id, m.c.starts_at, m.c.capacity, m.c.rsvp_deadline, m.c.status).where(
            m.c.id == meeting_id
        )
        if not is_sqlite(self.conn):
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        if row is None:
            return None
        r = orm.rsvps
        answers = {
            a.member_id: Answer(a.member_id, a.response, a.status, a.arrival, a.answered_at, a.on_behalf_of)
            for a in (await self.conn.execute(select(r).where(r.c.meeting_id == meeting_id))).all()
        }
        at = orm.attendance
        attendance = {
            a.member_id: (a.attended, a.recorded_at)
            for a in (await self.conn.execute(select(at).where(at.c.meeting_id == meeting_id))).all()
        }
        seating = Seating(
            meeting_id=row.id,
            group_id=row.group_id,
            starts_at=row.starts_at,
            capacity=row.capacity,
            rsvp_deadline=row.rsvp_deadline,
            cancelled=row.status == "cancelled",
            answers=answers,
            attendance=attendance,
            last_arrival=max((a.arrival for a in answers.values()), default=0),
        )
        self.seen.append(seating)
        return seating

    async def save(self, seating: Seating) -> None:
        r = orm.rsvps
        for member_id in sorted(seating.changed):
            a = seating.answers[member_id]
            values = {
                "response": a.response,
                "status": a.status,
                "arrival": a.arrival,
                "answered_at": a.answered_at,
                "on_behalf_of": a.on_behalf_of,
            }
            stmt = dialect_insert(self.conn, r).values(meeting_id=seating.meeting_id, member_id=member_id, **values)
            await self.conn.execute(stmt.on_conflict_do_update(index_elements=["meeting_id", "member_id"], set_=values))
        seating.changed.clear()
        at = orm.attendance
        for member_id in sorted(seating.checked_in):
            attended, recorded_at = seating.attendance[member_id]
            values = {"attended": attended, "recorded_at": recorded_at}
            stmt = dialect_insert(self.conn, at).values(meeting_id=seating.meeting_id, member_id=member_id, **values)
            await self.conn.execute(stmt.on_conflict_do_update(index_elements=["meeting_id", "member_id"], set_=values))
        seating.checked_in.clear()

    async def coming_answers(self, member_id: UUID, after: datetime, group_id: UUID | None = None) -> list[UUID]:
        """The meetings starting after `after` (of `group_id`, or of every group) that the member has an answer to,
        not withdrawn, in start order: what leaving or erasure has to release."""
        r, m = orm.rsvps, orm.meetings
        stmt = (
            select(m.c.id)
            .join(r, r.c.meeting_id == m.c.id)
            .where(r.c.member_id == member_id, r.c.status != "withdrawn", m.c.starts_at > after)
            .order_by(m.c.starts_at, m.c.id)
        )
        if group_id is not None:
            stmt = stmt.where(m.c.group_id == group_id)
        return list((await self.conn.execute(stmt)).scalars())

    async def seated_answers(self, member_id: UUID, after: datetime) -> list[UUID]:
        r, m = orm.rsvps, orm.meetings
        stmt = (
            select(m.c.id)
            .join(r, r.c.meeting_id == m.c.id)
            .where(r.c.member_id == member_id, r.c.status.in_(SEATED), m.c.starts_at > after)
            .order_by(m.c.starts_at, m.c.id)
        )
        return list((await self.conn.execute(stmt)).scalars())

    async def organisation_of(self, member_id: UUID) -> UUID | None:
        o = orm.member_organisations
        stmt = select(o.c.organisation_id).where(o.c.member_id == member_id)
        return (await self.conn.execute(stmt)).scalar_one_or_none()

    async def record_organisation(self, member_id: UUID, organisation_id: UUID, at: datetime) -> None:
        """The newest profile wins, whatever order MemberRegistered and MemberUpdated are consumed in."""
        if await self._erased(member_id):
            return
        o = orm.member_organisations
        stmt = dialect_insert(self.conn, o).values(member_id=member_id, organisation_id=organisation_id, updated_at=at)
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["member_id"],
                set_={"organisation_id": stmt.excluded.organisation_id, "updated_at": stmt.excluded.updated_at},
                where=stmt.excluded.updated_at >= o.c.updated_at,
            )
        )

    async def forget_member(self, member_id: UUID) -> int:
        """GDPR erasure: each of the member's answers and attendance rows goes on under a random id of its own (so
        every count stays right and no two rows can be linked to one person), `on_behalf_of` naming them is
        cleared, and their organisation is forgotten. Returns the rows anonymised; a second call finds none."""
        n = 0
        for table in (orm.rsvps, orm.attendance):
            meeting_ids = (
                (await self.conn.execute(select(table.c.meeting_id).where(table.c.member_id == member_id)))
                .scalars()
                .all()
            )
            for meeting_id in meeting_ids:
                await self.conn.execute(
                    update(table)
                    .where(table.c.meeting_id == meeting_id, table.c.member_id == member_id)
                    .values(member_id=uuid4())
                )
            n += len(meeting_ids)
        r = orm.rsvps
        await self.conn.execute(update(r).where(r.c.on_behalf_of == member_id).values(on_behalf_of=None))
        o = orm.member_organisations
        await self.conn.execute(delete(o).where(o.c.member_id == member_id))
        return n

    async def _erased(self, member_id: UUID) -> bool:
        e = orm.erased_members
        return (await self.conn.execute(select(e.c.member_id).where(e.c.member_id == member_id))).first() is not None
