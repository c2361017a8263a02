"""The mechanism end to end against real JetStream and a real database (PostgreSQL and SQLite): outbox -> relay ->
stream -> idempotent consumer, dead letters and replay, and the crash points that must not lose or double anything."""

from __future__ import annotations

import asyncio
import json
import uuid

import nats
import nats.js.errors
import pytest
from sqlalchemy import Column, ForeignKey, MetaData, String, Table, insert, select, update

from netvaerk_shared import contracts, topology
from netvaerk_shared.consumer import EventConsumer, Subscription, Unprocessable, list_dead_letters, replay_dead_letter
from netvaerk_shared.envelope import make_event, to_bytes
from netvaerk_shared.outbox import Relay, backlog
from netvaerk_testing.plugin import wait_until

from .world import count_effect, effects, joined, tables, unit_of_work, uow_on


async def produce(engine, n: int) -> list[contracts.MemberJoined]:
    events = [joined() for _ in range(n)]
    uow = unit_of_work(engine)
    async with uow:
        uow.repo.record(*events)
        await uow.commit()
    return events


async def stream_messages(js, subject="members.>") -> list:
    sub = await js.pull_subscribe(subject, stream="MEMBERS")
    out = []
    while True:
        try:
            msgs = await sub.fetch(500, timeout=0.5)
        except TimeoutError:
            break
        out.extend(msgs)
        for m in msgs:
            await m.ack()
    await sub.unsubscribe()
    return out


async def effects_by_member(engine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {r.member_id: r.times for r in (await conn.execute(select(effects)))}


async def test_relay_publishes_every_committed_row_with_msg_id(engine, js):
    events = await produce(engine, 120)
    relay = Relay(engine=engine, tables=tables, js=js, service="members", batch_size=50)
    published = 0
    while n := await relay.publish_batch():
        published += n
    assert published == 120
    assert await backlog(engine, tables) == (0, 0.0)
    msgs = await stream_messages(js)
    assert len(msgs) == 120
    for m in msgs:
        body = json.loads(m.data)
        assert m.headers["Nats-Msg-Id"] == body["id"]
        assert m.subject == f"members.member.joined.v1.{body['subject']}"
    assert [json.loads(m.data)["data"]["member_id"] for m in msgs] == [str(e.member_id) for e in events]


async def test_rolled_back_change_publishes_nothing(engine, js):
    uow = unit_of_work(engine)
    with pytest.raises(RuntimeError):
        async with uow:
            uow.repo.record(joined())
            raise RuntimeError("the change failed")
    assert await backlog(engine, tables) == (0, 0.0)


async def test_relay_waits_out_a_nats_outage_and_loses_nothing(engine, tmp_path):
    from netvaerk_testing import infra

    server = infra.start_nats(tmp_path / "nats")
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    await topology.ensure_stream(js, "members")
    relay = Relay(engine=engine, tables=tables, js=js, service="members", poll_interval=0.2, publish_timeout=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        port = int(server.url.rsplit(":", 1)[1])
        server.stop()
        await produce(engine, 30)
        relay.wake()
        await asyncio.sleep(1.5)
        count, _ = await backlog(engine, tables)
        assert count == 30  # nothing marked while NATS is away
        server = infra.start_nats(tmp_path / "nats", port=port)
        await wait_until(lambda: _drained(engine), timeout=20, message="outbox drained after NATS came back")
        info = await js.stream_info("MEMBERS")
        assert info.state.messages == 30
    finally:
        stop.set()
        await task
        await nc.close()
        server.stop()


async def _drained(engine):
    return (await backlog(engine, tables))[0] == 0


async def test_two_relays_share_the_work_without_doing_any_twice(engine, js, database_url):
    await produce(engine, 2000)
    relays = [Relay(engine=engine, tables=tables, js=js, service="members", batch_size=100) for _ in range(2)]

    async def drain(relay):
        total = 0
        while n := await relay.publish_batch():
            total += n
        return total

    totals = await asyncio.gather(*(drain(r) for r in relays))
    assert sum(totals) == 2000  # each row published (and marked) by exactly one relay
    info = await js.stream_info("MEMBERS")
    assert info.state.messages == 2000


async def test_crash_between_publish_and_mark_does_each_effect_once(engine, js):
    """The relay dies after the PubAcks but before marking: the rows go out again. JetStream's duplicate window and
    the consumer's inbox keep every effect single."""
    events = await produce(engine, 40)

    class Crash(Exception):
        pass

    def crash(point):
        raise Crash(point)

    dying = Relay(engine=engine, tables=tables, js=js, service="members", fault_hook=crash)
    with pytest.raises(Crash):
        await dying.publish_batch()
    assert (await backlog(engine, tables))[0] == 40  # published, but not marked
    # the restarted relay publishes them all again
    assert await Relay(engine=engine, tables=tables, js=js, service="members").publish_batch() == 40
    # and even beyond the duplicate window (publish the same ids on a fresh stream): consumers do each effect once
    await js.delete_stream("MEMBERS")
    await topology.ensure_stream(js, "members")
    async with engine.begin() as conn:
        await conn.execute(update(tables.outbox).values(published_at=None))
    for _ in range(2):  # twice more, as if the relay had died after each publish
        await Relay(engine=engine, tables=tables, js=js, service="members").publish_batch()
        async with engine.begin() as conn:
            await conn.execute(update(tables.outbox).values(published_at=None))
    consumer = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, count_effect),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
    )
    await _consume_all(consumer, js)
    counts = await effects_by_member(engine)
    assert counts == {str(e.member_id): 1 for e in events}


