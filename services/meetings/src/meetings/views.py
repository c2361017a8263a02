"""Read side: plain selects for meetings, the roster copy and the GDPR export."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Row, RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import proposal_views, seat_views
from .adapters import orm


async def get_meeting(engine: AsyncEngine, meeting_id: UUID) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        rows = await _meetings(conn, orm.meetings.c.id == meeting_id)
    return rows[0] if rows else None


async def group_meetings(engine: AsyncEngine, group_id: UUID) -> list[dict[str, Any]] | None:
    """The group's meetings by start time; None when the group is not in the roster copy."""
    async with engine.connect() as conn:
        if await _group_row(conn, group_id) is None:
            return None
        return await _meetings(conn, orm.meetings.c.group_id == group_id)


async def upcoming_for(engine: AsyncEngine, member_id: UUID, now: datetime, limit: int) -> list[dict[str, Any]]:
    """The coming meetings (not ended, not cancelled) of the groups the member is in, soonest first, each with the
    member's own answer: what a member's overview shows, in two queries and a count per waiting place."""
    m, gm = orm.meetings, orm.group_members
    groups = select(gm.c.group_id).where(gm.c.member_id == member_id, gm.c.left_at.is_(None))
    async with engine.connect() as conn:
        where = m.c.group_id.in_(groups) & (m.c.ends_at > now) & (m.c.status != "cancelled")
        meetings = await _meetings(conn, where, limit=limit)
        answers = await seat_views.own_answers(conn, member_id, [x["meeting_id"] for x in meetings])
    return [{"meeting": x, "rsvp": answers.get(x["meeting_id"])} for x in meetings]


async def get_group(engine: AsyncEngine, group_id: UUID) -> dict[str, Any] | None:
    gm = orm.group_members
    async with engine.connect() as conn:
        row = await _group_row(conn, group_id)
        if row is None:
            return None
        roster = (
            (
                await conn.execute(
                    select(gm.c.member_id, gm.c.role, gm.c.joined_at)
                    .where(gm.c.group_id == group_id, gm.c.left_at.is_(None))  # who left is no longer in it
                    .order_by(gm.c.joined_at, gm.c.member_id)
                )
            )
            .mappings()
            .all()
        )
    return {
        "group_id": row.id,
        "name": row.name,
        "slug": row.slug,
        "region": row.region,
        "status": row.status,
        "member_ids": [r["member_id"] for r in roster],
        "members": [dict(r) for r in roster],
    }


async def member_export(engine: AsyncEngine, member_id: UUID) -> dict[str, Any]:
    gm, g = orm.group_members, orm.groups
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    select(gm.c.group_id, g.c.name.label("group_name"), gm.c.role, gm.c.joined_at, gm.c.left_at)
                    .outerjoin(g, g.c.id == gm.c.group_id)  # the membership may have come before its group
                    .where(gm.c.member_id == member_id)
                    .order_by(gm.c.joined_at)
                )
            )
            .mappings()
            .all()
        )
        proposals_and_feeds = await proposal_views.member_part(conn, member_id)
        seats = await seat_views.member_part(conn, member_id)  # answers, attendance, organisation id
    return {
        "service": "meetings",
        "member_id": member_id,
        "group_memberships": [dict(r) for r in rows],
        **proposals_and_feeds,
        **seats,
    }


def holds_something(data: dict[str, Any]) -> bool:
    """Whether an export found anything about the member (its every list but the envelope's fields)."""
    return any(value for value in data.values() if isinstance(value, list))


async def member_part(engine: AsyncEngine, member_id: UUID) -> dict[str, Any] | None:
    """This service's part of a GDPR export (as `GET /members/{id}/export`): None when it holds nothing."""
    data = await member_export(engine, member_id)
    return data if holds_something(data) else None


async def _group_row(conn: AsyncConnection, group_id: UUID) -> Row[Any] | None:
    return (await conn.execute(select(orm.groups).where(orm.groups.c.id == group_id))).first()


async def _meetings(
    conn: AsyncConnection, where: ColumnElement[bool], limit: int | None = None
) -> list[dict[str, Any]]:
    m, a = orm.meetings, orm.agenda_items
    query = select(m).where(where).order_by(m.c.starts_at, m.c.id)
    rows = (await conn.execute(query if limit is None else query.limit(limit))).mappings().all()
    if not rows:
        return []
    items = (
        (
            await conn.execute(
                select(a).where(a.c.meeting_id.in_([r["id"] for r in rows])).order_by(a.c.meeting_id, a.c.position)
            )
        )
        .mappings()
        .all()
    )
    agendas: dict[UUID, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
    for item in items:
        agendas[item["meeting_id"]].append(
            {
                "position": item["position"],
                "kind": item["kind"],
                "title": item["title"],
                "speaker": item["speaker"],
                "speaker_organisation": item["speaker_organisation"],
                "minutes": item["minutes"],
                "tags": list(item["tags"] or []),
                "materials": list(item["materials"] or []),
            }
        )
    return [_meeting(r, agendas[r["id"]]) for r in rows]


def _meeting(row: RowMapping, agenda: list[dict[str, Any]]) -> dict[str, Any]:
    venue = None
    if row["venue_name"] is not None:
        venue = {
            "name": row["venue_name"],
            "address": row["venue_address"],
            "host_organisation": row["venue_host_organisation"],
        }
    return {
        "meeting_id": row["id"],
        "group_id": row["group_id"],
        "title": row["title"],
        "starts_at": row["starts_at"],
        "ends_at": row["ends_at"],
        "timezone": row["timezone"],
        "venue": venue,
        "online_url": row["online_url"],
        "capacity": row["capacity"],
        "agenda": agenda,
        "sequence": row["sequence"],
        "scheduled_at": row["scheduled_at"],
        "status": row["status"],
        "rsvp_deadline": row["rsvp_deadline"],
        "series_id": row["series_id"],
        "cancel_reason": row["cancel_reason"],
        "minutes": row["minutes"],
    }
