"""Read side: the delivery log, a member's preferences, a group's reminder settings and what this service holds
about a member."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from netvaerk_shared import metrics

from .adapters import orm
from .domain.model import CATEGORIES, ReminderSettings

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
        r = orm.rsvps
        answers = (await conn.execute(select(r).where(r.c.member_id == member_id))).mappings().all()
    sent = await deliveries(engine, member_id=member_id, limit=10_000)
    if contact is None and not groups and not sent and not chosen and not answers:
        return None
    return {
        "service": "notifications",
        "contact": dict(contact) if contact else None,
        "groups": [dict(g) for g in groups],
        "preferences": [dict(r) for r in chosen],
        "rsvps": [dict(a) for a in answers],
        "deliveries": sent,
    }


async def reminder_settings(engine: AsyncEngine, group_id: UUID, member_id: UUID | None) -> dict[str, Any]:
    """A group's reminder timings (the defaults when it chose none), and `caller_role`: `member_id`'s role in the
    group now (None: not a member, or no member asked)."""
    s, gm = orm.reminder_settings, orm.group_members
    async with engine.connect() as conn:
        row = (await conn.execute(select(s).where(s.c.group_id == group_id))).mappings().first()
        role = None
        if member_id is not None:
            stmt = select(gm.c.role).where(
                gm.c.group_id == group_id, gm.c.member_id == member_id, gm.c.left_at.is_(None)
            )
            role = (await conn.execute(stmt)).scalar_one_or_none()
    chosen = (
        ReminderSettings(tuple(row["reminder_days"]), row["nudge_days"], row["local_hour"])
        if row
        else ReminderSettings()
    )
    return {
        "group_id": group_id,
        "reminder_days": list(chosen.reminder_days),
        "nudge_days": chosen.nudge_days,
        "local_hour": chosen.local_hour,
        "default": row is None,
        "caller_role": role,
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


# -- webhooks and deliverability (the administration's) -----------------------------------------------------------
_WEBHOOK_COLUMNS = [orm.webhooks.c[n] for n in ("id", "name", "url", "kinds", "organisation_id", "created_at")]
_WEBHOOK_DELIVERY_COLUMNS = [
    orm.webhook_deliveries.c[n]
    for n in (
        "id",
        "webhook_id",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "last_status",
        "last_error",
        "created_at",
        "next_attempt_at",
        "delivered_at",
    )
]


async def webhooks(engine: AsyncEngine, webhook_id: UUID | None = None) -> list[dict[str, Any]]:
    """Subscribers as the API shows them: never the secret; `rotating_until` while a previous secret still signs."""
    w = orm.webhooks
    stmt = select(*_WEBHOOK_COLUMNS, w.c.previous_until).order_by(w.c.created_at)
    if webhook_id is not None:
        stmt = stmt.where(w.c.id == webhook_id)
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    out = []
    for row in rows:
        item = dict(row)
        until = item.pop("previous_until")
        item["rotating_until"] = until if until is not None and until > now else None
        out.append(item)
    return out


async def webhook_deliveries(
    engine: AsyncEngine, webhook_id: UUID, *, status: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    wd = orm.webhook_deliveries
    stmt = (
        select(*_WEBHOOK_DELIVERY_COLUMNS)
        .where(wd.c.webhook_id == webhook_id)
        .order_by(wd.c.created_at.desc())
        .limit(limit)
        .offset(offset)
    )
    if status is not None:
        stmt = stmt.where(wd.c.status == status)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(stmt)).mappings()]


async def deliverability(engine: AsyncEngine, member_id: UUID) -> dict[str, Any] | None:
    c = orm.contacts
    stmt = select(c.c.undeliverable_at, c.c.undeliverable_reason).where(c.c.member_id == member_id)
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return {
        "member_id": member_id,
        "deliverable": row.undeliverable_at is None,
        "undeliverable_at": row.undeliverable_at,
        "reason": row.undeliverable_reason,
    }


webhook_deliveries_failed = Gauge(
    "webhook_deliveries_failed",
    "Webhook deliveries parked failed (GET /webhooks/{id}/deliveries?status=failed; "
    "POST /webhooks/{id}/deliveries/{delivery_id}/retry posts one again)",
    registry=metrics.REGISTRY,
)
webhook_deliveries_pending = Gauge(
    "webhook_deliveries_pending", "Webhook deliveries owed and not yet delivered", registry=metrics.REGISTRY
)


async def refresh_webhook_gauges(engine: AsyncEngine) -> None:
    wd = orm.webhook_deliveries
    stmt = select(wd.c.status, func.count()).where(wd.c.status.in_(("failed", "pending"))).group_by(wd.c.status)
    async with engine.connect() as conn:
        counts: dict[str, int] = dict((await conn.execute(stmt)).all())
    webhook_deliveries_failed.set(counts.get("failed", 0))
    webhook_deliveries_pending.set(counts.get("pending", 0))
