"""Webhook subscribers and their deliveries, with SQLAlchemy Core on the unit of work's connection
(`uow.repo.webhooks`).

`outbox_tap` makes the service's outbox tap (netvaerk_shared.uow.OutboxTap): it runs on the connection and in the
transaction that writes NotificationSent / NotificationFailed to the outbox, so a webhook delivery is owed exactly
when the event is, whichever code path wrote it (see entrypoints/webhook_worker.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from netvaerk_shared import contracts
from netvaerk_shared.db import dialect_insert, is_sqlite
from netvaerk_shared.envelope import CloudEvent, to_bytes
from netvaerk_shared.uow import Clock, OutboxTap

from ..domain.errors import LeaseLost
from ..domain.webhooks import DELIVERED, FAILED, PENDING, Webhook, WebhookDelivery
from . import orm
from .safe_text import error_text

w, wd = orm.webhooks, orm.webhook_deliveries
CHUNK = 500
# The events a subscriber is told of: this service's own, ids only.
WEBHOOK_EVENT_TYPES = frozenset({contracts.NotificationSent.event_type(), contracts.NotificationFailed.event_type()})


class WebhookRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._loaded: dict[UUID, tuple[str, str | None]] = {}

    # -- subscribers -----------------------------------------------------------------------------------------------
    async def add(self, webhook: Webhook) -> None:
        await self.conn.execute(w.insert().values(**_webhook_row(webhook)))

    async def get(self, webhook_id: UUID) -> Webhook | None:
        row = (await self.conn.execute(select(w).where(w.c.id == webhook_id))).mappings().first()
        return _webhook(row) if row else None

    async def all(self) -> list[Webhook]:
        return [_webhook(r) for r in (await self.conn.execute(select(w).order_by(w.c.created_at))).mappings()]

    async def save(self, webhook: Webhook) -> None:
        values = _webhook_row(webhook)
        del values["id"]
        await self.conn.execute(update(w).where(w.c.id == webhook.id).values(**values))

    async def remove(self, webhook_id: UUID) -> bool:
        """Delete a subscriber and what it was owed (nothing more goes to it)."""
        await self.conn.execute(delete(wd).where(wd.c.webhook_id == webhook_id))
        return bool((await self.conn.execute(delete(w).where(w.c.id == webhook_id))).rowcount)

    # -- what is owed ----------------------------------------------------------------------------------------------
    async def owe_for_events(self, events: Sequence[CloudEvent], now: datetime) -> int:
        """One delivery per (subscriber that wants it, event) for the notification events among `events`, due at
        `now`; one owed already is left alone. Returns how many rows were offered."""
        ours = [e for e in events if e.type in WEBHOOK_EVENT_TYPES and isinstance(e.data, dict)]
        if not ours:
            return 0
        subscribers = await self.all()
        if not subscribers:
            return 0
        members = {m for m in (_uuid(e.data.get("member_id")) for e in ours) if m is not None}
        organisations = await self._organisations(list(members)) if any(s.organisation_id for s in subscribers) else {}
        rows: list[dict[str, Any]] = []
        for event in ours:
            member_id = _uuid(event.data.get("member_id"))
            kind = str(event.data.get("kind", ""))
            organisation_id = organisations.get(member_id) if member_id else None
            body = to_bytes(event)
            for webhook in subscribers:
                if webhook.wants(kind, organisation_id):
                    rows.append(
                        {
                            "id": uuid.uuid4(),
                            "webhook_id": webhook.id,
                            "event_id": event.id,
                            "event_type": event.type,
                            "member_id": member_id,
                            "body": body,
                            "status": PENDING,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                        }
                    )
        for i in range(0, len(rows), CHUNK):
            stmt = dialect_insert(self.conn, wd).values(rows[i : i + CHUNK])
            await self.conn.execute(stmt.on_conflict_do_nothing(index_elements=["webhook_id", "event_id"]))
        return len(rows)

    async def _organisations(self, member_ids: list[UUID]) -> dict[UUID, UUID | None]:
        c = orm.contacts
        out: dict[UUID, UUID | None] = {}
        for i in range(0, len(member_ids), CHUNK):
            stmt = select(c.c.member_id, c.c.organisation_id).where(c.c.member_id.in_(member_ids[i : i + CHUNK]))
            out.update({m: o for m, o in (await self.conn.execute(stmt)).all()})
        return out

    # -- deliveries ------------------------------------------------------------------------------------------------
    async def due(self, now: datetime, limit: int, exclude: Sequence[UUID]) -> list[WebhookDelivery]:
        """Pending deliveries due at `now` that nobody holds, oldest first, of subscribers not in `exclude` (those the
        worker has as many in flight of as it allows). Locked with SKIP LOCKED on PostgreSQL, as the email worker's."""
        stmt = (
            select(wd)
            .where(wd.c.status == PENDING, wd.c.next_attempt_at <= now)
            .where(or_(wd.c.lease_until.is_(None), wd.c.lease_until < now))
            .order_by(wd.c.next_attempt_at, wd.c.created_at)
            .limit(limit)
        )
        if exclude:
            stmt = stmt.where(wd.c.webhook_id.not_in(list(exclude)))
        if not is_sqlite(self.conn):
            stmt = stmt.with_for_update(skip_locked=True)
        return [self._loaded_from(r) for r in (await self.conn.execute(stmt)).mappings()]

    async def delivery(self, delivery_id: UUID) -> WebhookDelivery | None:
        row = (await self.conn.execute(select(wd).where(wd.c.id == delivery_id))).mappings().first()
        return self._loaded_from(row) if row else None

    async def save_leases(self, deliveries: Sequence[WebhookDelivery]) -> None:
        if not deliveries:
            return
        stmt = (
            update(wd)
            .where(wd.c.id == bindparam("delivery_id"))
            .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
        )
        await self.conn.execute(
            stmt, [{"delivery_id": x.id, "owner": x.lease_owner, "until": x.lease_until} for x in deliveries]
        )
        for x in deliveries:
            self._loaded[x.id] = (x.status, x.lease_owner)

    async def save_delivery(self, delivery: WebhookDelivery) -> None:
        """Write a delivery's changes unless somebody changed it since it was loaded (then LeaseLost)."""
        status, owner = self._loaded[delivery.id]
        unchanged: ColumnElement[bool] = wd.c.lease_owner.is_(None) if owner is None else wd.c.lease_owner == owner
        result = await self.conn.execute(
            update(wd)
            .where(and_(wd.c.id == delivery.id, wd.c.status == status, unchanged))
            .values(
                status=delivery.status,
                attempts=delivery.attempts,
                next_attempt_at=delivery.next_attempt_at,
                lease_owner=delivery.lease_owner,
                lease_until=delivery.lease_until,
                last_status=delivery.last_status,
                last_error=error_text(delivery.last_error) if delivery.last_error is not None else None,
                delivered_at=delivery.delivered_at,
            )
        )
        if result.rowcount != 1:
            raise LeaseLost(f"webhook delivery {delivery.id} was changed by another instance")
        self._loaded[delivery.id] = (delivery.status, delivery.lease_owner)

    async def forget_member(self, member_id: UUID) -> int:
        """GDPR erasure: the deliveries delivered or parked that name the member go; one still pending is delivered
        as committed (ids only), as the outbox does with its unpublished rows."""
        stmt = delete(wd).where(wd.c.member_id == member_id, wd.c.status.in_((DELIVERED, FAILED)))
        return (await self.conn.execute(stmt)).rowcount or 0

    def _loaded_from(self, row: RowMapping) -> WebhookDelivery:
        delivery = _delivery(row)
        self._loaded[delivery.id] = (delivery.status, delivery.lease_owner)
        return delivery


