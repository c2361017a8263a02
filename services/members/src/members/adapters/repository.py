"""Load and save aggregates with SQLAlchemy Core on the unit of work's connection.

Seats are counted and given out under a lock on the group's row: `get_group(..., lock=True)` is `SELECT … FOR UPDATE`
on PostgreSQL, so two joins to one group queue there and the second sees the first's seat; SQLite has one writer at a
time anyway (BEGIN IMMEDIATE on the one pooled connection). A join also reads its member and organisation
`FOR SHARE`, so a change that takes away the right to join (which updates that row first) cannot cross it unseen.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Insert, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.model import Group, JoinRequest, Member, Organisation, Seat
from . import orm

DialectInsert = Callable[[Table], postgresql.Insert | sqlite.Insert]
_org = orm.organisations
_ORG_COLUMNS = (
    _org.c.id,
    _org.c.name,
    _org.c.kind,
    _org.c.cvr,
    _org.c.membership_status,
    _org.c.membership_valid_until,
)


def _get_or_create_organisation(dialect_insert: DialectInsert) -> Insert:
    # DO UPDATE (of nothing that changes), not DO NOTHING: when a concurrent first registration won, DO NOTHING
    # returns no row and a SELECT must follow; DO UPDATE returns the winner's row from the same statement.
    stmt = dialect_insert(_org)
    update = {"name_key": stmt.excluded.name_key}
    return stmt.on_conflict_do_update(index_elements=["name_key"], set_=update).returning(*_ORG_COLUMNS)


def _add_member_unless_email_taken(dialect_insert: DialectInsert) -> Insert:
    return dialect_insert(orm.members).on_conflict_do_nothing(index_elements=["email"]).returning(orm.members.c.id)


# The hot statements are built once (parameters bound at execution): building them per call cost a fifth of a
# registration's CPU. ON CONFLICT needs the backend's own insert(), so those come once per dialect.
_ORG_BY_KEY = select(*_ORG_COLUMNS).where(_org.c.name_key == bindparam("name_key"))
_GET_OR_CREATE_ORG = {
    "postgresql": _get_or_create_organisation(postgresql.insert),
    "sqlite": _get_or_create_organisation(sqlite.insert),
}
_ADD_MEMBER = {
    "postgresql": _add_member_unless_email_taken(postgresql.insert),
    "sqlite": _add_member_unless_email_taken(sqlite.insert),
}
_INSERT_MEMBERSHIP = insert(orm.memberships)
_INSERT_CONSENT = insert(orm.consents)


def organisation_key(name: str) -> str:
    """How organisations are told apart: case and spacing aside. Cut after lower(), which can lengthen a few letters
    (İ -> i̇)."""
    return " ".join(name.lower().split())[:200]


def organisation_from_row(row: Any, *, id_: UUID | None = None, name: str | None = None) -> Organisation:
    """An organisations row, or the organisation's columns of a members row joined to it (id and name given)."""
    return Organisation(
        id=row.id if id_ is None else id_,
        name=row.name if name is None else name,
        kind=row.kind,
        cvr=row.cvr,
        membership_status=row.membership_status,
        membership_valid_until=row.membership_valid_until,
    )


def member_from_row(row: Any, *, memberships: dict[UUID, str], consents: dict[str, datetime] | None = None) -> Member:
    """A members row joined to its organisation's columns (`org_name`, kind, cvr, membership_*)."""
    return Member(
        id=row.id,
        name=row.name,
        email=row.email,
        phone=row.phone,
        organisation=organisation_from_row(row, id_=row.organisation_id, name=row.org_name),
        job_title=row.job_title,
        locale=row.locale,
        registered_at=row.registered_at,
        status=row.status,
        consents=consents if consents is not None else {},
        memberships=memberships,
    )


