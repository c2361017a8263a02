"""Read side of topic proposals and calendar feeds: plain selects, and the meetings as iCalendar documents."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .adapters import orm
from .adapters.ics import CalendarAgendaItem, CalendarMeeting, calendar


# -- proposals ---------------------------------------------------------------------------------------------------
async def group_proposals(
    engine: AsyncEngine, group_id: UUID, *, viewer: UUID | None, status: str | None = None
) -> list[dict[str, Any]]:
    """The group's proposals, most backed first, then oldest first; `backed` says whether `viewer` backs each."""
    async with engine.connect() as conn:
        return await _proposals(conn, orm.proposals.c.group_id == group_id, viewer=viewer, status=status)


async def get_proposal(engine: AsyncEngine, proposal_id: UUID, *, viewer: UUID | None) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        rows = await _proposals(conn, orm.proposals.c.id == proposal_id, viewer=viewer)
    return rows[0] if rows else None


async def group_known(engine: AsyncEngine, group_id: UUID) -> bool:
    async with engine.connect() as conn:
        return (await conn.execute(select(orm.groups.c.id).where(orm.groups.c.id == group_id))).first() is not None


async def role_in(engine: AsyncEngine, group_id: UUID, member_id: UUID) -> str | None:
    gm = orm.group_members
    stmt = select(gm.c.role).where(gm.c.group_id == group_id, gm.c.member_id == member_id, gm.c.left_at.is_(None))
    async with engine.connect() as conn:
        return (await conn.execute(stmt)).scalar_one_or_none()


async def _proposals(
    conn: AsyncConnection, where: ColumnElement[bool], *, viewer: UUID | None, status: str | None = None
) -> list[dict[str, Any]]:
    p, b = orm.proposals, orm.proposal_backers
    backers = select(b.c.proposal_id, func.count().label("n")).group_by(b.c.proposal_id).subquery()
    stmt = select(p, func.coalesce(backers.c.n, 0).label("backers")).outerjoin(backers, backers.c.proposal_id == p.c.id)
    stmt = stmt.where(where)
    if status is not None:
        stmt = stmt.where(p.c.status == status)
    rows = (
        (await conn.execute(stmt.order_by(func.coalesce(backers.c.n, 0).desc(), p.c.submitted_at, p.c.id)))
        .mappings()
        .all()
    )
    mine: set[UUID] = set()
    if viewer is not None and rows:
        mine = set(
            (
                await conn.execute(
                    select(b.c.proposal_id).where(b.c.member_id == viewer, b.c.proposal_id.in_([r["id"] for r in rows]))
                )
            ).scalars()
        )
    return [_proposal(r, r["id"] in mine) for r in rows]


def _proposal(r: Any, backed: bool) -> dict[str, Any]:
    return {
        "proposal_id": r["id"],
        "group_id": r["group_id"],
        "member_id": r["member_id"],
        "kind": r["kind"],
        "title": r["title"],
        "description": r["description"],
        "for_meeting_id": r["for_meeting_id"],
        "speaker": r["speaker"],
        "speaker_organisation": r["speaker_organisation"],
        "status": r["status"],
        "submitted_at": r["submitted_at"],
        "decided_at": r["decided_at"],
        "meeting_id": r["meeting_id"],
        "agenda_position": r["agenda_position"],
        "reason": r["reason"],
        "backers": int(r["backers"]),
        "backed_by_you": backed,
    }


# -- calendar feeds ------------------------------------------------------------------------------------------------
async def feed_by_token(engine: AsyncEngine, token: str) -> dict[str, Any] | None:
    """The feed the token opens; None when there is none or it was revoked."""
    f = orm.calendar_feeds
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    async with engine.connect() as conn:
        row = (await conn.execute(select(f).where(f.c.token_sha256 == digest))).mappings().first()
    return dict(row) if row and row["revoked_at"] is None else None


async def member_feeds(engine: AsyncEngine, member_id: UUID) -> list[dict[str, Any]]:
    """The feeds a member made or owns (without their tokens, which are not kept)."""
    f = orm.calendar_feeds
    stmt = (
        select(f.c.id.label("feed_id"), f.c.group_id, f.c.member_id, f.c.created_at, f.c.revoked_at)
        .where((f.c.member_id == member_id) | (f.c.created_by == member_id))
        .order_by(f.c.created_at, f.c.id)
    )
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(stmt)).mappings().all()]