async def _consume_all(consumer: EventConsumer, js, settle: float = 1.0):
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(js, stop))
    try:

        async def caught_up():
            try:
                info = await js.consumer_info(consumer.stream, consumer.name)
            except nats.js.errors.NotFoundError:
                return False  # not created yet
            return info.num_pending == 0 and info.num_ack_pending == 0

        await wait_until(caught_up, timeout=30, message="consumer caught up")
        await asyncio.sleep(settle)
    finally:
        stop.set()
        await task


async def publish_raw(js, subject: str, body: bytes, msg_id: str | None = None):
    await js.publish(subject, body, headers={"Nats-Msg-Id": msg_id or str(uuid.uuid4())})


async def test_redelivered_event_changes_nothing(engine, js):
    data = joined()
    body = to_bytes(make_event(data))
    # the same CloudEvent twice, with different Nats-Msg-Ids so JetStream keeps both
    await publish_raw(js, data.nats_subject(), body)
    await publish_raw(js, data.nats_subject(), body)
    consumer = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, count_effect),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
    )
    await _consume_all(consumer, js)
    assert await effects_by_member(engine) == {str(data.member_id): 1}
    # and once more, from a fresh process' point of view: a second run over a replayed stream
    await js.delete_consumer("MEMBERS", consumer.name)
    await _consume_all(consumer, js)
    assert await effects_by_member(engine) == {str(data.member_id): 1}


async def test_malformed_message_is_a_dead_letter_at_once_and_the_consumer_goes_on(engine, js):
    good = joined()
    await publish_raw(js, "members.member.joined.v1.x", b"{not json")
    bad_contract = make_event(good).model_copy(update={"data": {"member_id": "nope"}})
    await publish_raw(js, "members.member.joined.v1.y", to_bytes(bad_contract))
    await publish_raw(js, good.nats_subject(), to_bytes(make_event(good)))
    consumer = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, count_effect),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
    )
    await _consume_all(consumer, js)
    assert await effects_by_member(engine) == {str(good.member_id): 1}
    dead = await list_dead_letters(engine, tables)
    reasons = sorted(d["reason"] for d in dead)
    assert len(dead) == 2
    assert reasons[0].startswith("malformed: data breaks") and reasons[1].startswith("malformed: not JSON")
    assert all(d["deliveries"] == 1 for d in dead)  # no retries for malformed input
    info = await js.consumer_info("MEMBERS", consumer.name)
    assert info.num_redelivered == 0


