"""Load and save aggregates with SQLAlchemy Core on the unit of work's connection."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from netvaerk_shared.db import dialect_insert

from ..domain.model import Group, Member, Organisation
from . import orm

# The hot statements are built once (parameters bound at execution): building them per call cost a fifth of a
# registration's CPU.
_ORG_BY_KEY = select(orm.organisations).where(orm.organisations.c.name_key == bindparam("key"))
_EMAIL_TAKEN = select(orm.members.c.id).where(orm.members.c.email == bindparam("email"))
_INSERT_MEMBER = insert(orm.members)
_INSERT_MEMBERSHIP = insert(orm.memberships)


class Repository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.seen: list = []  # aggregates touched: their events go out with the commit

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

    async def organisation(self, name: str, kind: str, cvr: str | None, new_id) -> Organisation:
        key = " ".join(name.lower().split())[:200]  # lower() can lengthen a few letters (İ -> i̇)
        row = (await self.conn.execute(_ORG_BY_KEY, {"key": key})).first()
        if row is not None:
            return Organisation(id=row.id, name=row.name, kind=row.kind, cvr=row.cvr)
        org = Organisation(id=new_id(), name=" ".join(name.split()), kind=kind, cvr=cvr)
        # two first registrations from one organisation may race here: the loser takes the winner's row
        created = (
            await self.conn.execute(
                dialect_insert(self.conn, orm.organisations)
                .on_conflict_do_nothing(index_elements=["name_key"])
                .returning(orm.organisations.c.id),
                {"id": org.id, "name": org.name, "name_key": key, "kind": org.kind, "cvr": org.cvr},
            )
        ).first()
        if created is None:
            row = (await self.conn.execute(_ORG_BY_KEY, {"key": key})).first()
            return Organisation(id=row.id, name=row.name, kind=row.kind, cvr=row.cvr)
        return org

    async def email_taken(self, email: str) -> bool:
        return (await self.conn.execute(_EMAIL_TAKEN, {"email": email})).first() is not None

    async def add_member(self, member: Member) -> None:
        await self.conn.execute(
            _INSERT_MEMBER,
            {
                "id": member.id,
                "name": member.name,
                "email": member.email,
                "phone": member.phone,
                "organisation_id": member.organisation.id,
                "job_title": member.job_title,
                "locale": member.locale,
                "registered_at": member.registered_at,
            },
        )
        self.seen.append(member)

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

    async def add_membership(self, member_id: UUID, group_id: UUID, role: str, joined_at) -> None:
        await self.conn.execute(
            _INSERT_MEMBERSHIP, {"member_id": member_id, "group_id": group_id, "role": role, "joined_at": joined_at}
        )
