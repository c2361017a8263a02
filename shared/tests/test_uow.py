"""The unit of work on its own: it takes the events the aggregates recorded into the outbox with the change, in the
order they were recorded, or nothing at all; joined to a caller's transaction it leaves committing to the caller."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from netvaerk_shared import tracing
from netvaerk_shared.uow import LeftWithoutCommit

from .world import effects, joined, tables, unit_of_work, uow_on


async def outbox_rows(engine) -> list:
    async with engine.connect() as conn:
        return (await conn.execute(select(tables.outbox).order_by(tables.outbox.c.position))).all()


async def effect_count(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(effects))).scalar_one()


async def test_commit_writes_the_recorded_events_with_the_change_in_order(engine):
    first, second = joined(), joined()
    uow = unit_of_work(engine)
    async with uow:
        await uow.repo.count(first.member_id)
        uow.repo.record(first, second)
        await uow.commit()
    rows = await outbox_rows(engine)
    assert [json.loads(r.body)["data"]["member_id"] for r in rows] == [str(first.member_id), str(second.member_id)]
    assert [r.subject for r in rows] == [first.nats_subject(), second.nats_subject()]
    assert uow.repo.changes.events == []  # taken, so a second commit would not write them again
    assert await effect_count(engine) == 1


async def test_left_without_commit_raises_and_writes_nothing(engine):
    uow = unit_of_work(engine)
    with pytest.raises(LeftWithoutCommit):
        async with uow:
            await uow.repo.count(joined().member_id)
            uow.repo.record(joined())
    assert await outbox_rows(engine) == [] and await effect_count(engine) == 0


async def test_an_error_inside_rolls_back_the_change_and_its_events(engine):
    uow = unit_of_work(engine)
    with pytest.raises(ZeroDivisionError):
        async with uow:
            await uow.repo.count(joined().member_id)
            uow.repo.record(joined())
            1 / 0  # noqa: B018
    assert await outbox_rows(engine) == [] and await effect_count(engine) == 0


async def test_joined_to_a_callers_transaction_the_caller_decides(engine):
    event = joined()
    async with engine.connect() as conn:
        trans = await conn.begin()
        uow = uow_on(conn)
        async with uow:
            await uow.repo.count(event.member_id)
            uow.repo.record(event)
            await uow.commit()  # writes the outbox row on the caller's connection, commits nothing
        await trans.rollback()
    assert await outbox_rows(engine) == [] and await effect_count(engine) == 0

    async with engine.connect() as conn:
        trans = await conn.begin()
        uow = uow_on(conn)
        async with uow:
            uow.repo.record(event)
            await uow.commit()
        await trans.commit()
    assert len(await outbox_rows(engine)) == 1


async def test_events_caused_by_a_consumed_event_name_it(engine):
    token = tracing.current_event_id.set("cause-0001")
    try:
        uow = unit_of_work(engine)
        async with uow:
            uow.repo.record(joined())
            await uow.commit()
    finally:
        tracing.current_event_id.reset(token)
    [row] = await outbox_rows(engine)
    assert json.loads(row.body)["causationid"] == "cause-0001"


async def test_an_outbox_tap_sees_the_events_as_written_in_the_same_transaction(engine):
    from netvaerk_shared.uow import UnitOfWork

    from .world import Repository, as_contract

    tapped: list = []

    async def tap(conn, events) -> None:
        o = tables.outbox
        rows = (await conn.execute(select(o.c.event_id).order_by(o.c.position))).scalars().all()
        tapped.append(([e.id for e in events], list(rows)))  # the rows are there already, uncommitted

    first, second = joined(), joined()
    uow = UnitOfWork(engine, tables, "members", repositories=Repository, translate=as_contract, outbox_tap=tap)
    async with uow:
        uow.repo.record(first, second)
        await uow.commit()
    (ids, rows), *more = tapped
    assert not more and ids == rows == [r.event_id for r in await outbox_rows(engine)]

    async def failing(conn, events) -> None:
        raise RuntimeError("the tap failed")

    uow = UnitOfWork(engine, tables, "members", repositories=Repository, translate=as_contract, outbox_tap=failing)
    with pytest.raises(RuntimeError):
        async with uow:
            uow.repo.record(joined())
            await uow.commit()
    assert len(await outbox_rows(engine)) == 2  # the tap's failure took the change and its events back


async def test_a_commit_cancelled_half_way_rolls_back_once_and_stays_a_cancellation(engine):
    """A worker stopped while its COMMIT is on the wire (CI saw it): the transaction's context has already ended, so
    leaving the unit of work must not end it again (that raised RuntimeError and hid the cancellation from the task)."""
    import asyncio

    exits: list[object] = []

    class CancelledInCommit:
        def __init__(self, real):
            self.real = real

        async def __aexit__(self, exc_type, exc, tb):
            exits.append(exc_type)
            if exc_type is None:  # the commit: the real context rolls back as a cancelled COMMIT does, then it raises
                await self.real.__aexit__(asyncio.CancelledError, asyncio.CancelledError(), None)
                raise asyncio.CancelledError
            return await self.real.__aexit__(exc_type, exc, tb)

    uow = unit_of_work(engine)
    with pytest.raises(asyncio.CancelledError):
        async with uow:
            await uow.repo.count(joined().member_id)
            uow.repo.record(joined())
            uow._ctx = CancelledInCommit(uow._ctx)
            await uow.commit()
    assert exits == [None]
    assert await outbox_rows(engine) == [] and await effect_count(engine) == 0