async def test_failing_handler_retries_then_dead_letters_then_replays(engine, js):
    data = joined()
    attempts = []
    broken = {"on": True}

    async def flaky(uow, event, d):
        attempts.append(event.id)
        if broken["on"]:
            raise ConnectionError("SMTP is down")
        await count_effect(uow, event, d)

    await publish_raw(js, data.nats_subject(), to_bytes(make_event(data)))
    consumer = EventConsumer(
        service="notifications",
        subscription=Subscription(contracts.MemberJoined, flaky),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
        max_deliver=3,
    )
    consumer._backoff = lambda deliveries: 0.05  # keep the test quick; the real backoff is tested below
    await _consume_all(consumer, js, settle=0.5)
    assert len(attempts) == 3  # delivered max_deliver times, then given up
    dead = await list_dead_letters(engine, tables)
    assert len(dead) == 1 and "gave up after 3 deliveries" in dead[0]["reason"]
    assert "SMTP is down" in dead[0]["reason"]
    assert await effects_by_member(engine) == {}

    broken["on"] = False
    outcome, error = await replay_dead_letter(engine, tables, {consumer.name: consumer}, dead[0]["id"])
    assert (outcome, error) == ("processed", None)
    assert await effects_by_member(engine) == {str(data.member_id): 1}
    assert await list_dead_letters(engine, tables) == []
    outcome, _ = await replay_dead_letter(engine, tables, {consumer.name: consumer}, dead[0]["id"])
    assert outcome == "already_replayed"


async def test_unprocessable_is_a_dead_letter_without_retries(engine, js):
    async def refuse(uow, event, d):
        raise Unprocessable("group is archived")

    data = joined()
    await publish_raw(js, data.nats_subject(), to_bytes(make_event(data)))
    consumer = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, refuse),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
    )
    await _consume_all(consumer, js)
    dead = await list_dead_letters(engine, tables)
    assert [d["reason"] for d in dead] == ["unprocessable: group is archived"]


def test_backoff_grows_and_is_capped():
    consumer = EventConsumer(
        service="x",
        subscription=Subscription(contracts.MemberJoined, count_effect),
        engine=None,
        tables=tables,
        unit_of_work=uow_on,
    )
    delays = [consumer._backoff(n) for n in range(1, 12)]
    assert delays[0] < 1.0 and delays[3] > delays[0] and max(delays) <= 30.0 * 1.25


async def test_paced_low_rate_has_no_stalls(engine, js):
    """At a low, paced rate every event arrives quickly: fetch timeouts never kill the loop (STACK.md's bug)."""
    consumer = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, count_effect),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
        fetch_timeout=0.2,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(js, stop))
    try:
        sent = []
        for _ in range(8):
            data = joined()
            sent.append(str(data.member_id))
            await publish_raw(js, data.nats_subject(), to_bytes(make_event(data)))
            await asyncio.sleep(0.3)  # longer than the fetch timeout: the loop must survive idle fetches
            await wait_until(lambda: _has(engine, sent[-1]), timeout=3, message="paced event consumed promptly")
    finally:
        stop.set()
        await task
    assert sorted(await effects_by_member(engine)) == sorted(sent)


async def _has(engine, member_id):
    return member_id in await effects_by_member(engine)


async def test_one_bad_event_in_a_batch_does_not_hold_back_the_others(engine, js):
    events = [joined() for _ in range(6)]
    bad = str(events[2].member_id)
    calls = []

    async def picky(uow, event, data):
        calls.append(str(data.member_id))
        if str(data.member_id) == bad:
            raise ValueError("this one is broken")
        await count_effect(uow, event, data)

    for data in events:
        await publish_raw(js, data.nats_subject(), to_bytes(make_event(data)))
    consumer = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, picky),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
        max_deliver=2,
    )
    consumer._backoff = lambda deliveries: 0.05
    await _consume_all(consumer, js, settle=0.5)
    assert await effects_by_member(engine) == {str(e.member_id): 1 for e in events if str(e.member_id) != bad}
    assert calls.count(bad) == 2  # once per delivery, although its batch was done twice
    dead = await list_dead_letters(engine, tables)
    assert [d["event_id"] for d in dead] and dead[0]["type"] == "dk.danskit.member.joined.v1"


