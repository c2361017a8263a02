"""An outage of the consumer's own database is not a poison pill: real JetStream, real PostgreSQL, the database taken
away (ALLOW_CONNECTIONS false + pg_terminate_backend) while events flow. Plus the failure classifier, the restart
rule of the failure tally, and replaying many dead letters in their original order (function and admin route)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import asyncpg
import httpx
import nats.js.errors
import pytest
import sqlalchemy.exc as sa_exc
from fastapi import FastAPI
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url

from netvaerk_shared import contracts
from netvaerk_shared.consumer import (
    EventConsumer,
    Subscription,
    Unprocessable,
    is_database_outage,
    list_dead_letters,
    replay_dead_letter,
    replay_dead_letters,
)
from netvaerk_shared.db import create_engine
from netvaerk_shared.envelope import make_event, to_bytes
from netvaerk_shared.http import EdgePolicy, install_problem_handlers, operations_router
from netvaerk_testing import infra
from netvaerk_testing.plugin import wait_until

from .world import count_effect, effects, joined, metadata, tables, uow_on

CONSUMER_LOG = "netvaerk_shared.consumer"


async def publish(js, data: contracts.EventData) -> str:
    event = make_event(data)
    await js.publish(data.nats_subject(), to_bytes(event), headers={"Nats-Msg-Id": event.id})
    return event.id


class Database:
    """The consumer's PostgreSQL database, and an admin connection that can take it away and bring it back."""

    def __init__(self, admin_url: str, url: str) -> None:
        self.admin_url, self.url = admin_url, url
        self.name = make_url(url).database
        self.engine = create_engine(url)

    async def take_away(self) -> None:
        admin = await asyncpg.connect(infra.admin_postgres_url(self.admin_url))
        try:
            await admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", self.name)
        finally:
            await admin.close()

    async def bring_back(self) -> None:
        admin = await asyncpg.connect(infra.admin_postgres_url(self.admin_url))
        try:
            await admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')
        finally:
            await admin.close()

    async def effects(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            return {r.member_id: r.times for r in await conn.execute(select(effects))}

    async def effects_or_none(self) -> dict[str, int] | None:
        try:
            return await self.effects()
        except Exception:
            return None


@pytest.fixture
async def pg(pg_admin_url, postgres_database_url):
    db = Database(pg_admin_url, postgres_database_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield db
    await db.bring_back()  # a failed test must not leave the database closed for the fixture's DROP
    await db.engine.dispose()


async def caught_up(js, consumer: EventConsumer) -> bool:
    try:
        info = await js.consumer_info(consumer.stream, consumer.name)
    except nats.js.errors.NotFoundError:
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


def lines(caplog, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CONSUMER_LOG and needle in r.getMessage()]


# -- the classifier ------------------------------------------------------------------------------------------------


def _wrapped(cls, orig, **kw):
    return cls("SELECT 1", {}, orig, **kw)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        ConnectionResetError("reset by peer"),
        OSError("Network is unreachable"),
        TimeoutError(),
        TimeoutError(),
        _wrapped(sa_exc.OperationalError, Exception("server closed the connection unexpectedly")),
        _wrapped(
            sa_exc.InterfaceError,
            Exception("cannot call PreparedStatement.fetch(): the underlying connection is closed"),
        ),
        _wrapped(sa_exc.DBAPIError, Exception("whatever it says"), connection_invalidated=True),
        _wrapped(
            sa_exc.DBAPIError,
            asyncpg.exceptions.ObjectNotInPrerequisiteStateError(
                'database "notifications" is not currently accepting connections'
            ),
        ),
        _wrapped(sa_exc.DBAPIError, asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")),
        _wrapped(
            sa_exc.DBAPIError,
            asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        ),
        _wrapped(sa_exc.DBAPIError, asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
        _wrapped(
            sa_exc.DBAPIError, asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout")
        ),
        _wrapped(sa_exc.DBAPIError, asyncpg.exceptions.InvalidCatalogNameError('database "x" does not exist')),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        _wrapped(
            sa_exc.InternalError,
            asyncpg.exceptions.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
        ),  # a connection killed mid-statement
        sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached, connection timed out"),
        sa_exc.DisconnectionError("gone"),
        Exception("database does not allow connections"),
        RuntimeError("wrapped"),  # (its cause is set below)
    ],
    ids=lambda e: type(e).__name__,
)
def test_outages_are_classified_as_outages(exc):
    if type(exc) is RuntimeError:
        try:
            try:
                raise ConnectionRefusedError("refused")
            except ConnectionRefusedError as inner:
                raise RuntimeError("wrapped") from inner
        except RuntimeError as outer:
            exc = outer
    assert is_database_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("this one is broken"),
        KeyError("member_id"),
        Unprocessable("group is archived"),
        _wrapped(sa_exc.IntegrityError, asyncpg.exceptions.UniqueViolationError("duplicate key value")),
        _wrapped(sa_exc.DataError, asyncpg.exceptions.InvalidTextRepresentationError("invalid input syntax for uuid")),
        _wrapped(sa_exc.ProgrammingError, asyncpg.exceptions.UndefinedColumnError('column "x" does not exist')),
        _wrapped(
            sa_exc.DBAPIError,
            asyncpg.exceptions.ObjectNotInPrerequisiteStateError(
                'currval of sequence "s" is not yet defined in this session'
            ),
        ),  # 55000, but not about connections
        sa_exc.PendingRollbackError("This Session's transaction has been rolled back"),
        None,
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_failures_are_not_outages(exc):
    assert not is_database_outage(exc)


async def test_what_postgresql_really_raises_when_its_database_is_away(pg):
    held = await pg.engine.connect()
    await held.execute(text("SELECT 1"))
    await pg.take_away()
    errors = []
    try:
        for attempt in (lambda: held.execute(text("SELECT 1")), lambda: pg.engine.connect().start()):
            try:
                await attempt()
            except Exception as exc:
                errors.append(exc)
    finally:
        await held.close()
        await pg.bring_back()
    assert len(errors) == 2 and all(is_database_outage(e) for e in errors), errors
    closed = create_engine(f"postgresql://postgres@127.0.0.1:{infra.free_port()}/nothing")
    try:
        with pytest.raises(Exception) as refused:
            async with closed.connect():
                pass
        assert is_database_outage(refused.value)
    finally:
        await closed.dispose()


# -- outages -------------------------------------------------------------------------------------------------------


async def test_database_outage_under_load_spends_no_tries_and_dead_letters_nothing(pg, js, caplog):
    """The notifications incident in small: the consumer's database away for ~6 s while events keep coming, with
    max_deliver=2. Afterwards every event was done exactly once, nothing was dead-lettered, and the log has one line
    when the consumer paused and one when it resumed."""
    caplog.set_level(logging.INFO, logger=CONSUMER_LOG)

    async def slow_count(uow, event, data):
        await asyncio.sleep(0.002)  # so that the outage lands inside handlers and batches, not only between them
        await count_effect(uow, event, data)

    consumer = EventConsumer(
        service="notifications",
        subscription=Subscription(contracts.MemberJoined, slow_count),
        engine=pg.engine,
        tables=tables,
        unit_of_work=uow_on,
        max_deliver=2,
        batch_size=25,
        fetch_timeout=0.2,
    )
    consumer._backoff = lambda failures: 0.05
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(js, stop))
    sent: list[str] = []

    async def produce(n: int) -> None:
        for _ in range(n):
            data = joined()
            await publish(js, data)
            sent.append(str(data.member_id))
            await asyncio.sleep(0.02)

    producer = asyncio.create_task(produce(400))  # ~8-9 s of events
    try:
        await wait_until(lambda: _at_least(pg, 40), timeout=20, message="events flowing")
        await pg.take_away()
        await wait_until(lambda: consumer.paused, timeout=10, message="the consumer to pause")
        await asyncio.sleep(6)
        assert consumer.paused  # no fetching while the database is away
        await pg.bring_back()
        await producer
        await wait_until(lambda: _has_all(pg, sent), timeout=60, message="every event consumed")
        await wait_until(lambda: caught_up(js, consumer), timeout=30, message="nothing left to (re)deliver")
    finally:
        producer.cancel()
        stop.set()
        await task
    assert await pg.effects() == {m: 1 for m in sent}  # each effect exactly once
    assert await list_dead_letters(pg.engine, tables) == []
    assert consumer._tally == {}  # no failure was counted against any event
    pauses = lines(caplog, "database unavailable, pausing consumer notifications-member-joined-v1")
    resumes = lines(caplog, "database back, resuming consumer notifications-member-joined-v1")
    assert 1 <= len(pauses) <= 2 and len(resumes) == len(pauses), pauses + resumes
    assert lines(caplog, "handler failed") == [] and lines(caplog, "dead letter") == []


async def _at_least(pg, n: int) -> bool:
    got = await pg.effects_or_none()
    return got is not None and len(got) >= n


async def _has_all(pg, sent: list[str]) -> bool:
    got = await pg.effects_or_none()
    return got is not None and set(sent) <= set(got)


@pytest.mark.parametrize("shape", ["per_event", "batch_handler"])
async def test_database_going_away_inside_a_handler_is_an_outage_not_poison(pg, js, caplog, shape):
    """The handler itself is the one that meets the outage, half way through a batch: with max_deliver=1 a single
    wrongly counted failure would make a dead letter. None appears; every event is done once when it is back."""
    caplog.set_level(logging.INFO, logger=CONSUMER_LOG)
    events = [joined() for _ in range(30)]
    trigger = str(events[12].member_id)
    state = {"taken": False}

    async def maybe_take_away(data):
        if str(data.member_id) == trigger and not state["taken"]:
            state["taken"] = True
            await pg.take_away()

    async def one(uow, event, data):
        await maybe_take_away(data)
        await count_effect(uow, event, data)

    async def many(uow, batch):
        async with uow:
            for _, data in batch:
                await maybe_take_away(data)
                await uow.repo.count(data.member_id)
            await uow.commit()

    subscription = Subscription(contracts.MemberJoined, one, many if shape == "batch_handler" else None)
    for data in events:
        await publish(js, data)
    consumer = EventConsumer(
        service="notifications",
        subscription=subscription,
        engine=pg.engine,
        tables=tables,
        unit_of_work=uow_on,
        max_deliver=1,
        batch_size=50,
        fetch_timeout=0.2,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(js, stop))
    try:
        await wait_until(lambda: consumer.paused, timeout=10, message="the consumer to pause")
        await asyncio.sleep(3)
        await pg.bring_back()
        await wait_until(
            lambda: _has_all(pg, [str(e.member_id) for e in events]), timeout=30, message="every event consumed"
        )
        await wait_until(lambda: caught_up(js, consumer), timeout=30, message="nothing left to (re)deliver")
    finally:
        stop.set()
        await task
    assert await pg.effects() == {str(e.member_id): 1 for e in events}
    assert await list_dead_letters(pg.engine, tables) == []
    assert lines(caplog, "database unavailable, pausing consumer") and lines(caplog, "database back, resuming")


async def test_a_poison_event_is_still_a_dead_letter_with_its_real_error_across_an_outage(pg, js, caplog):
    caplog.set_level(logging.INFO, logger=CONSUMER_LOG)
    good = [joined() for _ in range(10)]
    poison = joined()
    calls: list[str] = []

    async def picky(uow, event, data):
        if data.member_id == poison.member_id:
            calls.append(event.id)
            raise ValueError(f"no such group {data.group_id}")
        await count_effect(uow, event, data)

    consumer = EventConsumer(
        service="notifications",
        subscription=Subscription(contracts.MemberJoined, picky),
        engine=pg.engine,
        tables=tables,
        unit_of_work=uow_on,
        max_deliver=2,
        fetch_timeout=0.2,
    )
    consumer._backoff = lambda failures: 0.05
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(js, stop))
    try:
        for data in good[:5]:
            await publish(js, data)
        await wait_until(lambda: _at_least(pg, 5), timeout=20, message="first events consumed")
        await pg.take_away()
        poison_id = await publish(js, poison)  # delivered while the database is away: that must not count
        for data in good[5:]:
            await publish(js, data)
        await wait_until(lambda: consumer.paused, timeout=10, message="the consumer to pause")
        await asyncio.sleep(2)
        await pg.bring_back()
        await wait_until(
            lambda: _has_all(pg, [str(e.member_id) for e in good]), timeout=30, message="the good events consumed"
        )
        await wait_until(lambda: caught_up(js, consumer), timeout=30, message="nothing left to (re)deliver")
    finally:
        stop.set()
        await task
    dead = await list_dead_letters(pg.engine, tables)
    assert [d["event_id"] for d in dead] == [poison_id]
    assert dead[0]["reason"] == (f"gave up after 2 deliveries; last error: ValueError: no such group {poison.group_id}")
    assert dead[0]["deliveries"] == 2
    assert len(calls) == 2  # two real tries; the deliveries during the outage never reached the handler
    assert await pg.effects() == {str(e.member_id): 1 for e in good}
    assert len(lines(caplog, "handler failed for event")) == 1  # the first failure; the second is the dead letter


