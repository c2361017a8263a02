"""netvaerk_shared.gdpr against a real NATS server and real databases: the export gathered from every responder (and
failing, naming them, when one is silent or cannot answer), the messaging tables scrubbed of one member only, and the
stream purged of a member's events up to, not including, the erasure notice."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import func, insert, select, update

from netvaerk_shared import contracts, gdpr
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_shared.envelope import make_event, to_bytes
from netvaerk_shared.outbox import enqueue

from . import world

NOW = datetime(2027, 3, 4, 13, 0, tzinfo=UTC)


@dataclass
class FakeRuntime:
    """What a responder uses of its runtime: the service's name, its NATS connection and its engine."""

    service: str
    nc: Any
    engine: Any = None


async def start(responder: gdpr.ExportResponder) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(responder.run(stop))
    await asyncio.sleep(0.05)  # subscribed
    return stop, task


async def halt(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, 5)


def holding(part: dict[str, Any] | None):
    async def export(engine: Any, member_id: uuid.UUID) -> dict[str, Any] | None:
        return None if part is None else {**part, "member_id": member_id}

    return export


@pytest.fixture
async def nc(clean_nats):
    conn = await nats.connect(clean_nats)
    yield conn
    await conn.close()


async def test_export_gathers_each_services_part(nc) -> None:
    member = uuid.uuid4()
    parts = {"members": {"name": "Mette Eksempel"}, "meetings": {"groups": [1, 2]}, "notifications": None}
    running = [await start(gdpr.ExportResponder(FakeRuntime(s, nc), holding(p))) for s, p in parts.items()]
    try:
        got = await gdpr.gather_export(nc, member, list(parts), timeout=3)
    finally:
        for r in running:
            await halt(*r)
    assert got == {
        "members": {"name": "Mette Eksempel", "member_id": str(member)},
        "meetings": {"groups": [1, 2], "member_id": str(member)},
        "notifications": None,  # holds nothing: an answer all the same
    }


async def test_a_silent_service_fails_the_export_by_name_within_the_timeout(nc) -> None:
    running = [
        await start(gdpr.ExportResponder(FakeRuntime(s, nc), holding({"x": 1}))) for s in ("members", "meetings")
    ]
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(gdpr.ExportIncomplete) as caught:
            await gdpr.gather_export(nc, uuid.uuid4(), ["members", "meetings", "notifications"], timeout=0.5)
        assert 0.5 <= loop.time() - began < 2
    finally:
        for r in running:
            await halt(*r)
    assert caught.value.silent == ["notifications"] and caught.value.failed == {}
    assert "notifications" in str(caught.value)


async def test_a_service_whose_database_is_away_fails_the_export_by_name(nc) -> None:
    async def away(engine: Any, member_id: uuid.UUID) -> dict[str, Any] | None:
        raise ConnectionRefusedError("connection refused")

    running = [
        await start(gdpr.ExportResponder(FakeRuntime("members", nc), holding({"x": 1}))),
        await start(gdpr.ExportResponder(FakeRuntime("meetings", nc), away)),
    ]
    try:
        with pytest.raises(gdpr.ExportIncomplete) as caught:
            await gdpr.gather_export(nc, uuid.uuid4(), ["members", "meetings"], timeout=3)
    finally:
        for r in running:
            await halt(*r)
    assert caught.value.silent == [] and caught.value.failed == {"meetings": "database unavailable"}


async def test_a_part_larger_than_max_payload_arrives_whole_in_chunks(nc) -> None:
    big = {"deliveries": ["ø" * 1000] * 3000}  # about 6 MB of JSON, the server takes 1 MiB a message
    assert len(json.dumps(big, ensure_ascii=False).encode()) > 3 * nc.max_payload
    running = await start(gdpr.ExportResponder(FakeRuntime("notifications", nc), holding(big)))
    try:
        got = await gdpr.gather_export(nc, uuid.uuid4(), ["notifications"], timeout=5)
    finally:
        await halt(*running)
    assert got["notifications"] is not None and got["notifications"]["deliveries"] == big["deliveries"]


async def test_one_instance_of_a_service_answers_and_the_gatherer_answers_itself(clean_nats, nc) -> None:
    """Two instances of members (a queue group): one answers. The gathering connection also responds (members asks
    itself) without holding up its own loop."""
    other = await nats.connect(clean_nats)
    first = gdpr.ExportResponder(FakeRuntime("members", nc), holding({"x": 1}))
    second = gdpr.ExportResponder(FakeRuntime("members", other), holding({"x": 1}))
    running = [await start(first), await start(second)]
    try:
        for _ in range(4):
            got = await gdpr.gather_export(nc, uuid.uuid4(), ["members"], timeout=3)
            assert got["members"] is not None
        await asyncio.sleep(0.2)  # a second answer would have come by now
    finally:
        for r in running:
            await halt(*r)
        await other.close()
    assert first.answered + second.answered == 4