async def test_batch_handler_does_the_batch_and_falls_back_event_by_event(engine, js):
    events = [joined() for _ in range(40)]
    bad = str(events[7].member_id)
    batches = []

    async def one(uow, event, data):
        if str(data.member_id) == bad:
            raise ValueError("broken")
        await count_effect(uow, event, data)

    async def many(uow, batch):
        batches.append(len(batch))
        if any(str(d.member_id) == bad for _, d in batch):
            raise ValueError("a broken event in the batch")
        async with uow:
            for _, data in batch:
                await uow.repo.count(data.member_id)
            await uow.commit()

    for data in events:
        await publish_raw(js, data.nats_subject(), to_bytes(make_event(data)))
    consumer = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, one, many),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
        max_deliver=2,
    )
    consumer._backoff = lambda deliveries: 0.05
    await _consume_all(consumer, js, settle=0.5)
    assert await effects_by_member(engine) == {str(e.member_id): 1 for e in events if str(e.member_id) != bad}
    assert max(batches) > 1  # the batch handler really got batches
    assert [d["event_id"] for d in await list_dead_letters(engine, tables)] != []


async def test_a_batch_whose_commit_is_refused_is_done_one_event_per_transaction(engine, js, caplog):
    """The database refuses the batch's commit (a deferred foreign key) while it answers: the batch is done again one
    event per transaction, so the others commit and the failure is counted against the one event that causes it."""
    refs = MetaData()
    Table("parents", refs, Column("id", String(36), primary_key=True))
    pledges = Table(
        "pledges",
        refs,
        Column("member_id", String(36), primary_key=True),
        Column("parent_id", String(36), ForeignKey("parents.id", deferrable=True, initially="DEFERRED")),
    )
    async with engine.begin() as conn:
        await conn.run_sync(refs.create_all)
    events = [joined() for _ in range(5)]
    bad = str(events[3].member_id)
    calls = []

    async def pledge(uow, event, data):
        calls.append(str(data.member_id))
        if str(data.member_id) == bad:  # accepted now, refused at commit: no such parent
            await uow.conn.execute(insert(pledges).values(member_id=bad, parent_id=str(uuid.uuid4())))
        await count_effect(uow, event, data)

    for data in events:
        await publish_raw(js, data.nats_subject(), to_bytes(make_event(data)))
    consumer = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, pledge),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
        max_deliver=2,
        batch_size=10,
    )
    consumer._backoff = lambda deliveries: 0.05
    with caplog.at_level("WARNING", logger="netvaerk_shared.consumer"):
        await _consume_all(consumer, js, settle=0.5)
    assert await effects_by_member(engine) == {str(e.member_id): 1 for e in events if str(e.member_id) != bad}
    [dead] = await list_dead_letters(engine, tables)
    assert dead["event_id"] and dead["deliveries"] == 2
    assert dead["reason"].startswith("gave up after 2 deliveries; last error: IntegrityError")
    assert any("redoing the" in r.getMessage() and "one per transaction" in r.getMessage() for r in caplog.records)
    assert calls.count(bad) == 4  # per delivery: in the batch, then in its own transaction
    assert consumer._tally == {}


async def test_consumer_carries_on_after_nats_restarts(engine, tmp_path):
    from netvaerk_testing import infra

    server = infra.start_nats(tmp_path / "nats")
    port = int(server.url.rsplit(":", 1)[1])
    nc = await topology.connect(server.url)
    js = nc.jetstream()
    await topology.ensure_stream(js, "members")
    consumer = EventConsumer(
        service="meetings",
        subscription=Subscription(contracts.MemberJoined, count_effect),
        engine=engine,
        tables=tables,
        unit_of_work=uow_on,
        fetch_timeout=0.3,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(js, stop))
    before, after = [joined() for _ in range(5)], [joined() for _ in range(5)]
    try:
        for data in before:
            await publish_raw(js, data.nats_subject(), to_bytes(make_event(data)))
        await wait_until(lambda: _count_is(engine, 5), timeout=10, message="first events consumed")
        server.stop()
        await asyncio.sleep(1.0)
        server = infra.start_nats(tmp_path / "nats", port=port)  # same store: stream and durable survive
        await wait_until(lambda: nc.is_connected, timeout=15, message="client reconnected")
        for data in after:
            await publish_raw(js, data.nats_subject(), to_bytes(make_event(data)))
        await wait_until(lambda: _count_is(engine, 10), timeout=20, message="events after the restart consumed")
    finally:
        stop.set()
        await task
        await nc.close()
        server.stop()
    assert await effects_by_member(engine) == {str(e.member_id): 1 for e in before + after}


async def _count_is(engine, n):
    return len(await effects_by_member(engine)) == n