async def test_a_restart_gives_a_poison_event_fresh_tries_never_a_wrong_dead_letter(engine, js):
    """The tally of real failures lives in memory: a new process starts it afresh."""
    data = joined()
    calls = []

    async def broken(uow, event, d):
        calls.append(event.id)
        raise ValueError("still broken")

    event_id = await publish(js, data)
    first = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, broken),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
        max_deliver=2,
        fetch_timeout=0.2,
    )
    first._backoff = lambda failures: 3.0  # stop it before its second try
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(js, stop))
    await wait_until(lambda: len(calls) == 1, timeout=10, message="the first try")
    stop.set()
    await task
    assert await list_dead_letters(engine, tables) == []

    second = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, broken),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
        max_deliver=2,
        fetch_timeout=0.2,
    )
    second._backoff = lambda failures: 0.05
    stop = asyncio.Event()
    task = asyncio.create_task(second.run(js, stop))
    try:
        await wait_until(lambda: _dead_count(engine, 1), timeout=20, message="the dead letter")
    finally:
        stop.set()
        await task
    assert len(calls) == 3  # 1 before the restart, max_deliver after it
    [dead] = await list_dead_letters(engine, tables)
    assert dead["event_id"] == event_id and dead["deliveries"] == 2
    assert dead["reason"] == "gave up after 2 deliveries; last error: ValueError: still broken"