async def test_a_malformed_request_is_answered_as_an_error(nc) -> None:
    running = await start(gdpr.ExportResponder(FakeRuntime("members", nc), holding({"x": 1})))
    try:
        reply = await nc.request(gdpr.EXPORT_SUBJECT, b"not json", timeout=2)
    finally:
        await halt(*running)
    assert json.loads(reply.data)["status"] == "error"
    assert reply.headers[gdpr.SERVICE_HEADER] == "members"


# -- scrubbing the messaging tables ------------------------------------------------------------------------------
def _registered(member_id: uuid.UUID, name: str, email: str) -> contracts.MemberRegistered:
    return contracts.MemberRegistered(
        member_id=member_id,
        name=name,
        email=email,
        organisation=contracts.Organisation(id=uuid.uuid4(), name="Eksempel Kommune", kind="public_authority"),
        job_title="Kontorchef",
        locale="da",
        registered_at=NOW,
    )


async def test_scrub_takes_the_members_outbox_rows_and_dead_letters_only(engine) -> None:
    erased, kept = uuid.uuid4(), uuid.uuid4()
    t = world.tables
    events = [
        _registered(erased, "Mette Eksempel", "mette@example.org"),
        world.joined(erased),
        _registered(kept, "Jens Eksempel", "jens@example.org"),
        world.joined(kept),
        contracts.NotificationSent(  # another aggregate's event that names the member in its data
            notification_id=uuid.uuid4(),
            member_id=erased,
            kind="welcome",
            channel="email",
            cause_event_id=uuid.uuid4(),
            sent_at=NOW,
        ),
    ]
    pending = world.joined(erased)  # committed, not yet published, ids only: it is still published
    pending_personal = _registered(erased, "Mette Eksempel", "mette@example.org")  # not yet published: it goes
    async with engine.begin() as conn:
        await enqueue(conn, t, [make_event(e) for e in events], [e.nats_subject() for e in events])
        await conn.execute(update(t.outbox).values(published_at=NOW))
        await enqueue(
            conn,
            t,
            [make_event(pending), make_event(pending_personal)],
            [pending.nats_subject(), pending_personal.nats_subject()],
        )
        for i, event in enumerate(events[:3]):
            body = to_bytes(make_event(event))
            await conn.execute(
                insert(t.dead_letters).values(
                    id=str(uuid.uuid4()),
                    consumer="c",
                    stream="MEMBERS",
                    stream_seq=i + 1,
                    subject=event.nats_subject(),
                    body=body,
                    reason="x",
                    deliveries=1,
                    created_at=NOW,
                )
            )
        await conn.execute(insert(t.inbox).values(consumer="c", event_id="e1", type="t", processed_at=NOW))
    async with engine.begin() as conn:
        scrubbed = await gdpr.scrub_messaging(conn, t, erased)
    assert scrubbed == gdpr.Scrubbed(outbox=4, dead_letters=2)
    async with engine.connect() as conn:
        left = (await conn.execute(select(t.outbox.c.body, t.outbox.c.published_at))).all()
        dead = (await conn.execute(select(t.dead_letters.c.body))).scalars().all()
        inbox = (await conn.execute(select(func.count()).select_from(t.inbox))).scalar_one()
    published = [body for body, at in left if at is not None]
    unpublished = [body for body, at in left if at is None]
    assert len(published) == 2 and all(str(kept).encode() in b for b in published)
    assert len(unpublished) == 1
    assert b"member.joined" in unpublished[0] and str(erased).encode() in unpublished[0]
    assert not any(b"Mette" in b or str(erased).encode() in b for b in [*published, *dead])
    assert not any(b"Mette" in b for b in unpublished)
    assert len(dead) == 1 and b"Jens" in dead[0]
    assert inbox == 1
    async with engine.begin() as conn:  # again: nothing more
        assert await gdpr.scrub_messaging(conn, t, erased) == gdpr.Scrubbed(outbox=0, dead_letters=0)


