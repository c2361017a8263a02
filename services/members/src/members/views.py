"""Read side: plain selects for lists and pages."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from .adapters import orm
from .domain.model import Group, Member


async def list_groups(engine: AsyncEngine) -> list[dict[str, Any]]:
    g, ms = orm.groups, orm.memberships
    counts = select(ms.c.group_id, func.count().label("n")).group_by(ms.c.group_id).subquery()
    stmt = (
        select(g, func.coalesce(counts.c.n, 0).label("member_count"))
        .outerjoin(counts, counts.c.group_id == g.c.id)
        .order_by(g.c.name)
    )
    async with engine.connect() as conn:
        return [_group(r) for r in (await conn.execute(stmt)).mappings()]


async def get_group(engine: AsyncEngine, group_id: UUID) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(orm.groups).where(orm.groups.c.id == group_id))).mappings().first()
        if row is None:
            return None
        roster = (
            (
                await conn.execute(
                    select(orm.memberships.c.member_id, orm.memberships.c.role, orm.memberships.c.joined_at)
                    .where(orm.memberships.c.group_id == group_id)
                    .order_by(orm.memberships.c.joined_at)
                )
            )
            .mappings()
            .all()
        )
    out = _group(row)
    out["members"] = [dict(r) for r in roster]
    return out


def _group(row: RowMapping) -> dict[str, Any]:
    out = dict(row)
    out["group_id"] = out.pop("id")
    out["topics"] = list(out.get("topics") or [])
    return out


async def get_member(engine: AsyncEngine, member_id: UUID) -> dict[str, Any] | None:
    m, o = orm.members, orm.organisations
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(
                        m,
                        o.c.name.label("organisation_name"),
                        o.c.kind.label("organisation_kind"),
                        o.c.cvr.label("organisation_cvr"),
                    )
                    .join(o, o.c.id == m.c.organisation_id)
                    .where(m.c.id == member_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        groups = (
            (
                await conn.execute(
                    select(
                        orm.memberships.c.group_id,
                        orm.groups.c.name,
                        orm.memberships.c.role,
                        orm.memberships.c.joined_at,
                    )
                    .join(orm.groups, orm.groups.c.id == orm.memberships.c.group_id)
                    .where(orm.memberships.c.member_id == member_id)
                )
            )
            .mappings()
            .all()
        )
    return {
        "member_id": row["id"],
        "name": row["name"],
        "email": row["email"],
        "phone": row["phone"],
        "organisation": {
            "id": row["organisation_id"],
            "name": row["organisation_name"],
            "kind": row["organisation_kind"],
            "cvr": row["organisation_cvr"],
        },
        "job_title": row["job_title"],
        "locale": row["locale"],
        "registered_at": row["registered_at"],
        "groups": [dict(g) for g in groups],
    }


def group_out(group: Group) -> dict[str, Any]:
    """A group just created, shaped as get_group shapes it (no second read)."""
    return {
        "group_id": group.id,
        "name": group.name,
        "slug": group.slug,
        "region": group.region,
        "description": group.description,
        "topics": list(group.topics),
        "capacity": group.capacity,
        "requires_approval": group.requires_approval,
        "members": [],
    }


def member_out(member: Member) -> dict[str, Any]:
    """A member just registered, shaped as get_member shapes it (no second read)."""
    org = member.organisation
    return {
        "member_id": member.id,
        "name": member.name,
        "email": member.email,
        "phone": member.phone,
        "organisation": {"id": org.id, "name": org.name, "kind": org.kind, "cvr": org.cvr},
        "job_title": member.job_title,
        "locale": member.locale,
        "registered_at": member.registered_at,
        "groups": [],
    }
