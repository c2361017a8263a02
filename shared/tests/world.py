"""The small world the messaging tests share: the messaging tables beside an `effects` table, MemberJoined events,
and a repository whose one effect counts, per member, how often a handler ran (so "exactly once" can be checked).

Its aggregate records contracts directly, so the translator is the identity. The fixtures (`engine`, `js`) are in
conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from netvaerk_shared import contracts
from netvaerk_shared.contracts import EventData
from netvaerk_shared.db import dialect_insert
from netvaerk_shared.envelope import CloudEvent
from netvaerk_shared.messaging import add_messaging_tables
from netvaerk_shared.uow import UnitOfWork

metadata = MetaData()
tables = add_messaging_tables(metadata)
effects = Table(
    "effects", metadata, Column("member_id", String(36), primary_key=True), Column("times", Integer, nullable=False)
)


def joined(member_id: uuid.UUID | None = None) -> contracts.MemberJoined:
    return contracts.MemberJoined(
        member_id=member_id or uuid.uuid4(), group_id=uuid.uuid4(), role="member", joined_at=datetime.now(UTC)
    )


class Changes:
    """The aggregate of this world: what it records are contracts already."""

    def __init__(self) -> None:
        self.events: list[EventData] = []


class Repository:
    """On the unit of work's connection: the effect of a handler, and the events a change records."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.changes = Changes()

    @property
    def seen(self) -> Iterable[Changes]:
        return [self.changes]

    def record(self, *events: EventData) -> None:
        self.changes.events.extend(events)

    async def count(self, member_id: uuid.UUID) -> None:
        stmt = dialect_insert(self.conn, effects).values(member_id=str(member_id), times=1)
        await self.conn.execute(
            stmt.on_conflict_do_update(index_elements=["member_id"], set_={"times": effects.c.times + 1})
        )


def as_contract(event: Any, aggregate: Any) -> EventData:
    return event


def unit_of_work(engine: AsyncEngine) -> UnitOfWork[Repository]:
    """A unit of work in a transaction of its own (a change that publishes events)."""
    return UnitOfWork(engine, tables, "members", repositories=Repository, translate=as_contract)


def uow_on(conn: AsyncConnection) -> UnitOfWork[Repository]:
    """The consumers' factory: a unit of work joined to their transaction."""
    return UnitOfWork(conn.engine, tables, "members", repositories=Repository, translate=as_contract, conn=conn)


async def count_effect(uow: UnitOfWork[Repository], event: CloudEvent, data: contracts.MemberJoined) -> None:
    async with uow:
        await uow.repo.count(data.member_id)
        await uow.commit()
