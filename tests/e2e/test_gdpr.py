"""End to end: GDPR across the three services as real processes. The export gathers every service's part (and fails,
naming it, when one is stopped); after an erasure no table of any service and no message of any stream holds the
member's name or email (nor, on SQLite, any byte of its database files), the erasure notice is still in MEMBERS,
the meetings roster lost the member as members did, and no log line names the member."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import nats
import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.engine import make_url

from netvaerk_shared.db import create_engine, is_sqlite
from netvaerk_testing.plugin import wait_until

from .test_platform import join, new_group, schedule

pytestmark = pytest.mark.e2e
STREAMS = {"MEMBERS": "members.>", "MEETINGS": "meetings.>", "NOTIFICATIONS": "notifications.>"}


def register(p, name: str, email: str) -> str:
    status, body = p.call(
        "members",
        "POST",
        "/members",
        {
            "name": name,
            "email": email,
            "phone": "+45 20 30 40 50",
            "job_title": "Digitaliseringskonsulent",
            "organisation": {"name": "Eksempel Kommune", "kind": "public_authority"},
        },
    )
    assert status == 201, body
    return body["member_id"]


async def all_rows(p) -> dict[str, str]:
    """service -> every row of every table of its database, as text (one line a row)."""
    out = {}
    for name, service in p.services.items():
        engine = create_engine(service.env["DATABASE_URL"])
        reflected = MetaData()
        lines = []
        try:
            async with engine.connect() as conn:
                await conn.run_sync(reflected.reflect)
                for table in reflected.sorted_tables:
                    for row in (await conn.execute(select(table))).all():
                        values = [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in row]
                        lines.append(f"{table.name}: {' | '.join(values)}")
        finally:
            await engine.dispose()
        out[name] = "\n".join(lines)
    return out


async def all_messages(nats_url: str) -> dict[str, list]:
    """stream -> every message in it, read with a consumer of our own."""
    nc = await nats.connect(nats_url)
    out: dict[str, list] = {}
    try:
        js = nc.jetstream()
        for stream, subjects in STREAMS.items():
            count = (await js.stream_info(stream)).state.messages
            sub = await js.pull_subscribe(subjects, stream=stream)
            got: list = []
            while len(got) < count:
                got += await sub.fetch(count - len(got), timeout=2)
            await sub.unsubscribe()
            out[stream] = got
    finally:
        await nc.close()
    return out


def sqlite_files(p) -> list[Path]:
    """Each service's SQLite database and the files beside it (-wal, -shm, -journal)."""
    found: list[Path] = []
    for service in p.services.values():
        database = Path(make_url(service.env["DATABASE_URL"]).database or "")
        found += [path for path in database.parent.glob(database.name + "*") if path.is_file()]
    return found


def holds_bytes(data: bytes, *needles: str) -> list[str]:
    return [n for n in needles if n.encode() in data or n.lower().encode() in data]


def holds(text: str, *needles: str) -> list[str]:
    low = text.lower()
    return [n for n in needles if n.lower() in low]