async def _dead_count(engine, n: int) -> bool:
    return len(await list_dead_letters(engine, tables)) == n


# -- replaying many ------------------------------------------------------------------------------------------------


async def _three_dead_letters(engine, js, broken: set[str]):
    """Three events dead-lettered (Unprocessable), their dead letters stored in the opposite of stream order."""
    applied: list[str] = []

    async def handler(uow, event, data):
        if str(data.member_id) in broken:
            raise Unprocessable(f"member {data.member_id} not ready")
        applied.append(str(data.member_id))
        await count_effect(uow, event, data)

    events = [joined() for _ in range(3)]
    broken |= {str(e.member_id) for e in events}
    ids = [await publish(js, data) for data in events]
    consumer = EventConsumer(
        service="notifications",
        subscription=Subscription(contracts.MemberJoined, handler),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
        fetch_timeout=0.2,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(js, stop))
    try:
        await wait_until(lambda: _dead_count(engine, 3), timeout=20, message="three dead letters")
        await wait_until(lambda: caught_up(js, consumer), timeout=20, message="consumer caught up")
    finally:
        stop.set()
        await task
    d = tables.dead_letters
    base = datetime.now(UTC)
    async with engine.begin() as conn:  # the first event died last: created order is not the original order
        for index, event_id in enumerate(ids):
            await conn.execute(
                update(d).where(d.c.event_id == event_id).values(created_at=base - timedelta(seconds=index))
            )
    return consumer, events, applied


