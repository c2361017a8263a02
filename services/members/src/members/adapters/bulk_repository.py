"""Batch loads and saves for the bulk import (service_layer/bulk.py): a few statements per batch of rows instead of a
few per row, on the unit of work's connection.

Locks as the one-at-a-time handlers take them (adapters/repository.py): the groups' rows FOR UPDATE in id order
first (seats are counted under them), then the existing members' rows FOR SHARE. SQLite has one writer anyway.

The Group aggregates built here hold only what the import decides with: the whole roster of a group with a capacity
(its seats are counted; a capacity is at most 10,000), and otherwise only the seats and requests of this batch's
members. They are never saved whole (Repository.save_group would read a partial roster as members leaving): the
import only adds seats, with add_memberships.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Insert, Table, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.model import Group, JoinRequest, Member, Organisation, Seat
from . import orm
from .repository import member_from_row, organisation_from_row

_g, _m, _o, _ms, _jr = orm.groups, orm.members, orm.organisations, orm.memberships, orm.join_requests


def _dialect_insert(conn: AsyncConnection) -> Callable[[Table], postgresql.Insert | sqlite.Insert]:
    return sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert


def _upsert_organisations(conn: AsyncConnection) -> Insert:
    stmt = _dialect_insert(conn)(_o)
    # DO UPDATE of nothing that changes: a row a concurrent registration created is returned as well
    return stmt.on_conflict_do_update(index_elements=["name_key"], set_={"name_key": stmt.excluded.name_key}).returning(
        *_o.c
    )


class BulkRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._postgres = conn.dialect.name == "postgresql"

    async def plan_for_each_batch(self) -> None:
        """PostgreSQL: plan this transaction's statements for their own values. asyncpg prepares statements, and
        after five executions PostgreSQL may keep a generic plan made while the tables were small; as an import
        fills them that plan (a scan where the email index serves) made a batch's lookup take seconds."""
        if self._postgres:
            await self.conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))

    async def lock_groups(self, slugs: Collection[str], *, lock: bool = True) -> dict[str, Any]:
        """The groups' rows by slug, locked FOR UPDATE in id order (on PostgreSQL, with lock)."""
        if not slugs:
            return {}
        stmt = select(_g).where(_g.c.slug.in_(sorted(slugs))).order_by(_g.c.id)
        if lock and self._postgres:
            stmt = stmt.with_for_update()
        return {row.slug: row for row in await self.conn.execute(stmt)}

    async def members_by_email(self, emails: Collection[str], *, lock: bool = True) -> dict[str, Member]:
        """The members already registered under these addresses, with their organisation and seats."""
        if not emails:
            return {}
        o = _o.alias("o")
        stmt = (
            select(
                _m,
                o.c.name.label("org_name"),
                o.c.kind,
                o.c.cvr,
                o.c.membership_status,
                o.c.membership_valid_until,
            )
            .join(o, o.c.id == _m.c.organisation_id)
            .where(_m.c.email.in_(sorted(emails)))
        )
        if lock and self._postgres:
            stmt = stmt.with_for_update(read=True, of=_m)
        rows = (await self.conn.execute(stmt)).all()
        seats: dict[UUID, dict[UUID, str]] = {row.id: {} for row in rows}
        if seats:
            for r in await self.conn.execute(
                select(_ms.c.member_id, _ms.c.group_id, _ms.c.role).where(_ms.c.member_id.in_(list(seats)))
            ):
                seats[r.member_id][r.group_id] = r.role
        return {row.email: member_from_row(row, memberships=seats[row.id]) for row in rows}

    async def groups(self, rows: Iterable[Any], member_ids: Sequence[UUID]) -> dict[str, Group]:
        """Group aggregates (see the module's note on their rosters) for the rows lock_groups returned."""
        rows = list(rows)
        by_id = {row.id: row for row in rows}
        roster: dict[UUID, dict[UUID, Seat]] = {gid: {} for gid in by_id}
        queue: dict[UUID, list[JoinRequest]] = {gid: [] for gid in by_id}
        counted = [gid for gid, row in by_id.items() if row.capacity is not None]
        if counted:
            for r in await self.conn.execute(
                select(_ms.c.group_id, _ms.c.member_id, _ms.c.role, _ms.c.joined_at).where(_ms.c.group_id.in_(counted))
            ):
                roster[r.group_id][r.member_id] = Seat(r.role, r.joined_at)
        if member_ids and by_id:
            ids = list(member_ids)
            uncounted = [gid for gid in by_id if gid not in counted]
            if uncounted:
                for r in await self.conn.execute(
                    select(_ms.c.group_id, _ms.c.member_id, _ms.c.role, _ms.c.joined_at).where(
                        _ms.c.group_id.in_(uncounted), _ms.c.member_id.in_(ids)
                    )
                ):
                    roster[r.group_id][r.member_id] = Seat(r.role, r.joined_at)
            for r in await self.conn.execute(
                select(_jr.c.group_id, _jr.c.member_id, _jr.c.status, _jr.c.requested_at)
                .where(_jr.c.group_id.in_(list(by_id)), _jr.c.member_id.in_(ids))
                .order_by(_jr.c.position)
            ):
                queue[r.group_id].append(JoinRequest(r.member_id, r.status, r.requested_at))
        return {
            row.slug: Group(
                id=row.id,
                name=row.name,
                slug=row.slug,
                region=row.region,
                description=row.description,
                topics=tuple(row.topics or ()),
                capacity=row.capacity,
                requires_approval=row.requires_approval,
                status=row.status,
                roster=roster[row.id],
                queue=queue[row.id],
            )
            for row in rows
        }

    async def organisations(
        self, wanted: dict[str, tuple[str, str, str | None]], new_id: Callable[[], UUID]
    ) -> dict[str, Organisation]:
        """Organisations by key (organisation_key): the stored ones, and the missing ones stored now from
        (name, kind, cvr). A stored organisation keeps its own kind and CVR, as in a registration."""
        if not wanted:
            return {}
        found = {
            row.name_key: organisation_from_row(row)
            for row in await self.conn.execute(select(_o).where(_o.c.name_key.in_(sorted(wanted))))
        }
        missing = [
            {"id": new_id(), "name": " ".join(name.split()), "name_key": key, "kind": kind, "cvr": cvr}
            for key, (name, kind, cvr) in wanted.items()
            if key not in found
        ]
        if missing:
            for row in await self.conn.execute(_upsert_organisations(self.conn), missing):
                found[row.name_key] = organisation_from_row(row)
        return found

    async def add_members(self, members: Sequence[Member]) -> set[str]:
        """Insert new members; the addresses that went in (one taken meanwhile by a registration does not)."""
        if not members:
            return set()
        stmt = _dialect_insert(self.conn)(_m).on_conflict_do_nothing(index_elements=["email"]).returning(_m.c.email)
        rows = [
            {
                "id": m.id,
                "name": m.name,
                "email": m.email,
                "phone": m.phone,
                "organisation_id": m.organisation.id,
                "job_title": m.job_title,
                "locale": m.locale,
                "registered_at": m.registered_at,
                "status": m.status,
            }
            for m in members
        ]
        inserted = {r.email for r in await self.conn.execute(stmt, rows)}
        consents = [
            {"member_id": m.id, "kind": kind, "given_at": at}
            for m in members
            if m.email in inserted
            for kind, at in m.consents.items()
        ]
        if consents:
            await self.conn.execute(insert(orm.consents), consents)
        return inserted

    async def add_memberships(self, seats: Sequence[dict[str, Any]]) -> None:
        """Insert seats: dicts of member_id, group_id, role, joined_at."""
        if seats:
            await self.conn.execute(insert(_ms), list(seats))
