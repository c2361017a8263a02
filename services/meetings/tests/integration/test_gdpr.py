"""GDPR in the meetings service, in-process against real NATS JetStream and a real database (PostgreSQL and
SQLite): its part of an export over NATS; on MemberErased the member's roster rows go (members freed the seats in
the same erasure: the copy's count follows) and nothing here names the member; a late MemberJoined does not bring
them back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import nats

from netvaerk_shared import gdpr
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_testing.plugin import wait_until

from .test_meetings_flow import group_created, meetings_service, member_joined, publish


async def test_erasure_takes_the_member_off_the_roster_copy(database_url, clean_nats):
    group_id, gone, stays = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await publish(js, group_created(group_id))
        for m in (gone, stays):
            await publish(js, member_joined(group_id, m))

        async def roster() -> list[str]:
            r = await client.get(f"/groups/{group_id}")
            return r.json()["member_ids"] if r.status_code == 200 else []

        await wait_until(lambda: _len(roster, 2), timeout=15, message="roster of two")
        nc = await nats.connect(clean_nats)
        try:
            parts = await gdpr.gather_export(nc, gone, ["meetings"], timeout=3)
            assert [g["group_id"] for g in parts["meetings"]["group_memberships"]] == [str(group_id)]

            notice = MemberErased(member_id=gone, erased_at=datetime.now(UTC))
            await publish(js, notice)
            await publish(js, notice)  # again, under another event id: nothing more happens

            async def forgotten() -> bool:
                return (await client.get(f"/members/{gone}/export")).status_code == 404

            await wait_until(forgotten, timeout=15, message="the member forgotten")
            assert await gdpr.gather_export(nc, gone, ["meetings"], timeout=3) == {"meetings": None}
        finally:
            await nc.close()
        ids = await roster()
        assert ids == [str(stays)], "the erased member is off the roster, no stand-in left"

        await publish(js, member_joined(group_id, gone, joined_at=datetime.now(UTC)))  # late, on another durable
        await asyncio.sleep(2)
        ids = await roster()
        assert ids == [str(stays)], "a late member.joined brings nobody back"


async def _len(roster, n: int) -> bool:
    return len(await roster()) == n