# -- purging the stream ------------------------------------------------------------------------------------------
async def test_purge_takes_the_members_events_before_the_notice_and_keeps_the_notice(js) -> None:
    erased, kept = uuid.uuid4(), uuid.uuid4()
    for event in (
        _registered(erased, "Mette Eksempel", "mette@example.org"),
        world.joined(erased),
        _registered(kept, "Jens Eksempel", "jens@example.org"),
    ):
        await js.publish(event.nats_subject(), to_bytes(make_event(event)))
    notice = MemberErased(member_id=erased, erased_at=NOW)
    filter_subject = f"members.member.*.*.{erased}"

    with pytest.raises(NotFoundError):  # the notice is not in the stream yet: nothing is purged
        await gdpr.purge_before_notice(js, "MEMBERS", filter_subject, notice.nats_subject())
    assert (await js.stream_info("MEMBERS")).state.messages == 3

    ack = await js.publish(notice.nats_subject(), to_bytes(make_event(notice)))
    assert await gdpr.purge_before_notice(js, "MEMBERS", filter_subject, notice.nats_subject()) == ack.seq
    assert await gdpr.purge_before_notice(js, "MEMBERS", filter_subject, notice.nats_subject()) == ack.seq

    sub = await js.pull_subscribe("members.>", stream="MEMBERS")
    msgs = await sub.fetch(10, timeout=2)
    assert [m.subject for m in msgs] == [f"members.member.registered.v1.{kept}", notice.nats_subject()]
    assert not any(b"Mette" in m.data for m in msgs)
    await sub.unsubscribe()


async def test_erased_events_are_overwritten_in_the_streams_files_not_only_marked_deleted(tmp_path) -> None:
    """A purge alone leaves the bytes in the stream's block files until the server compacts them: the name and the
    email would still be on disk. The erasure overwrites each message first (secure delete), so they are not."""
    from netvaerk_shared import topology
    from netvaerk_testing import infra

    store = tmp_path / "nats"
    server = infra.start_nats(store)
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        await topology.ensure_stream(js, "members")
        erased, kept = uuid.uuid4(), uuid.uuid4()
        for event in (
            _registered(erased, "Mette Slettesen", "mette.slettesen@example.org"),
            world.joined(erased),
            _registered(kept, "Jens Bliversen", "jens.bliversen@example.org"),
        ):
            await js.publish(event.nats_subject(), to_bytes(make_event(event)))
        notice = MemberErased(member_id=erased, erased_at=NOW)
        await js.publish(notice.nats_subject(), to_bytes(make_event(notice)))

        def on_disk(needle: bytes) -> bool:
            return any(
                needle in path.read_bytes()
                for path in store.rglob("*")
                if path.is_file() and not path.name.endswith(".log")
            )

        async def eventually(check: Any, timeout: float = 10.0) -> bool:
            deadline = asyncio.get_running_loop().time() + timeout
            while not check():
                if asyncio.get_running_loop().time() > deadline:
                    return False
                await asyncio.sleep(0.05)
            return True

        assert await eventually(lambda: on_disk(b"mette.slettesen@example.org")), "the events reached the files"
        await gdpr.purge_before_notice(js, "MEMBERS", f"members.member.*.*.{erased}", notice.nats_subject())

        gone = await eventually(lambda: not on_disk(b"mette.slettesen@example.org") and not on_disk(b"Mette Slettesen"))
        assert gone, "the erased member's name or email is still in the stream's files"
        assert on_disk(b"jens.bliversen@example.org"), "another member's events are untouched"
        assert (await js.stream_info("MEMBERS")).state.messages == 2  # Jens's and the notice
    finally:
        await nc.close()
        server.stop()


async def test_on_sqlite_an_erased_row_leaves_no_copy_in_the_files(tmp_path) -> None:
    """secure_delete zeroes the deleted row in the database file; forget_on_disk checkpoints and truncates the
    write-ahead log, which still held the page as it was before the erasure."""
    from sqlalchemy import Column, MetaData, String, Table, delete

    from netvaerk_shared.db import create_engine
    from netvaerk_testing.infra import sqlite_url

    path = tmp_path / "service.db"
    engine = create_engine(sqlite_url(path))
    people = Table("people", MetaData(), Column("email", String(200), primary_key=True))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(people.metadata.create_all)
        async with engine.begin() as conn:
            await conn.execute(
                insert(people), [{"email": "mette.slettesen@example.org"}, {"email": "jens@example.org"}]
            )
        async with engine.begin() as conn:
            await conn.execute(delete(people).where(people.c.email == "mette.slettesen@example.org"))

        def files() -> bytes:
            return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("service.db"))

        assert b"mette.slettesen@example.org" in files(), "the log still holds the row as it was"
        await gdpr.forget_on_disk(engine)
        assert b"mette.slettesen@example.org" not in files()
        assert b"jens@example.org" in files()
    finally:
        await engine.dispose()
