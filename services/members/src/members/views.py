"""Read side: plain selects for lists and pages (who may see what is the routes' to check)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, exists, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from .adapters import orm
from .domain.model import Group, Member, Organisation


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
        consents = (
            (
                await conn.execute(
                    select(orm.consents.c.kind, orm.consents.c.given_at)
                    .where(orm.consents.c.member_id == member_id)
                    .order_by(orm.consents.c.kind)
                )
            )
            .mappings()
            .all()
        )
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
        "status": row["status"],
        "consents": [dict(c) for c in consents],
        "groups": [dict(g) for g in groups],
    }


def group_out(group: Group) -> dict[str, Any]:
    """A group just created or changed, shaped as get_group shapes it (no second read)."""
    return {
        "group_id": group.id,
        "name": group.name,
        "slug": group.slug,
        "region": group.region,
        "description": group.description,
        "topics": list(group.topics),
        "capacity": group.capacity,
        "requires_approval": group.requires_approval,
        "status": group.status,
        "members": [
            {"member_id": m, "role": seat.role, "joined_at": seat.joined_at}
            for m, seat in sorted(group.roster.items(), key=lambda item: item[1].joined_at)
        ],
    }


def member_out(member: Member) -> dict[str, Any]:
    """A member just registered, shaped as get_member shapes it (no second read; groups are left out)."""
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
        "status": member.status,
        "consents": [{"kind": k, "given_at": at} for k, at in sorted(member.consents.items())],
        "groups": [],
    }


async def roster_of(engine: AsyncEngine, group_id: UUID) -> dict[UUID, str] | None:
    """Who holds a seat in the group (member id -> role); None when there is no such group."""
    async with engine.connect() as conn:
        if (await conn.execute(select(orm.groups.c.id).where(orm.groups.c.id == group_id))).first() is None:
            return None
        rows = await conn.execute(
            select(orm.memberships.c.member_id, orm.memberships.c.role).where(orm.memberships.c.group_id == group_id)
        )
        return {r.member_id: r.role for r in rows}


async def directory(engine: AsyncEngine, group_id: UUID) -> list[dict[str, Any]]:
    """The group's members as its members see them: email and phone only where that member consented."""
    m, o, ms, c = orm.members, orm.organisations, orm.memberships, orm.consents
    shows_email = exists().where(c.c.member_id == m.c.id, c.c.kind == "show_email")
    shows_phone = exists().where(c.c.member_id == m.c.id, c.c.kind == "show_phone")
    stmt = (
        select(
            m.c.id,
            m.c.name,
            m.c.job_title,
            m.c.email,
            m.c.phone,
            shows_email.label("shows_email"),
            shows_phone.label("shows_phone"),
            o.c.id.label("organisation_id"),
            o.c.name.label("organisation_name"),
            o.c.kind.label("organisation_kind"),
            ms.c.role,
            ms.c.joined_at,
        )
        .join(m, m.c.id == ms.c.member_id)
        .join(o, o.c.id == m.c.organisation_id)
        .where(ms.c.group_id == group_id)
        .order_by(m.c.name, m.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    return [
        {
            "member_id": r["id"],
            "name": r["name"],
            "organisation": {
                "id": r["organisation_id"],
                "name": r["organisation_name"],
                "kind": r["organisation_kind"],
            },
            "job_title": r["job_title"],
            "role": r["role"],
            "joined_at": r["joined_at"],
            "email": r["email"] if r["shows_email"] else None,
            "phone": r["phone"] if r["shows_phone"] else None,
        }
        for r in rows
    ]


async def join_requests(engine: AsyncEngine, group_id: UUID) -> list[dict[str, Any]]:
    """The group's waiting requests in order: pending approval, and the waiting list (first come, first served)."""
    jr = orm.join_requests
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(jr.c.member_id, jr.c.status, jr.c.requested_at)
            .where(jr.c.group_id == group_id)
            .order_by(jr.c.position)
        )
        return [dict(r) for r in rows.mappings()]


def _organisation_out(row: Any) -> dict[str, Any]:
    membership = None
    if row["membership_status"] is not None:
        membership = {"status": row["membership_status"], "valid_until": row["membership_valid_until"]}
    return {"id": row["id"], "name": row["name"], "kind": row["kind"], "cvr": row["cvr"], "membership": membership}


async def list_organisations(engine: AsyncEngine) -> list[dict[str, Any]]:
    o, m = orm.organisations, orm.members
    counts = select(m.c.organisation_id, func.count().label("n")).group_by(m.c.organisation_id).subquery()
    stmt = (
        select(o, func.coalesce(counts.c.n, 0).label("member_count"))
        .outerjoin(counts, counts.c.organisation_id == o.c.id)
        .order_by(o.c.name_key)
    )
    async with engine.connect() as conn:
        return [
            {**_organisation_out(r), "member_count": r["member_count"]} for r in (await conn.execute(stmt)).mappings()
        ]


async def get_organisation(engine: AsyncEngine, organisation_id: UUID) -> dict[str, Any] | None:
    o, m = orm.organisations, orm.members
    async with engine.connect() as conn:
        row = (await conn.execute(select(o).where(o.c.id == organisation_id))).mappings().first()
        if row is None:
            return None
        staff = await conn.execute(
            select(m.c.id.label("member_id"), m.c.name, m.c.job_title, m.c.status)
            .where(m.c.organisation_id == organisation_id)
            .order_by(m.c.name, m.c.id)
        )
        return {**_organisation_out(row), "members": [dict(r) for r in staff.mappings()]}


def organisation_out(org: Organisation) -> dict[str, Any]:
    membership = None
    if org.membership_status is not None:
        membership = {"status": org.membership_status, "valid_until": org.membership_valid_until}
    return {"id": org.id, "name": org.name, "kind": org.kind, "cvr": org.cvr, "membership": membership}