@pytest.mark.parametrize("platform", ["postgresql", "sqlite"], indirect=True)
async def test_after_erasure_no_table_and_no_stream_holds_the_member(platform):
    p = platform
    tag = uuid.uuid4().hex[:8]
    name, email = f"Ingeborg Glemmesen {tag}", f"ingeborg.glemmesen.{tag}@example.org"
    other_name, other_email = f"Kaj Bliverher {tag}", f"kaj.bliverher.{tag}@example.org"
    group_id = new_group(p, f"Netværk for glemsel {tag}")
    member = register(p, name, email)
    other = register(p, other_name, other_email)
    for m in (member, other):
        join(p, m, group_id)
    await wait_until(lambda: len(p.mails()) >= 2, timeout=20, message="two welcome emails")

    async def roster(n: int) -> bool:
        status, body = p.call("meetings", "GET", f"/groups/{group_id}")
        return status == 200 and len(body["members"]) == n

    await wait_until(lambda: roster(2), timeout=20, message="meetings knows the roster")
    status, meeting = schedule(p, group_id)
    assert status == 201, meeting
    await wait_until(lambda: len(p.mails()) >= 4, timeout=20, message="two invitations")

    # the export: one document with the three services' parts
    status, export = p.call("members", "GET", f"/members/{member}/gdpr-export", headers={"X-Netvaerk-Member": member})
    assert status == 200, export
    parts = export["services"]
    assert set(parts) == {"members", "meetings", "notifications"} and all(parts.values())
    assert parts["members"]["member"]["email"] == email
    assert [g["group_id"] for g in parts["meetings"]["group_memberships"]] == [group_id]
    assert parts["notifications"]["contact"]["email"] == email
    assert {d["kind"] for d in parts["notifications"]["deliveries"]} == {"welcome", "invitation"}

    before = await all_rows(p)
    assert all(holds(before[s], name, email) for s in ("members", "notifications")), "the dump must see the member"
    status, body = p.call("members", "POST", f"/members/{member}/erasure", headers={"X-Netvaerk-Member": member})
    assert status == 202, body

    async def erased_everywhere() -> bool:
        rows = await all_rows(p)
        messages = await all_messages(p.nats_url)
        in_streams = [
            m for msgs in messages.values() for m in msgs if holds(m.data.decode(errors="replace"), name, email)
        ]
        return not any(holds(text, name, email) for text in rows.values()) and not in_streams

    await wait_until(erased_everywhere, timeout=20, interval=0.5, message="the member erased in every service")

    rows = await all_rows(p)
    for service, text in rows.items():
        assert not holds(text, name, email), f"{service} still holds the member's name or email"
    assert holds(rows["members"], other_name, other_email) and holds(rows["notifications"], other_email)
    messages = await all_messages(p.nats_url)
    for stream, msgs in messages.items():
        for msg in msgs:
            assert not holds(msg.data.decode(errors="replace"), name, email), f"{stream}: {msg.subject}"
    about = [m.subject for m in messages["MEMBERS"] if m.subject.endswith(member)]
    assert about == [f"members.member.erased.v1.{member}"], "only the erasure notice is left of the member"
    assert any(other_email.encode() in m.data for m in messages["MEMBERS"]), "the others' events stay"

    assert await roster(1), "the meetings roster follows members: the erased member's seat is gone there too"
    if all(is_sqlite(service.env["DATABASE_URL"]) for service in p.services.values()):
        # not only the rows: the bytes of each database file and its write-ahead log (secure_delete, and the
        # checkpoint after the notice, gdpr.forget_on_disk)
        async def files_clean() -> bool:
            return not [path for path in sqlite_files(p) if holds_bytes(path.read_bytes(), name, email)]

        await wait_until(files_clean, timeout=10, interval=0.2, message="no SQLite file holds the member")
        assert any(holds_bytes(path.read_bytes(), other_email) for path in sqlite_files(p)), "the files are read"
    for service in ("meetings", "notifications"):
        status, _ = p.call(service, "GET", f"/members/{member}/export")
        assert status == 404, service
    status, _ = p.call("members", "GET", f"/members/{member}/gdpr-export")
    assert status == 404
    status, again = p.call("members", "POST", f"/members/{member}/erasure")
    assert status == 202 and again["erased_at"] == body["erased_at"], again  # idempotent: the original time

    await asyncio.sleep(1)  # the logs have what they will have
    for service_name, service in p.services.items():
        assert not holds(service.log(), name, email), f"{service_name} logged the member's name or email"


async def test_export_fails_naming_a_stopped_service(platform):
    p = platform
    tag = uuid.uuid4().hex[:8]
    member = register(p, f"Svend Eksport {tag}", f"svend.eksport.{tag}@example.org")
    group_id = new_group(p, f"Eksportgruppen {tag}")
    join(p, member, group_id)
    await wait_until(lambda: len(p.mails()) >= 1, timeout=20, message="welcome email")
    status, export = p.call("members", "GET", f"/members/{member}/gdpr-export")
    assert status == 200 and all(export["services"].values()), export

    p.services["notifications"].stop()
    status, problem = p.call("members", "GET", f"/members/{member}/gdpr-export")
    assert status == 504, problem
    assert problem["silent_services"] == ["notifications"] and "notifications" in problem["detail"]
    assert "services" not in problem  # nothing partial
    p.services["notifications"].start()
    status, export = p.call("members", "GET", f"/members/{member}/gdpr-export")
    assert status == 200 and all(export["services"].values()), export
