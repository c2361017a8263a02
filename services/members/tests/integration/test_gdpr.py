"""GDPR in the members service, in-process against real NATS JetStream and a real database (PostgreSQL and SQLite):
the export members gathers over NATS (answering for itself), and the erasure: every row of the member gone from
every table, the outbox history scrubbed, MemberErased published, and MEMBERS purged of the member's events up to
the notice, which stays."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
from sqlalchemy import MetaData, inspect, select

from members.adapters import gdpr as adapter
from members.adapters import orm
from members.bootstrap import MIGRATIONS, bootstrap
from members.config import Settings
from members.entrypoints.http import create_app
from netvaerk_shared.db import create_engine
from netvaerk_shared.http import ACTING_MEMBER_HEADER
from netvaerk_shared.migrate import alembic_config, upgrade
from netvaerk_testing.plugin import running_app, service_settings, wait_until

NAME, EMAIL, PHONE = "Gudrun Slettemand", "gudrun.slettemand@example.org", "+45 11 22 33 44"


@pytest.fixture
async def service(clean_nats, database_url):
    runtime = bootstrap(
        service_settings(
            Settings, database_url, clean_nats, gdpr_export_services="members", gdpr_export_timeout_seconds=2
        )
    )
    async with running_app(create_app(), runtime) as client:
        await wait_until(lambda: runtime.relay is not None and "gdpr-export" in runtime.workers, message="started")
        yield client, runtime


async def register(client, name: str = NAME, email: str = EMAIL, phone: str | None = PHONE) -> str:
    r = await client.post(
        "/members",
        json={
            "name": name,
            "email": email,
            "phone": phone,
            "organisation": {"name": "Eksempel Region", "kind": "public_authority"},
            "job_title": "Arkitekt",
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["member_id"]


async def group(client, name: str, capacity: int | None = None) -> str:
    r = await client.post("/groups", json={"name": name, "region": "Vest", "capacity": capacity})
    assert r.status_code == 201, r.text
    return r.json()["group_id"]


async def dump(runtime) -> str:
    """Every row of every table of the members database, as text."""
    reflected = MetaData()
    async with runtime.engine.connect() as conn:
        await conn.run_sync(reflected.reflect)
        out = []
        for table in reflected.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                out.append(f"{table.name}: " + " ".join(str(v) for v in row))
    return "\n".join(out)


async def stream_messages(nats_url: str) -> list:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("MEMBERS")
        sub = await js.pull_subscribe("members.>", stream="MEMBERS")
        got = []
        while len(got) < info.state.messages:
            got += await sub.fetch(info.state.messages - len(got), timeout=2)
        await sub.unsubscribe()
        return got
    finally:
        await nc.close()


def test_every_table_that_refers_to_a_member_is_erased_and_exported() -> None:
    """A table added to orm.py with a member_id (or a foreign key to members) is covered without a change."""
    names = {t.name for t, _ in adapter.personal_tables()}
    assert {"memberships", "consents", "join_requests"} <= names
    assert not names & {"outbox", "inbox", "dead_letters", "groups", "organisations", "members"}
    # the proof of erasure (ids and times only) is neither erased by an erasure nor part of an export
    assert "erased_members" not in names and set(orm.erased_members.c.keys()) == {"member_id", "erased_at"}
    for table in orm.metadata.sorted_tables:
        if "member_id" in table.c and table.name not in {"outbox", "inbox", "dead_letters", "erased_members"}:
            assert table.name in names


async def test_export_gathers_members_part_over_nats(service) -> None:
    client, runtime = service
    member = await register(client)
    g = await group(client, "GDPR-gruppen")
    assert (await client.post(f"/groups/{g}/members", json={"member_id": member})).status_code == 201

    r = await client.get(f"/members/{member}/gdpr-export", headers={ACTING_MEMBER_HEADER: member})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["member_id"] == member and set(body["services"]) == {"members"}
    part = body["services"]["members"]
    assert part["member"]["email"] == EMAIL and part["member"]["name"] == NAME
    assert [m["group_id"] for m in part["records"]["memberships"]] == [g]
    assert part["records"]["members"][0]["phone"] == "+45 11 22 33 44"

    other = str(uuid.uuid4())
    r = await client.get(f"/members/{member}/gdpr-export", headers={ACTING_MEMBER_HEADER: other})
    assert r.status_code == 403
    r = await client.get(f"/members/{other}/gdpr-export")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


async def test_export_fails_naming_the_service_that_does_not_answer(service) -> None:
    client, runtime = service
    member = await register(client)
    runtime.settings.gdpr_export_services = "members,meetings,notifications"  # neither of the two runs here
    r = await client.get(f"/members/{member}/gdpr-export")
    assert r.status_code == 504, r.text
    problem = r.json()
    assert problem["silent_services"] == ["meetings", "notifications"]
    assert "meetings" in problem["detail"] and "notifications" in problem["detail"]
    assert EMAIL not in r.text  # nothing of the member's data in a failed export


async def test_erasure_leaves_no_trace_here_and_keeps_only_the_notice_in_the_stream(service, clean_nats) -> None:
    client, runtime = service
    member = await register(client)
    kept = await register(client, "Bent Bliver", "bent.bliver@example.org", None)
    full = await group(client, "Fuld gruppe", capacity=1)
    for m in (member, kept):  # the second waits for a seat
        r = await client.post(f"/groups/{full}/members", json={"member_id": m})
        assert r.status_code in (201, 202), r.text
    await wait_until(lambda: all_published(runtime), message="events published")

    r = await client.post(f"/members/{str(uuid.uuid4())}/erasure", headers={ACTING_MEMBER_HEADER: member})
    assert r.status_code == 403
    r = await client.post(f"/members/{member}/erasure", headers={ACTING_MEMBER_HEADER: member})
    assert r.status_code == 202, r.text
    assert r.json()["member_id"] == member
    erased_at = r.json()["erased_at"]

    tables = await dump(runtime)
    assert NAME not in tables and EMAIL not in tables and PHONE not in tables
    assert "Bent Bliver" in tables  # only that member
    assert (await client.get(f"/members/{member}")).status_code == 404
    roster = (await client.get(f"/groups/{full}")).json()["members"]
    assert [m["member_id"] for m in roster] == [kept]  # the freed seat went to the next in line

    async def purged() -> bool:
        msgs = await stream_messages(clean_nats)
        about = [m for m in msgs if m.subject.endswith(member)]
        return [m.subject for m in about] == [f"members.member.erased.v1.{member}"] and msgs

    await wait_until(purged, timeout=15, message="MEMBERS purged up to the notice")
    msgs = await stream_messages(clean_nats)
    assert not any(NAME.encode() in m.data or EMAIL.encode() in m.data for m in msgs)
    assert any(b"Bent Bliver" in m.data for m in msgs)
    o = orm.messaging.outbox
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(o.c.subject, o.c.published_at).where(o.c.subject.like(f"%{member}")))).all()
    assert [r.subject for r in rows] == [f"members.member.erased.v1.{member}"] and rows[0].published_at is not None

    again = await client.post(f"/members/{member}/erasure")
    assert again.status_code == 202, again.text  # idempotent: the original time, nothing done or told again
    assert again.json()["erased_at"] == erased_at and "already" in again.json()["detail"]
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(o.c.subject).where(o.c.subject.like(f"%{member}")))).all()
    assert [r.subject for r in rows] == [f"members.member.erased.v1.{member}"]
    assert (await client.get(f"/members/{member}")).status_code == 404


async def all_published(runtime) -> bool:
    o = orm.messaging.outbox
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(o.c.published_at))).scalars().all()
    return bool(rows) and all(r is not None for r in rows)


async def erased_rows(runtime) -> list[tuple]:
    e = orm.erased_members
    async with runtime.engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(select(e).order_by(e.c.erased_at))]


async def test_a_repeated_erasure_answers_202_with_the_original_time_and_writes_and_tells_nothing(service) -> None:
    client, runtime = service
    member = await register(client)
    first = await client.post(f"/members/{member}/erasure")
    assert first.status_code == 202, first.text
    [(erased_id, erased_at)] = await erased_rows(runtime)  # the id and the time: nothing else of the person
    assert str(erased_id) == member
    assert NAME not in await dump(runtime) and EMAIL not in await dump(runtime)
    before = await dump(runtime)
    for headers in ({}, {ACTING_MEMBER_HEADER: member}):  # the administration, or the member (via the gateway)
        again = await client.post(f"/members/{member}/erasure", headers=headers)
        assert again.status_code == 202, again.text
        assert again.json()["member_id"] == member and again.json()["erased_at"] == first.json()["erased_at"]
    assert await dump(runtime) == before  # no row written, no second notice in the outbox
    assert (await client.get(f"/members/{member}")).status_code == 404
    assert (await client.get(f"/members/{member}/export")).status_code == 404  # erased_members is not exported
    r = await client.get(f"/members/{member}/gdpr-export")
    assert r.status_code == 404, r.text
    assert (await client.post(f"/members/{uuid.uuid4()}/erasure")).status_code == 404  # never a member here

    # a new registration with the same address is a new member, and erasing them is a first erasure again
    newcomer = await register(client)
    assert newcomer != member
    assert (await client.get(f"/members/{newcomer}")).json()["email"] == EMAIL
    part = (await client.get(f"/members/{newcomer}/gdpr-export")).json()["services"]["members"]
    assert "erased_members" not in part["records"]
    r = await client.post(f"/members/{newcomer}/erasure")
    assert r.status_code == 202 and "already" not in r.json()["detail"]
    assert [str(i) for i, _ in await erased_rows(runtime)] == [member, newcomer]


async def test_two_erasures_of_one_member_at_once_both_answer_202_and_one_notice_goes_out(service) -> None:
    client, runtime = service
    member = await register(client)
    g = await group(client, "Samtidig", capacity=1)
    assert (await client.post(f"/groups/{g}/members", json={"member_id": member})).status_code == 201
    answers = await asyncio.gather(*(client.post(f"/members/{member}/erasure") for _ in range(2)))
    assert [r.status_code for r in answers] == [202, 202], [r.text for r in answers]
    assert answers[0].json()["erased_at"] == answers[1].json()["erased_at"]
    o = orm.messaging.outbox
    async with runtime.engine.connect() as conn:
        notices = (await conn.execute(select(o.c.subject).where(o.c.type == "dk.danskit.member.erased.v1"))).all()
    assert [n.subject for n in notices] == [f"members.member.erased.v1.{member}"]
    assert len(await erased_rows(runtime)) == 1


async def test_migration_0006_adds_erased_members_and_takes_it_off_again(database_url) -> None:
    from alembic import command

    engine = create_engine(database_url)
    cfg = alembic_config(MIGRATIONS)

    def tables(sync_conn) -> set[str]:
        return set(inspect(sync_conn).get_table_names())

    def down(sync_conn) -> None:
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, "0005")

    try:
        await upgrade(engine, MIGRATIONS, "0005")
        async with engine.connect() as conn:
            assert "erased_members" not in await conn.run_sync(tables)
        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as conn:
            assert "erased_members" in await conn.run_sync(tables)
            columns = await conn.run_sync(lambda c: {x["name"] for x in inspect(c).get_columns("erased_members")})
        assert columns == {"member_id", "erased_at"}  # ids and times only
        async with engine.begin() as conn:
            await conn.run_sync(down)
        async with engine.connect() as conn:
            assert "erased_members" not in await conn.run_sync(tables)
        await upgrade(engine, MIGRATIONS)
    finally:
        await engine.dispose()