async def test_replaying_many_dead_letters_keeps_their_original_order(engine, js):
    broken: set[str] = set()
    consumer, events, applied = await _three_dead_letters(engine, js, broken)
    newest_first = [d["event_id"] for d in await list_dead_letters(engine, tables)]
    stream_order = [
        d["event_id"] for d in sorted(await list_dead_letters(engine, tables), key=lambda d: d["stream_seq"])
    ]
    assert newest_first == stream_order  # created_at says the opposite of the stream (newest first = first sent)
    broken.clear()
    result = await replay_dead_letters(engine, tables, {consumer.name: consumer}, consumer=consumer.name)
    assert [r["event_id"] for r in result["replayed"]] == stream_order
    assert [r["outcome"] for r in result["replayed"]] == ["processed"] * 3
    assert result["failed"] is None and result["remaining"] == 0
    assert applied == [str(e.member_id) for e in events]  # applied in the order they were published
    assert await list_dead_letters(engine, tables) == []
    again = await replay_dead_letters(engine, tables, {consumer.name: consumer})
    assert again == {"replayed": [], "failed": None, "remaining": 0}


async def test_replaying_many_stops_at_the_first_failure_and_names_it(engine, js):
    broken: set[str] = set()
    consumer, events, applied = await _three_dead_letters(engine, js, broken)
    first, second, third = (str(e.member_id) for e in events)
    broken.clear()
    broken.add(second)  # the second is still broken: the third must not overtake it
    result = await replay_dead_letters(engine, tables, {consumer.name: consumer})
    assert applied == [first]
    assert len(result["replayed"]) == 1 and result["remaining"] == 2
    failed = result["failed"]
    assert failed is not None and failed["error"] == f"Unprocessable: member {second} not ready"
    rows = {d["id"]: d for d in await list_dead_letters(engine, tables)}
    assert rows[failed["id"]]["replay_error"] == failed["error"]
    # fixed, the rest go through, still in order; the single replay keeps working beside it
    broken.clear()
    outcome = await replay_dead_letter(engine, tables, {consumer.name: consumer}, failed["id"])
    assert outcome == ("processed", None)
    result = await replay_dead_letters(engine, tables, {consumer.name: consumer})
    assert [r["outcome"] for r in result["replayed"]] == ["processed"] and result["remaining"] == 0
    assert applied == [first, second, third]


async def test_replay_route_replays_many_and_is_protected(engine, js):
    broken: set[str] = set()
    consumer, events, applied = await _three_dead_letters(engine, js, broken)
    broken.clear()
    app = FastAPI()
    app.include_router(operations_router())
    install_problem_handlers(app)
    app.state.edge = EdgePolicy(token="test-token-0123456789")
    app.state.runtime = SimpleNamespace(
        engine=engine, tables=tables, consumers={consumer.name: consumer}, service="notifications"
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        auth = {"Authorization": "Bearer test-token-0123456789"}
        r = await client.post("/admin/dead-letters/replay")
        assert r.status_code == 401
        r = await client.post(
            "/admin/dead-letters/replay", params={"consumer": "meetings-member-joined-v1"}, headers=auth
        )
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        r = await client.post("/admin/dead-letters/replay", params={"consumer": consumer.name}, headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [x["outcome"] for x in body["replayed"]] == ["processed"] * 3
        assert body["failed"] is None and body["remaining"] == 0
    assert applied == [str(e.member_id) for e in events]
    schema = app.openapi()["paths"]["/admin/dead-letters/replay"]["post"]
    assert schema["security"] and "404" in schema["responses"]