def outbox_tap(clock: Clock) -> OutboxTap:
    """The outbox tap bootstrap gives the runtime; `clock` is the runtime's (what "now" is for its workers)."""

    async def owe_for_events(conn: AsyncConnection, events: Sequence[CloudEvent]) -> None:
        if any(e.type in WEBHOOK_EVENT_TYPES for e in events):
            await WebhookRepository(conn).owe_for_events(events, clock())

    return owe_for_events


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _webhook_row(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "name": webhook.name,
        "url": webhook.url,
        "kinds": list(webhook.kinds) if webhook.kinds is not None else None,
        "organisation_id": webhook.organisation_id,
        "secret": webhook.secret,
        "previous_secret": webhook.previous_secret,
        "previous_until": webhook.previous_until,
        "created_at": webhook.created_at,
    }


def _webhook(row: RowMapping) -> Webhook:
    kinds = row["kinds"]
    return Webhook(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        secret=row["secret"],
        created_at=row["created_at"],
        kinds=tuple(kinds) if kinds is not None else None,
        organisation_id=row["organisation_id"],
        previous_secret=row["previous_secret"],
        previous_until=row["previous_until"],
    )


def _delivery(row: RowMapping) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        member_id=row["member_id"],
        body=bytes(row["body"]),
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        status=row["status"],
        attempts=row["attempts"],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
    )
