"""Read side of the seats: a meeting's answers and waiting list, one answer, a member's history, the export part."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .adapters import orm


async def meeting_group(engine: AsyncEngine, meeting_id: UUID) -> UUID | None:
    async with engine.connect() as conn:
        m = orm.meetings
        return (await conn.execute(select(m.c.group_id).where(m.c.id == meeting_id))).scalar_one_or_none()


async def role_of(engine: AsyncEngine, group_id: UUID, member_id: UUID) -> str | None:
    gm = orm.group_members
    async with engine.connect() as conn:
        stmt = select(gm.c.role).where(gm.c.group_id == group_id, gm.c.member_id == member_id, gm.c.left_at.is_(None))
        return (await conn.execute(stmt)).scalar_one_or_none()


async def seats(engine: AsyncEngine, meeting_id: UUID) -> dict[str, Any] | None:
    """The meeting's answers: those with a seat by arrival, the waiting list in order, then the rest."""
    m = orm.meetings
    async with engine.connect() as conn:
        meeting = (await conn.execute(select(m.c.id, m.c.capacity).where(m.c.id == meeting_id))).first()
        if meeting is None:
            return None
        answers = await _answers(conn, meeting_id)
    confirmed = [a for a in answers if a["status"] == "confirmed"]
    waiting = [a for a in answers if a["status"] == "waitlisted"]
    rest = [a for a in answers if a["status"] not in ("confirmed", "waitlisted")]
    return {
        "meeting_id": meeting_id,
        "capacity": meeting.capacity,
        "confirmed": len(confirmed),
        "waitlisted": len(waiting),
        "answers": confirmed + waiting + rest,
    }


async def answer(engine: AsyncEngine, meeting_id: UUID, member_id: UUID) -> dict[str, Any] | None:
    """One answer, its place in line counted by the database (not by reading the meeting's every answer)."""
    r = orm.rsvps
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(r).where(r.c.meeting_id == meeting_id, r.c.member_id == member_id)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        position = None
        if row["status"] == "waitlisted":
            ahead = select(func.count()).where(
                r.c.meeting_id == meeting_id, r.c.status == "waitlisted", r.c.arrival < row["arrival"]
            )
            position = (await conn.execute(ahead)).scalar_one() + 1
    return _answer(row, position)


async def attendance(engine: AsyncEngine, meeting_id: UUID, member_id: UUID) -> dict[str, Any] | None:
    at = orm.attendance
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(at).where(at.c.meeting_id == meeting_id, at.c.member_id == member_id)))
            .mappings()
            .first()
        )
    return dict(row) if row else None


async def member_history(engine: AsyncEngine, member_id: UUID) -> list[dict[str, Any]]:
    """Every meeting the member answered or was recorded at, by start time, with the answer and the attendance."""
    m, r, at = orm.meetings, orm.rsvps, orm.attendance
    async with engine.connect() as conn:
        answered = (await conn.execute(select(r.c.meeting_id).where(r.c.member_id == member_id))).scalars().all()
        attended = (await conn.execute(select(at.c.meeting_id).where(at.c.member_id == member_id))).scalars().all()
        ids = sorted(set(answered) | set(attended))
        if not ids:
            return []
        rows = (
            (
                await conn.execute(
                    select(m.c.id, m.c.group_id, m.c.title, m.c.starts_at, m.c.ends_at, m.c.status)
                    .where(m.c.id.in_(ids))
                    .order_by(m.c.starts_at, m.c.id)
                )
            )
            .mappings()
            .all()
        )
        answers = await own_answers(conn, member_id)
        presence = {
            row.meeting_id: row.attended
            for row in await conn.execute(select(at.c.meeting_id, at.c.attended).where(at.c.member_id == member_id))
        }
    return [
        {
            "meeting_id": row["id"],
            "group_id": row["group_id"],
            "title": row["title"],
            "starts_at": row["starts_at"],
            "ends_at": row["ends_at"],
            "meeting_status": row["status"],
            "rsvp": answers.get(row["id"]),
            "attended": presence.get(row["id"]),
        }
        for row in rows
    ]


async def own_answers(
    conn: AsyncConnection, member_id: UUID, meeting_ids: list[UUID] | None = None
) -> dict[UUID, dict[str, Any]]:
    """The member's own answers (to these meetings, or to all) in one query; a place in line is counted only where
    they wait, not by reading every answer to every meeting they answered."""
    r = orm.rsvps
    where = r.c.member_id == member_id
    if meeting_ids is not None:
        where = where & r.c.meeting_id.in_(meeting_ids)
    answers = {}
    for row in (await conn.execute(select(r).where(where))).mappings().all():
        position = None
        if row["status"] == "waitlisted":
            ahead = select(func.count()).where(
                r.c.meeting_id == row["meeting_id"], r.c.status == "waitlisted", r.c.arrival < row["arrival"]
            )
            position = (await conn.execute(ahead)).scalar_one() + 1
        answers[row["meeting_id"]] = _answer(row, position)
    return answers


async def member_part(conn: AsyncConnection, member_id: UUID) -> dict[str, Any]:
    """For the GDPR export: the member's answers, attendance and the organisation id this service keeps."""
    r, at, o = orm.rsvps, orm.attendance, orm.member_organisations
    rsvps = await conn.execute(
        select(r.c.meeting_id, r.c.response, r.c.status, r.c.answered_at, r.c.on_behalf_of)
        .where(r.c.member_id == member_id)
        .order_by(r.c.answered_at, r.c.meeting_id)
    )
    presence = await conn.execute(
        select(at.c.meeting_id, at.c.attended, at.c.recorded_at)
        .where(at.c.member_id == member_id)
        .order_by(at.c.recorded_at, at.c.meeting_id)
    )
    organisation = await conn.execute(select(o.c.organisation_id, o.c.updated_at).where(o.c.member_id == member_id))
    return {
        "organisation": [dict(x) for x in organisation.mappings()],
        "rsvps": [dict(x) for x in rsvps.mappings()],
        "attendance": [dict(x) for x in presence.mappings()],
    }


async def _answers(conn: AsyncConnection, meeting_id: UUID) -> list[dict[str, Any]]:
    r = orm.rsvps
    rows = (
        (await conn.execute(select(r).where(r.c.meeting_id == meeting_id).order_by(r.c.arrival, r.c.member_id)))
        .mappings()
        .all()
    )
    position = 0
    out = []
    for row in rows:
        waitlisted = row["status"] == "waitlisted"
        position += waitlisted
        out.append(_answer(row, position if waitlisted else None))
    return out


def _answer(row: RowMapping, position: int | None) -> dict[str, Any]:
    return {
        "meeting_id": row["meeting_id"],
        "member_id": row["member_id"],
        "response": row["response"],
        "status": row["status"],
        "waitlist_position": position,
        "arrival": row["arrival"],
        "on_behalf_of": row["on_behalf_of"],
        "answered_at": row["answered_at"],
    }
