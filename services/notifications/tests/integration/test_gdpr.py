"""GDPR in the notifications service, in-process against real NATS JetStream, a real database (PostgreSQL and
SQLite) and a real SMTP sink: its part of an export over NATS; on MemberErased the contact, roster rows and deliveries
go, a second notice changes nothing, and a MemberRegistered or MemberJoined that arrives after the erasure (other
durables) neither brings the contact back nor sends a mail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import nats
from sqlalchemy import MetaData, select

from netvaerk_shared import gdpr
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_testing.plugin import wait_until

from . import test_notifications_flow as flow
from .test_notifications_flow import group, joined, mails, member, publish

app, js, smtp = flow.app, flow.js, flow.smtp  # the flow tests' fixtures: the service, JetStream, the SMTP sink


async def dump(client) -> str:
    runtime = client._transport.app.state.runtime
    reflected = MetaData()
    async with runtime.engine.connect() as conn:
        await conn.run_sync(reflected.reflect)
        rows = [
            " ".join(str(v) for v in row)
            for table in reflected.sorted_tables
            for row in (await conn.execute(select(table))).all()
        ]
    return "\n".join(rows)


async def test_erasure_forgets_the_member_and_keeps_them_forgotten(app, js, smtp, clean_nats):
    client = app
    g, gone, stays = group(), member("Ragna Glemt", "ragna.glemt@example.org"), member("Ole Bliver", "ole@example.org")
    await publish(js, g)
    for m in (gone, stays):
        await publish(js, m)
        await publish(js, joined(m, g))
    await wait_until(lambda: len(mails(smtp["path"])) == 2, timeout=15, message="two welcomes")

    nc = await nats.connect(clean_nats)
    try:
        parts = await gdpr.gather_export(nc, gone.member_id, ["notifications"], timeout=3)
        assert parts["notifications"]["contact"]["email"] == "ragna.glemt@example.org"
        assert [d["kind"] for d in parts["notifications"]["deliveries"]] == ["welcome"]

        notice = MemberErased(member_id=gone.member_id, erased_at=datetime.now(UTC))
        await publish(js, notice)
        await publish(js, notice)  # a second notice (another event id) changes nothing more

        async def forgotten() -> bool:
            return (await client.get(f"/members/{gone.member_id}/export")).status_code == 404

        await wait_until(forgotten, timeout=15, message="the member forgotten")
        assert await gdpr.gather_export(nc, gone.member_id, ["notifications"], timeout=3) == {"notifications": None}
    finally:
        await nc.close()
    text = await dump(client)
    assert "Ragna" not in text and "ragna.glemt@example.org" not in text
    assert "ole@example.org" in text

    # what comes late, on the other durables, does not bring the member back, and no mail goes to them
    await publish(js, gone)
    await publish(js, joined(gone, group()))
    await asyncio.sleep(2)
    assert (await client.get(f"/members/{gone.member_id}/export")).status_code == 404
    assert "ragna.glemt@example.org" not in await dump(client)
    assert len(mails(smtp["path"])) == 2
    assert (await client.get(f"/members/{stays.member_id}/export")).status_code == 200