class Repository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.seen: list[Group | Member | Organisation] = []  # aggregates touched: their events go out with commit
        self._groups: dict[UUID, Group] = {}  # one object per row and transaction
        self._members: dict[UUID, Member] = {}
        self._loaded_groups: dict[UUID, tuple[dict[UUID, Seat], list[JoinRequest]]] = {}  # as read, for save

    # -- groups ----------------------------------------------------------------------------------------------------
    async def add_group(self, group: Group) -> None:
        await self.conn.execute(insert(orm.groups).values(**self._group_row(group), id=group.id))
        self._loaded_groups[group.id] = ({}, [])
        self._groups[group.id] = group
        self.seen.append(group)

    @staticmethod
    def _group_row(group: Group) -> dict[str, object]:
        return {
            "name": group.name,
            "slug": group.slug,
            "region": group.region,
            "description": group.description,
            "topics": list(group.topics),
            "capacity": group.capacity,
            "requires_approval": group.requires_approval,
            "status": group.status,
        }

    async def group_slug_taken(self, slug: str, other_than: UUID | None = None) -> bool:
        stmt = select(orm.groups.c.id).where(orm.groups.c.slug == slug)
        if other_than is not None:
            stmt = stmt.where(orm.groups.c.id != other_than)
        return (await self.conn.execute(stmt)).first() is not None

    async def get_group(self, group_id: UUID, *, lock: bool = False) -> Group | None:
        """The group with its roster and its queue; lock=True holds its row until commit (seats change)."""
        if group_id in self._groups:
            return self._groups[group_id]
        stmt = select(orm.groups).where(orm.groups.c.id == group_id)
        if lock:
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        if row is None:
            return None
        ms, jr = orm.memberships, orm.join_requests
        roster = {
            r.member_id: Seat(r.role, r.joined_at)
            for r in await self.conn.execute(
                select(ms.c.member_id, ms.c.role, ms.c.joined_at).where(ms.c.group_id == group_id)
            )
        }
        queue = [
            JoinRequest(r.member_id, r.status, r.requested_at)
            for r in await self.conn.execute(
                select(jr.c.member_id, jr.c.status, jr.c.requested_at)
                .where(jr.c.group_id == group_id)
                .order_by(jr.c.position)
            )
        ]
        group = Group(
            id=row.id,
            name=row.name,
            slug=row.slug,
            region=row.region,
            description=row.description,
            topics=tuple(row.topics or ()),
            capacity=row.capacity,
            requires_approval=row.requires_approval,
            status=row.status,
            roster=dict(roster),
            queue=list(queue),
        )
        self._loaded_groups[group_id] = (roster, queue)
        self._groups[group_id] = group
        self.seen.append(group)
        return group

    async def save_group(self, group: Group) -> None:
        """Write the group's row, and its roster and queue as they differ from what was read."""
        await self.conn.execute(update(orm.groups).where(orm.groups.c.id == group.id).values(**self._group_row(group)))
        roster, queue = self._loaded_groups[group.id]
        ms, jr = orm.memberships, orm.join_requests
        gone = [m for m in roster if m not in group.roster]
        if gone:
            await self.conn.execute(delete(ms).where(ms.c.group_id == group.id, ms.c.member_id.in_(gone)))
        for member_id, seat in group.roster.items():
            before = roster.get(member_id)
            if before is None:
                await self.add_membership(member_id, group.id, seat.role, seat.joined_at)
            elif before.role != seat.role:
                await self.conn.execute(
                    update(ms).where(ms.c.group_id == group.id, ms.c.member_id == member_id).values(role=seat.role)
                )
        if queue != group.queue:  # a short list: written again whole, positions 0, 1, 2 …
            await self.conn.execute(delete(jr).where(jr.c.group_id == group.id))
            if group.queue:
                await self.conn.execute(
                    insert(jr),
                    [
                        {
                            "group_id": group.id,
                            "member_id": r.member_id,
                            "status": r.status,
                            "requested_at": r.requested_at,
                            "position": i,
                        }
                        for i, r in enumerate(group.queue)
                    ],
                )
        self._loaded_groups[group.id] = (dict(group.roster), list(group.queue))

    async def add_membership(self, member_id: UUID, group_id: UUID, role: str, joined_at: datetime) -> None:
        await self.conn.execute(
            _INSERT_MEMBERSHIP, {"member_id": member_id, "group_id": group_id, "role": role, "joined_at": joined_at}
        )

    async def groups_of(self, member_id: UUID) -> list[UUID]:
        """The groups the member holds a seat in or asked to join, in id order (the order groups are locked in)."""
        ms, jr = orm.memberships, orm.join_requests
        seats = select(ms.c.group_id).where(ms.c.member_id == member_id)
        asked = select(jr.c.group_id).where(jr.c.member_id == member_id)
        rows = await self.conn.execute(seats.union(asked))
        return sorted((r[0] for r in rows), key=str)

    # -- organisations ---------------------------------------------------------------------------------------------
    async def organisation(self, name: str, kind: str, cvr: str | None, new_id: Callable[[], UUID]) -> Organisation:
        """The organisation of this name (spaces and case aside) as stored, else a new one, stored now.

        Most registrations find theirs: one SELECT, which takes no lock. Only a new name upserts; two first
        registrations from one organisation may race there, and the loser takes the winner's row. (Upserting every
        time would save the SELECT but lock the organisation's row until commit, queueing all of its registrations.)
        """
        key = organisation_key(name)
        row = (await self.conn.execute(_ORG_BY_KEY, {"name_key": key})).first()
        if row is None:
            new = {"id": new_id(), "name": " ".join(name.split()), "name_key": key, "kind": kind, "cvr": cvr}
            row = (await self.conn.execute(_GET_OR_CREATE_ORG[self.conn.dialect.name], new)).one()
        return organisation_from_row(row)

    async def get_organisation(self, organisation_id: UUID, *, lock: bool = False) -> Organisation | None:
        stmt = select(*_ORG_COLUMNS).where(_org.c.id == organisation_id)
        if lock:
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        if row is None:
            return None
        org = organisation_from_row(row)
        self.seen.append(org)
        return org

    async def save_organisation(self, org: Organisation) -> bool:
        """Write the organisation's name, kind and CVR number. False (and nothing written) when another organisation
        has that name, spaces and case aside: the unique name key answers, as for a first registration, so two
        renames racing for one name cannot both win. In a savepoint: the refused statement leaves the transaction
        usable (PostgreSQL aborts a transaction at its first error)."""
        values = {"name": org.name, "name_key": organisation_key(org.name), "kind": org.kind, "cvr": org.cvr}
        try:
            async with self.conn.begin_nested():
                await self.conn.execute(update(_org).where(_org.c.id == org.id).values(**values))
        except IntegrityError:
            return False
        return True

    async def save_organisation_membership(self, org: Organisation) -> None:
        await self.conn.execute(
            update(_org)
            .where(_org.c.id == org.id)
            .values(membership_status=org.membership_status, membership_valid_until=org.membership_valid_until)
        )

    async def members_of_organisation(self, organisation_id: UUID) -> list[UUID]:
        rows = await self.conn.execute(
            select(orm.members.c.id).where(orm.members.c.organisation_id == organisation_id).order_by(orm.members.c.id)
        )
        return [r[0] for r in rows]

    # -- members ---------------------------------------------------------------------------------------------------
    async def add_member(self, member: Member) -> bool:
        """Save a new member; False (and nothing saved) when its email address is taken: the unique constraint
        answers, so a registration needs no SELECT first and two racing for one address cannot both win."""
        params = {
            "id": member.id,
            "name": member.name,
            "email": member.email,
            "phone": member.phone,
            "organisation_id": member.organisation.id,
            "job_title": member.job_title,
            "locale": member.locale,
            "registered_at": member.registered_at,
            "status": member.status,
        }
        if (await self.conn.execute(_ADD_MEMBER[self.conn.dialect.name], params)).first() is None:
            return False
        if member.consents:
            await self.conn.execute(
                _INSERT_CONSENT,
                [{"member_id": member.id, "kind": k, "given_at": at} for k, at in member.consents.items()],
            )
        self._members[member.id] = member
        self.seen.append(member)
        return True

    async def email_taken(self, email: str, other_than: UUID) -> bool:
        m = orm.members
        return (
            await self.conn.execute(select(m.c.id).where(m.c.email == email, m.c.id != other_than))
        ).first() is not None

    async def get_member(self, member_id: UUID, *, lock: bool = False) -> Member | None:
        """lock=True reads the member's and their organisation's rows FOR SHARE (a join: see the module's note)."""
        if member_id in self._members:
            return self._members[member_id]
        m, o = orm.members, orm.organisations
        stmt = (
            select(
                m,
                o.c.name.label("org_name"),
                o.c.kind,
                o.c.cvr,
                o.c.membership_status,
                o.c.membership_valid_until,
            )
            .join(o, o.c.id == m.c.organisation_id)
            .where(m.c.id == member_id)
        )
        if lock:
            stmt = stmt.with_for_update(read=True)
        row = (await self.conn.execute(stmt)).first()
        if row is None:
            return None
        roles = await self.conn.execute(
            select(orm.memberships.c.group_id, orm.memberships.c.role).where(orm.memberships.c.member_id == member_id)
        )
        consents = await self.conn.execute(
            select(orm.consents.c.kind, orm.consents.c.given_at).where(orm.consents.c.member_id == member_id)
        )
        member = member_from_row(row, memberships={g: r for g, r in roles}, consents={k: at for k, at in consents})
        self._members[member_id] = member
        self.seen.append(member)
        return member

    async def save_member(self, member: Member) -> None:
        """Write the member's profile and consents (the memberships are the groups' to write)."""
        m, c = orm.members, orm.consents
        await self.conn.execute(
            update(m)
            .where(m.c.id == member.id)
            .values(
                name=member.name,
                email=member.email,
                phone=member.phone,
                organisation_id=member.organisation.id,
                job_title=member.job_title,
                locale=member.locale,
                status=member.status,
            )
        )
        stored = {
            k: at for k, at in await self.conn.execute(select(c.c.kind, c.c.given_at).where(c.c.member_id == member.id))
        }
        gone = [k for k in stored if k not in member.consents]
        if gone:
            await self.conn.execute(delete(c).where(c.c.member_id == member.id, c.c.kind.in_(gone)))
        new = [
            {"member_id": member.id, "kind": k, "given_at": at} for k, at in member.consents.items() if k not in stored
        ]
        if new:
            await self.conn.execute(_INSERT_CONSENT, new)
