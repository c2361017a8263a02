"""The member's rows in the members database, for the GDPR export and the erasure, found from the schema itself.

Every table of orm.metadata that refers to a member (a foreign key to members.id, or a column named `member_id` or
`…_member_id`) holds personal data of that member, so a table added later is exported and erased without a change
here. The messaging tables are the shared mechanism's (netvaerk_shared.gdpr.scrub_messaging). One table with a
`member_id` is not the member's data: `erased_members` (ids and times only) is the proof of the erasure, written by
it, so neither the erasure nor the export takes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Column, Table, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from netvaerk_shared.db import is_sqlite
from netvaerk_shared.gdpr import scrub_messaging

from .. import views
from . import orm

_MESSAGING = {orm.messaging.outbox.name, orm.messaging.inbox.name, orm.messaging.dead_letters.name}
_NOT_PERSONAL = _MESSAGING | {orm.erased_members.name}  # the erasure's own record: it must outlive the member


def _refers_to_member(column: Column[Any]) -> bool:
    if column.name == "member_id" or column.name.endswith("_member_id"):
        return True
    return any(fk.column.table is orm.members and fk.column.name == "id" for fk in column.foreign_keys)


def personal_tables() -> list[tuple[Table, list[Column[Any]]]]:
    """The tables that refer to a member, and their columns that do, children before parents (the order to delete
    in); the members table itself is not among them, nor erased_members (the proof of erasure)."""
    found = []
    for table in reversed(orm.metadata.sorted_tables):
        if table is orm.members or table.name in _NOT_PERSONAL:
            continue
        columns = [c for c in table.columns if _refers_to_member(c)]
        if columns:
            found.append((table, columns))
    return found


def _about(columns: list[Column[Any]], member_id: UUID) -> Any:
    return or_(*(c == member_id for c in columns))


class ErasureRepository:
    """On the unit of work's connection: is there such a member, erase every row of theirs, and remember that (and
    when) they were erased."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def erased_at(self, member_id: UUID) -> datetime | None:
        """When the member was erased here, or None (never a member, or erased before erased_members existed)."""
        e = orm.erased_members
        return (await self.conn.execute(select(e.c.erased_at).where(e.c.member_id == member_id))).scalar()

    async def remember(self, member_id: UUID, erased_at: datetime) -> None:
        await self.conn.execute(insert(orm.erased_members).values(member_id=member_id, erased_at=erased_at))

    async def exists(self, member_id: UUID) -> bool:
        m = orm.members
        return (await self.conn.execute(select(m.c.id).where(m.c.id == member_id))).first() is not None

    async def lock_groups_of(self, member_id: UUID) -> list[UUID]:
        """The groups the member holds a seat in, their rows locked in id order (on PostgreSQL) until commit."""
        ms, g = orm.memberships, orm.groups
        stmt = select(g.c.id).where(g.c.id.in_(select(ms.c.group_id).where(ms.c.member_id == member_id)))
        if not is_sqlite(self.conn):
            stmt = stmt.with_for_update()
        return list((await self.conn.execute(stmt.order_by(g.c.id))).scalars())

    async def erase(self, member_id: UUID) -> dict[str, int]:
        """Delete the member's rows in every table that refers to them, then the member, then their traces in the
        messaging tables. Returns the rows deleted per table (counts only: never what they held); no members row
        deleted means another erasure of the member committed first (and the messaging tables are left alone)."""
        counts: dict[str, int] = {}
        for table, columns in personal_tables():
            result = await self.conn.execute(delete(table).where(_about(columns, member_id)))
            counts[table.name] = result.rowcount or 0
        m = orm.members
        counts[m.name] = (await self.conn.execute(delete(m).where(m.c.id == member_id))).rowcount or 0
        if not counts[m.name]:
            # erased meanwhile by a concurrent erasure, which scrubbed the messaging tables already and wrote the
            # notice: scrubbing now would take that notice itself once the relay has published it
            return counts
        scrubbed = await scrub_messaging(self.conn, orm.messaging, member_id)
        counts[orm.messaging.outbox.name] = scrubbed.outbox
        counts[orm.messaging.dead_letters.name] = scrubbed.dead_letters
        return counts


async def member_export(engine: AsyncEngine, member_id: UUID) -> dict[str, Any] | None:
    """The members service's part of the export: the profile as `GET /members/{id}/export` gives it, and every row
    of every table that refers to the member. None when the service holds nothing about them."""
    member = await views.get_member(engine, member_id)
    records: dict[str, list[dict[str, Any]]] = {}
    async with engine.connect() as conn:
        m = orm.members
        rows = (await conn.execute(select(m).where(m.c.id == member_id))).mappings().all()
        if rows:
            records[m.name] = [dict(r) for r in rows]
        for table, columns in personal_tables():
            rows = (await conn.execute(select(table).where(_about(columns, member_id)))).mappings().all()
            if rows:
                records[table.name] = [dict(r) for r in rows]
    if member is None and not records:
        return None
    return {"service": "members", "member": member, "records": records}
