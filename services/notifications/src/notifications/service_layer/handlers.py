"""Event handlers: they keep the contact directory and roster copy current and record which messages are owed.

They run inside the consumer's transaction (with its inbox row), so an event seen twice owes nothing twice; the
sending itself is the delivery worker's job (service_layer/delivery.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from netvaerk_shared import contracts, tracing
from netvaerk_shared.consumer import Unprocessable
from netvaerk_shared.db import dialect_insert
from netvaerk_shared.envelope import CloudEvent

from ..adapters import orm
from ..domain import model


async def on_group_created(conn: AsyncConnection, event: CloudEvent, data: contracts.GroupCreated) -> None:
    stmt = dialect_insert(conn, orm.groups).values(group_id=data.group_id, name=data.name)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["group_id"], set_={"name": data.name}))


async def on_member_registered(conn: AsyncConnection, event: CloudEvent, data: contracts.MemberRegistered) -> None:
    values = {"name": data.name, "email": str(data.email), "locale": data.locale.value, "updated_at": datetime.now(UTC)}
    stmt = dialect_insert(conn, orm.contacts).values(member_id=data.member_id, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["member_id"], set_=values))
    await _bring_forward(conn, [data.member_id])


async def on_member_joined(conn: AsyncConnection, event: CloudEvent, data: contracts.MemberJoined) -> None:
    stmt = dialect_insert(conn, orm.group_members).values(
        group_id=data.group_id, member_id=data.member_id, role=data.role.value
    )
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["group_id", "member_id"], set_={"role": data.role.value})
    )
    await _owe(conn, [model.welcome(data.member_id, data.group_id, _cause(event))])


async def on_members_registered(
    conn: AsyncConnection, batch: list[tuple[CloudEvent, contracts.MemberRegistered]]
) -> None:
    """on_member_registered for a batch: one upsert a chunk (the last profile of a member in the batch wins)."""
    now = datetime.now(UTC)
    latest = {
        data.member_id: {
            "member_id": data.member_id,
            "name": data.name,
            "email": str(data.email),
            "locale": data.locale.value,
            "updated_at": now,
        }
        for _, data in batch
    }
    rows = list(latest.values())
    for i in range(0, len(rows), 500):
        stmt = dialect_insert(conn, orm.contacts).values(rows[i : i + 500])
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["member_id"],
                set_={
                    "name": stmt.excluded.name,
                    "email": stmt.excluded.email,
                    "locale": stmt.excluded.locale,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
        )
    await _bring_forward(conn, list(latest))


async def _bring_forward(conn: AsyncConnection, member_ids: list) -> None:
    """Deliveries that were waiting for these members' contacts are due now (not at their next look)."""
    d = orm.deliveries
    now = datetime.now(UTC)
    for i in range(0, len(member_ids), 500):
        await conn.execute(
            update(d)
            .where(
                and_(
                    d.c.member_id.in_(member_ids[i : i + 500]),
                    d.c.status == "pending",
                    d.c.attempts == 0,
                    d.c.next_attempt_at > now,
                )
            )
            .values(next_attempt_at=now)
        )


async def on_members_joined(conn: AsyncConnection, batch: list[tuple[CloudEvent, contracts.MemberJoined]]) -> None:
    """on_member_joined for a batch: the roster rows and the welcome emails owed, a statement a chunk each."""
    roles = {(data.group_id, data.member_id): data.role.value for _, data in batch}
    rows = [{"group_id": g, "member_id": m, "role": r} for (g, m), r in roles.items()]
    for i in range(0, len(rows), 500):
        stmt = dialect_insert(conn, orm.group_members).values(rows[i : i + 500])
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["group_id", "member_id"], set_={"role": stmt.excluded.role})
        )
    await _owe(
        conn,
        [model.welcome(data.member_id, data.group_id, _cause(event)) for event, data in batch],
        traceparents=[tracing.child_of(event.traceparent) for event, _ in batch],
    )


async def on_meeting_scheduled(conn: AsyncConnection, event: CloudEvent, data: contracts.MeetingScheduled) -> None:
    values = {"group_id": data.group_id, "sequence": data.sequence, "data": data.model_dump(mode="json")}
    stmt = dialect_insert(conn, orm.meetings).values(meeting_id=data.meeting_id, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["meeting_id"], set_=values))
    member_ids = (
        (await conn.execute(select(orm.group_members.c.member_id).where(orm.group_members.c.group_id == data.group_id)))
        .scalars()
        .all()
    )
    await _owe(conn, model.invitations(data.meeting_id, data.sequence, member_ids, _cause(event)))


def _cause(event: CloudEvent) -> uuid.UUID:
    try:
        return uuid.UUID(event.id)
    except ValueError as exc:
        raise Unprocessable(f"event id {event.id!r} is not a UUID as the v1 contract requires") from exc


async def _owe(
    conn: AsyncConnection, deliveries: list[model.Delivery], traceparents: list[str | None] | None = None
) -> None:
    """Record deliveries owed; each keeps the trace of the event that caused it (the current one by default)."""
    if not deliveries:
        return
    now = datetime.now(UTC)
    traceparents = traceparents or [tracing.current_traceparent.get()] * len(deliveries)
    rows = [
        {
            "id": d.id,
            "dedupe_key": d.dedupe_key,
            "member_id": d.member_id,
            "kind": d.kind,
            "channel": "email",
            "cause_event_id": d.cause_event_id,
            "payload": {**d.payload, "traceparent": traceparent},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for d, traceparent in zip(deliveries, traceparents, strict=True)
    ]
    for i in range(0, len(rows), 500):
        await conn.execute(
            dialect_insert(conn, orm.deliveries)
            .values(rows[i : i + 500])
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
        )


# contract -> (handler for one event, handler for a batch or None)
SUBSCRIPTIONS = {
    contracts.GroupCreated: (on_group_created, None),
    contracts.MemberRegistered: (on_member_registered, on_members_registered),
    contracts.MemberJoined: (on_member_joined, on_members_joined),
    contracts.MeetingScheduled: (on_meeting_scheduled, None),
}
