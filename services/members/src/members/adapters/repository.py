"""Load and save aggregates with SQLAlchemy Core on the unit of work's connection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from sqlalchemy import Insert, Table, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.model import Group, Member, Organisation
from . import orm

DialectInsert = Callable[[Table], postgresql.Insert | sqlite.Insert]
_org = orm.organisations
_ORG_COLUMNS = (_org.c.id, _org.c.name, _org.c.kind, _org.c.cvr)


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


class Repository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.seen: list[Group | Member] = []  # aggregates touched: their events go out with the commit

    async def add_group(self, group: Group) -> None:
        await self.conn.execute(
            insert(orm.groups).values(
                id=group.id,
                name=group.name,
                slug=group.slug,
                region=group.region,
                description=group.description,
                topics=list(group.topics),
                capacity=group.capacity,
                requires_approval=group.requires_approval,
            )
        )
        self.seen.append(group)

    async def group_slug_taken(self, slug: str) -> bool:
        return (await self.conn.execute(select(orm.groups.c.id).where(orm.groups.c.slug == slug))).first() is not None

    async def get_group(self, group_id: UUID) -> Group | None:
        row = (await self.conn.execute(select(orm.groups).where(orm.groups.c.id == group_id))).first()
        if row is None:
            return None
        return Group(
            id=row.id,
            name=row.name,
            slug=row.slug,
            region=row.region,
            description=row.description,
            topics=tuple(row.topics or ()),
            capacity=row.capacity,
            requires_approval=row.requires_approval,
        )

    async def organisation(self, name: str, kind: str, cvr: str | None, new_id: Callable[[], UUID]) -> Organisation:
        """The organisation of this name (spaces and case aside) as stored, else a new one, stored now.

        Most registrations find theirs: one SELECT, which takes no lock. Only a new name upserts; two first
        registrations from one organisation may race there, and the loser takes the winner's row. (Upserting every
        time would save the SELECT but lock the organisation's row until commit, queueing all of its registrations.)
        """
        key = " ".join(name.lower().split())[:200]  # lower() can lengthen a few letters (İ -> i̇)
        row = (await self.conn.execute(_ORG_BY_KEY, {"name_key": key})).first()
        if row is None:
            new = {"id": new_id(), "name": " ".join(name.split()), "name_key": key, "kind": kind, "cvr": cvr}
            row = (await self.conn.execute(_GET_OR_CREATE_ORG[self.conn.dialect.name], new)).one()
        return Organisation(id=row.id, name=row.name, kind=row.kind, cvr=row.cvr)

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
        }
        if (await self.conn.execute(_ADD_MEMBER[self.conn.dialect.name], params)).first() is None:
            return False
        self.seen.append(member)
        return True

    async def get_member(self, member_id: UUID) -> Member | None:
        m, o = orm.members, orm.organisations
        row = (
            await self.conn.execute(
                select(m, o.c.name.label("org_name"), o.c.kind, o.c.cvr)
                .join(o, o.c.id == m.c.organisation_id)
                .where(m.c.id == member_id)
            )
        ).first()
        if row is None:
            return None
        roles = (
            await self.conn.execute(
                select(orm.memberships.c.group_id, orm.memberships.c.role).where(
                    orm.memberships.c.member_id == member_id
                )
            )
        ).all()
        member = Member(
            id=row.id,
            name=row.name,
            email=row.email,
            phone=row.phone,
            organisation=Organisation(id=row.organisation_id, name=row.org_name, kind=row.kind, cvr=row.cvr),
            job_title=row.job_title,
            locale=row.locale,
            registered_at=row.registered_at,
            memberships={g: r for g, r in roles},
        )
        self.seen.append(member)
        return member

    async def add_membership(self, member_id: UUID, group_id: UUID, role: str, joined_at: datetime) -> None:
        await self.conn.execute(
            _INSERT_MEMBERSHIP, {"member_id": member_id, "group_id": group_id, "role": role, "joined_at": joined_at}
        )
