"""Read side: the delivery log, a member's preferences and what this service holds about a member."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from netvaerk_shared import metrics

from .adapters import orm
from .domain.model import CATEGORIES

_LOG_COLUMNS = [
    orm.deliveries.c[n]
    for n in (
        "id",
        "member_id",
        "kind",
        "channel",
        "cause_event_id",
        "status",
        "attempts",
        "subject",
        "message_id",
        "last_error",
        "created_at",
        "sent_at",
        "next_attempt_at",
    )
]


async def deliveries(
    engine: AsyncEngine,
    *,
    member_id: UUID | None = None,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    stmt = select(*_LOG_COLUMNS).order_by(orm.deliveries.c.created_at.desc()).limit(limit).offset(offset)
    if member_id is not None:
        stmt = stmt.where(orm.deliveries.c.member_id == member_id)
    if status is not None:
        stmt = stmt.where(orm.deliveries.c.status == status)
    if kind is not None:
        stmt = stmt.where(orm.deliveries.c.kind == kind)
    async with engine.connect() as conn:
        return [_log(r) for r in (await conn.execute(stmt)).mappings()]


def _log(row: RowMapping) -> dict[str, Any]:
    out = dict(row)
    out["notification_id"] = out.pop("id")
    return out


async def preferences(engine: AsyncEngine, member_id: UUID) -> dict[str, Any] | None:
    """Every category's choice (the defaults where none was made: email on, the profile's language); None for a
    member this service has no contact of."""
    c, p = orm.contacts, orm.preferences
    async with engine.connect() as conn:
        if (await conn.execute(select(c.c.member_id).where(c.c.member_id == member_id))).first() is None:
            return None
        rows = {r["category"]: r for r in (await conn.execute(select(p).where(p.c.member_id == member_id))).mappings()}
    out: dict[str, Any] = {"member_id": member_id}
    for category in CATEGORIES:
        row = rows.get(category)
        out[category] = (
            {"email": bool(row["email"]), "language": row["language"]} if row else {"email": True, "language": None}
        )
    return out


async def member_export(engine: AsyncEngine, member_id: UUID) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        contact = (
            (await conn.execute(select(orm.contacts).where(orm.contacts.c.member_id == member_id))).mappings().first()
        )
        groups = (
            (await conn.execute(select(orm.group_members).where(orm.group_members.c.member_id == member_id)))
            .mappings()
            .all()
        )
        p = orm.preferences
        chosen = (await conn.execute(select(p).where(p.c.member_id == member_id))).mappings().all()
    sent = await deliveries(engine, member_id=member_id, limit=10_000)
    if contact is None and not groups and not sent and not chosen:
        return None
    return {
        "service": "notifications",
        "contact": dict(contact) if contact else None,
        "groups": [dict(g) for g in groups],
        "preferences": [dict(r) for r in chosen],
        "deliveries": sent,
    }


deliveries_failed = Gauge(
    "deliveries_failed",
    "Deliveries that ended failed (GET /deliveries?status=failed; "
    "POST /admin/deliveries/{notification_id}/retry sends one again)",
    registry=metrics.REGISTRY,
)
deliveries_pending = Gauge("deliveries_pending", "Deliveries owed and not yet sent", registry=metrics.REGISTRY)


async def refresh_delivery_gauges(engine: AsyncEngine) -> None:
    d = orm.deliveries
    async with engine.connect() as conn:
        counts: dict[str, int] = dict(
            (
                await conn.execute(
                    select(d.c.status, func.count()).where(d.c.status.in_(("failed", "pending"))).group_by(d.c.status)
                )
            ).all()
        )
    deliveries_failed.set(counts.get("failed", 0))
    deliveries_pending.set(counts.get("pending", 0))