async def feed_document(engine: AsyncEngine, feed: dict[str, Any]) -> str:
    """The iCalendar document of a feed: a group's meetings, or those of every group the member is in."""
    m, g, gm = orm.meetings, orm.groups, orm.group_members
    async with engine.connect() as conn:
        if feed["group_id"] is not None:
            name = (await conn.execute(select(g.c.name).where(g.c.id == feed["group_id"]))).scalar_one_or_none()
            where: ColumnElement[bool] = m.c.group_id == feed["group_id"]
            title = name or "Netværk"
        else:
            groups = select(gm.c.group_id).where(gm.c.member_id == feed["member_id"], gm.c.left_at.is_(None))
            where = m.c.group_id.in_(groups)
            title = "Mine netværksmøder"
        return calendar(title, await calendar_meetings(conn, where, with_group=feed["group_id"] is None))


async def meeting_document(engine: AsyncEngine, meeting_id: UUID) -> str | None:
    async with engine.connect() as conn:
        meetings = await calendar_meetings(conn, orm.meetings.c.id == meeting_id, with_group=True)
    return calendar(meetings[0].title, meetings) if meetings else None


async def calendar_meetings(
    conn: AsyncConnection, where: ColumnElement[bool], *, with_group: bool
) -> list[CalendarMeeting]:
    """The meetings for a calendar, by start time; `with_group`: each summary names its group (a member's feed holds
    several groups)."""
    m, a, g = orm.meetings, orm.agenda_items, orm.groups
    stmt = (
        select(
            m.c.id,
            m.c.title,
            m.c.starts_at,
            m.c.ends_at,
            m.c.timezone,
            m.c.sequence,
            m.c.scheduled_at,
            m.c.status,
            m.c.venue_name,
            m.c.venue_address,
            m.c.online_url,
            g.c.name.label("group_name"),
        )
        .outerjoin(g, g.c.id == m.c.group_id)
        .where(where)
        .order_by(m.c.starts_at, m.c.id)
    )
    rows = (await conn.execute(stmt)).all()
    agendas: dict[UUID, list[CalendarAgendaItem]] = {r.id: [] for r in rows}
    ids = list(agendas)
    for i in range(0, len(ids), 500):
        items = await conn.execute(
            select(a.c.meeting_id, a.c.kind, a.c.title, a.c.minutes, a.c.speaker, a.c.speaker_organisation)
            .where(a.c.meeting_id.in_(ids[i : i + 500]))
            .order_by(a.c.meeting_id, a.c.position)
        )
        for it in items:
            agendas[it.meeting_id].append(
                CalendarAgendaItem(it.kind, it.title, it.minutes, it.speaker, it.speaker_organisation)
            )
    return [
        CalendarMeeting(
            meeting_id=r.id,
            title=r.title,
            starts_at=r.starts_at,
            ends_at=r.ends_at,
            timezone=r.timezone,
            sequence=r.sequence,
            changed_at=r.scheduled_at,
            status=r.status,
            group_name=r.group_name if with_group else None,
            venue_name=r.venue_name,
            venue_address=r.venue_address,
            online_url=r.online_url,
            agenda=tuple(agendas[r.id]),
        )
        for r in rows
    ]


# -- GDPR ------------------------------------------------------------------------------------------------------------
async def member_part(conn: AsyncConnection, member_id: UUID) -> dict[str, Any]:
    """What proposals, backings and feeds hold about the member (for views.member_export)."""
    p, b, f = orm.proposals, orm.proposal_backers, orm.calendar_feeds
    proposals = (
        (
            await conn.execute(
                select(
                    p.c.id.label("proposal_id"),
                    p.c.group_id,
                    p.c.kind,
                    p.c.title,
                    p.c.description,
                    p.c.status,
                    p.c.submitted_at,
                )
                .where(p.c.member_id == member_id)
                .order_by(p.c.submitted_at)
            )
        )
        .mappings()
        .all()
    )
    backed = (
        (
            await conn.execute(
                select(b.c.proposal_id, b.c.backed_at).where(b.c.member_id == member_id).order_by(b.c.backed_at)
            )
        )
        .mappings()
        .all()
    )
    feeds = (
        (
            await conn.execute(
                select(f.c.id.label("feed_id"), f.c.group_id, f.c.member_id, f.c.created_at, f.c.revoked_at)
                .where((f.c.member_id == member_id) | (f.c.created_by == member_id))
                .order_by(f.c.created_at)
            )
        )
        .mappings()
        .all()
    )
    return {
        "proposals": [dict(r) for r in proposals],
        "backed_proposals": [dict(r) for r in backed],
        "calendar_feeds": [dict(r) for r in feeds],
    }
