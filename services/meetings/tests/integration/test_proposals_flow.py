"""Topic proposals through HTTP and events, in-process against real NATS JetStream and a real database (PostgreSQL
and SQLite): a member proposes, the group's members see and back it, a coordinator takes it into a meeting's agenda
(ProposalAccepted and AgendaUpdated go out) or declines it with a reason (ProposalDeclined); who may not gets 403,
bad input a problem with nothing written; GDPR export and erasure of proposals, backings and feeds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import nats
from sqlalchemy import func, select

from meetings.adapters import orm
from netvaerk_shared import gdpr
from netvaerk_shared.contracts.meetings import ProposalAccepted, ProposalDeclined, ProposalSubmitted
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_shared.envelope import parse_event
from netvaerk_testing import hostile
from netvaerk_testing.plugin import wait_until

from .test_meetings_flow import (
    _ok_json,
    assert_problem,
    future,
    group_created,
    meeting_body,
    meetings_service,
    member_joined,
    publish,
)


def as_(member_id) -> dict[str, str]:
    return {"X-Netvaerk-Member": str(member_id)}


async def a_group(client, js, *, coordinator, members=()) -> uuid.UUID:
    group_id = uuid.uuid4()
    await publish(js, group_created(group_id))
    await publish(js, member_joined(group_id, coordinator, role="coordinator"))
    for m in members:
        await publish(js, member_joined(group_id, m))

    async def roster_complete():
        group = await _ok_json(client, f"/groups/{group_id}")
        return group is not None and len(group["member_ids"]) == 1 + len(members)

    await wait_until(roster_complete, timeout=15, message="the roster copy")
    return group_id


async def a_meeting(client, group_id, **overrides) -> dict:
    body = meeting_body(
        group_id,
        starts_at=future(40, 13).isoformat(),
        ends_at=future(40, 15).isoformat(),
        agenda=[{"kind": "check_in", "title": "Runde", "minutes": 20}],
        **overrides,
    )
    response = await client.post("/meetings", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def talk(**overrides) -> dict:
    return {
        "kind": "talk",
        "title": "Erfaringer med AI i sagsbehandlingen",
        "description": "Hvad vi lærte af et års forsøg.\nOg hvad vi ville gøre om.",
        "speaker": "Mette Eksempel",
        "speaker_organisation": "Eksempel Kommune",
        **overrides,
    }


async def _counts(runtime) -> tuple[int, ...]:
    """Rows of proposals, backings, agenda items, feeds and the outbox: what a refused request must leave as it was."""
    tables = (orm.proposals, orm.proposal_backers, orm.agenda_items, orm.calendar_feeds, runtime.tables.outbox)
    async with runtime.engine.connect() as conn:
        return tuple([(await conn.execute(select(func.count()).select_from(t))).scalar_one() for t in tables])


async def test_a_proposal_is_backed_then_taken_into_the_agenda_and_the_events_go_out(database_url, clean_nats):
    coordinator, proposer, backer, outsider = (uuid.uuid4() for _ in range(4))
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, coordinator=coordinator, members=(proposer, backer))
        meeting = await a_meeting(client, group_id)
        url = f"/groups/{group_id}/proposals"

        # who may propose: members of the group only
        assert_problem(await client.post(url, json=talk(), headers=as_(outsider)), 403)
        assert_problem(await client.post(url, json=talk()), 403)  # the administration proposes nothing
        assert_problem(await client.post(f"/groups/{uuid.uuid4()}/proposals", json=talk(), headers=as_(proposer)), 404)
        body = assert_problem(
            await client.post(url, json=talk(for_meeting_id=str(uuid.uuid4())), headers=as_(proposer)), 404
        )
        assert "No meeting" in body["detail"]

        response = await client.post(url, json=talk(for_meeting_id=meeting["meeting_id"]), headers=as_(proposer))
        assert response.status_code == 201, response.text
        proposal = response.json()
        pid = proposal["proposal_id"]
        assert proposal["status"] == "open" and proposal["member_id"] == str(proposer)
        assert proposal["for_meeting_id"] == meeting["meeting_id"] and proposal["backers"] == 0
        assert proposal["description"] == "Hvad vi lærte af et års forsøg.\nOg hvad vi ville gøre om."

        # who may see: the group's members and the administration
        assert_problem(await client.get(url, headers=as_(outsider)), 403)
        assert_problem(await client.get(f"/proposals/{pid}", headers=as_(outsider)), 403)
        assert [p["proposal_id"] for p in (await client.get(url, headers=as_(backer))).json()] == [pid]
        assert (await client.get(url)).status_code == 200
        assert (await client.get(url, params={"status": "declined"})).json() == []

        # backing: once a member, never the proposer, withdrawable while open
        backing = f"/proposals/{pid}/backing"
        assert_problem(await client.put(backing, headers=as_(outsider)), 403)
        assert_problem(await client.put(backing), 403)
        body = assert_problem(await client.put(backing, headers=as_(proposer)), 422)
        assert "proposed it" in body["detail"]
        for _ in range(2):
            backed = (await client.put(backing, headers=as_(backer))).json()
            assert backed["backers"] == 1 and backed["backed_by_you"] is True
        assert (await client.get(f"/proposals/{pid}", headers=as_(proposer))).json()["backed_by_you"] is False
        assert (await client.delete(backing, headers=as_(backer))).json()["backers"] == 0
        assert (await client.put(backing, headers=as_(coordinator))).json()["backers"] == 1
        assert (await client.put(backing, headers=as_(backer))).json()["backers"] == 2

        # deciding: a coordinator or the administration; the item must fit in the meeting
        accept = f"/proposals/{pid}/accept"
        mid = meeting["meeting_id"]
        assert_problem(await client.post(accept, json={"meeting_id": mid, "minutes": 30}, headers=as_(proposer)), 403)
        before = await _counts(runtime)
        body = assert_problem(
            await client.post(accept, json={"meeting_id": mid, "minutes": 101}, headers=as_(coordinator)), 422
        )
        assert "121 minutes" in body["detail"]
        assert await _counts(runtime) == before
        assert_problem(
            await client.post(accept, json={"meeting_id": str(uuid.uuid4()), "minutes": 30}, headers=as_(coordinator)),
            404,
        )
        other_group = await a_group(client, js, coordinator=coordinator)
        elsewhere = await a_meeting(client, other_group)
        before = await _counts(runtime)
        body = assert_problem(
            await client.post(
                accept, json={"meeting_id": elsewhere["meeting_id"], "minutes": 30}, headers=as_(coordinator)
            ),
            422,
        )
        assert "another group" in body["detail"]
        assert await _counts(runtime) == before  # nothing half-written

        response = await client.post(accept, json={"meeting_id": mid, "minutes": 40}, headers=as_(coordinator))
        assert response.status_code == 200, response.text
        accepted = response.json()
        assert accepted["status"] == "accepted" and accepted["meeting_id"] == mid
        assert accepted["agenda_position"] == 2 and accepted["backers"] == 2
        changed = (await client.get(f"/meetings/{mid}")).json()
        assert changed["sequence"] == 1
        assert [(a["position"], a["kind"], a["title"], a["minutes"], a["speaker"]) for a in changed["agenda"]] == [
            (1, "check_in", "Runde", 20, None),
            (2, "talk", "Erfaringer med AI i sagsbehandlingen", 40, "Mette Eksempel"),
        ]
        for again in (
            client.post(accept, json={"meeting_id": mid, "minutes": 10}, headers=as_(coordinator)),
            client.post(f"/proposals/{pid}/decline", json={"reason": "Alligevel ikke"}, headers=as_(coordinator)),
            client.delete(backing, headers=as_(backer)),
        ):
            assert_problem(await again, 409)  # decided once

        # a topic, declined with a reason
        topic = (await client.post(url, json={"kind": "topic", "title": "Udbud af cloud"}, headers=as_(backer))).json()
        decline = f"/proposals/{topic['proposal_id']}/decline"
        assert_problem(await client.post(decline, json={"reason": "Nej"}, headers=as_(backer)), 403)
        assert_problem(await client.post(decline, json={"reason": "   "}, headers=as_(coordinator)), 422)
        declined = (await client.post(decline, json={"reason": "Emnet var på sidste møde"})).json()  # administration
        assert declined["status"] == "declined" and declined["reason"] == "Emnet var på sidste møde"
        listed = (await client.get(url, headers=as_(backer))).json()
        assert [p["proposal_id"] for p in listed] == [pid, topic["proposal_id"]]  # most backed first

        sub = await js.pull_subscribe("meetings.>", durable="test-probe", stream="MEETINGS")
        received = []
        while len(received) < 7:  # 2 meetings scheduled, 2 proposals, accepted, agenda updated, declined
            for msg in await sub.fetch(10, timeout=10):
                await msg.ack()
                received.append(parse_event(msg.data))

    by_type = {}
    for event, data in received:
        by_type.setdefault(event.type, []).append((event, data))
    submitted = [d for _, d in by_type["dk.danskit.proposal.submitted.v1"]]
    assert all(isinstance(d, ProposalSubmitted) for d in submitted)
    assert [(str(d.proposal_id), d.member_id, d.kind.value) for d in submitted] == [
        (pid, proposer, "talk"),
        (topic["proposal_id"], backer, "topic"),
    ]
    assert str(submitted[0].for_meeting_id) == mid and submitted[1].for_meeting_id is None
    [(event, data)] = by_type["dk.danskit.proposal.accepted.v1"]
    assert isinstance(data, ProposalAccepted) and event.subject == pid
    assert (str(data.meeting_id), data.agenda_position, data.member_id, data.group_id) == (mid, 2, proposer, group_id)
    [(event, data)] = by_type["dk.danskit.proposal.declined.v1"]
    assert isinstance(data, ProposalDeclined) and data.member_id == backer and data.reason == "Emnet var på sidste møde"
    [(_, agenda)] = by_type["dk.danskit.agenda.updated.v1"]
    assert str(agenda.meeting_id) == mid and agenda.sequence == 1 and len(agenda.agenda) == 2


async def test_a_proposal_only_goes_into_a_coming_meeting(database_url, clean_nats):
    coordinator, proposer = uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, coordinator=coordinator, members=(proposer,))
        meeting = await a_meeting(client, group_id)
        mid = meeting["meeting_id"]
        cancel = await client.post(f"/meetings/{mid}/cancel", json={"reason": "Ingen lokaler"})
        assert cancel.status_code == 200, cancel.text
        url = f"/groups/{group_id}/proposals"
        body = assert_problem(await client.post(url, json=talk(for_meeting_id=mid), headers=as_(proposer)), 422)
        assert "coming meetings" in body["detail"]
        pid = (await client.post(url, json=talk(), headers=as_(proposer))).json()["proposal_id"]
        before = await _counts(runtime)
        body = assert_problem(
            await client.post(f"/proposals/{pid}/accept", json={"meeting_id": mid, "minutes": 30}), 409
        )
        assert "cancelled" in body["detail"]
        assert await _counts(runtime) == before
        assert (await client.get(f"/proposals/{pid}")).json()["status"] == "open"


async def test_hostile_text_in_every_proposal_field_is_refused_and_nothing_is_written(database_url, clean_nats):
    coordinator, proposer = uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, coordinator=coordinator, members=(proposer,))
        meeting = await a_meeting(client, group_id)
        document = client._transport.app.openapi()
        url = f"/groups/{group_id}/proposals"
        pid = (await client.post(url, json=talk(), headers=as_(proposer))).json()["proposal_id"]
        before = await _counts(runtime)
        cases = [
            ("POST", "/groups/{group_id}/proposals", url, talk()),
            ("POST", "/proposals/{proposal_id}/decline", f"/proposals/{pid}/decline", {"reason": "Ikke i år"}),
        ]
        total = 0
        for method, template, path, valid in cases:
            variants = hostile.variants(document, method, template, valid)
            assert variants, template
            for variant in variants:
                response = await client.post(path, json=variant.body, headers=as_(coordinator))
                assert 400 <= response.status_code < 500, (variant, response.text)
                assert response.headers["content-type"] == "application/problem+json", variant
                fields = [e["field"] for e in response.json().get("errors", [])]
                assert variant.field in fields, (variant, response.text)
                total += 1
        assert total > 40
        accept = f"/proposals/{pid}/accept"
        for bad in (
            {"meeting_id": meeting["meeting_id"], "minutes": 0},
            {"meeting_id": meeting["meeting_id"], "minutes": 601},
            {"meeting_id": meeting["meeting_id"], "minutes": "30"},
            {"meeting_id": meeting["meeting_id"], "minutes": True},
            {"meeting_id": "not-a-uuid", "minutes": 30},
            {"meeting_id": meeting["meeting_id"], "minutes": 30, "extra": 1},
            {"minutes": 30},
        ):
            response = await client.post(accept, json=bad, headers=as_(coordinator))
            assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json", bad
        for bad in ({"kind": "lecture", "title": "Oplæg"}, {**talk(), "owner": "x"}, {"kind": "talk"}):
            assert_problem(await client.post(url, json=bad, headers=as_(proposer)), 422)
        topic_with_speaker = {"kind": "topic", "title": "Cloud", "speaker": "Mette Eksempel"}
        body = assert_problem(await client.post(url, json=topic_with_speaker, headers=as_(proposer)), 422)
        assert "Only an offered talk" in body["detail"]
        assert_problem(await client.get(url, params={"status": "maybe"}, headers=as_(proposer)), 422)
        assert await _counts(runtime) == before
        # the largest valid proposal goes through
        largest = talk(title="æ" * 200, description="ø\n" * 2000, speaker="å" * 200, speaker_organisation="æ" * 200)
        assert (await client.post(url, json=largest, headers=as_(proposer))).status_code == 201


async def test_export_and_erasure_of_proposals_backings_and_feeds(database_url, clean_nats):
    coordinator, gone, stays = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, coordinator=coordinator, members=(gone, stays))
        url = f"/groups/{group_id}/proposals"
        mine = (await client.post(url, json=talk(), headers=as_(gone))).json()["proposal_id"]
        theirs = (await client.post(url, json=talk(title="Cloud"), headers=as_(stays))).json()["proposal_id"]
        await client.put(f"/proposals/{theirs}/backing", headers=as_(gone))
        await client.put(f"/proposals/{mine}/backing", headers=as_(stays))
        feed = (await client.post(f"/members/{gone}/calendar-feeds", headers=as_(gone))).json()
        group_feed = (await client.post(f"/groups/{group_id}/calendar-feeds", headers=as_(gone))).json()
        kept_feed = (await client.post(f"/groups/{group_id}/calendar-feeds", headers=as_(stays))).json()

        export = (await client.get(f"/members/{gone}/export")).json()
        assert [p["proposal_id"] for p in export["proposals"]] == [mine]
        assert export["proposals"][0]["title"] == "Erfaringer med AI i sagsbehandlingen"
        assert [b["proposal_id"] for b in export["backed_proposals"]] == [theirs]
        assert {f["feed_id"] for f in export["calendar_feeds"]} == {feed["feed_id"], group_feed["feed_id"]}
        assert all("token" not in f for f in export["calendar_feeds"])
        nc = await nats.connect(clean_nats)
        try:
            parts = await gdpr.gather_export(nc, gone, ["meetings"], timeout=3)
            assert [p["proposal_id"] for p in parts["meetings"]["proposals"]] == [mine]
        finally:
            await nc.close()

        await publish(js, MemberErased(member_id=gone, erased_at=datetime.now(UTC)))

        async def forgotten() -> bool:
            return (await client.get(f"/members/{gone}/export")).status_code == 404

        await wait_until(forgotten, timeout=15, message="the member forgotten")
        listed = {p["proposal_id"]: p for p in (await client.get(url)).json()}
        assert set(listed) == {mine, theirs}  # the proposal stays, its author is no one
        assert listed[mine]["member_id"] != str(gone) and listed[mine]["backers"] == 1
        assert listed[theirs]["backers"] == 1  # the erased member's backing still counts, under no name
        async with runtime.engine.connect() as conn:
            b = orm.proposal_backers
            left = (await conn.execute(select(func.count()).select_from(b).where(b.c.member_id == gone))).scalar_one()
        assert left == 0
        for token in (feed["token"], group_feed["token"]):
            assert_problem(await client.get(f"/calendar/{token}.ics"), 404)
        assert (await client.get(f"/calendar/{kept_feed['token']}.ics")).status_code == 200


async def test_decisions_at_the_same_moment_are_taken_one_after_the_other(database_url, clean_nats):
    """Two coordinators accept the same proposal at once, while a third proposal goes into the same meeting: the
    proposal is accepted once (the other 409), and the meeting's agenda gets each accepted item in its own place."""
    first, second, proposer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, coordinator=first, members=(proposer,))
        await publish(js, member_joined(group_id, second, role="coordinator"))

        async def two_coordinators() -> bool:
            group = await _ok_json(client, f"/groups/{group_id}")
            return group is not None and len(group["member_ids"]) == 3

        await wait_until(two_coordinators, timeout=15, message="the second coordinator")
        meeting = await a_meeting(client, group_id)
        url = f"/groups/{group_id}/proposals"
        one = (await client.post(url, json=talk(), headers=as_(proposer))).json()["proposal_id"]
        other = (await client.post(url, json=talk(title="Cloud"), headers=as_(proposer))).json()["proposal_id"]
        body = {"meeting_id": meeting["meeting_id"], "minutes": 30}
        answers = await asyncio.gather(
            client.post(f"/proposals/{one}/accept", json=body, headers=as_(first)),
            client.post(f"/proposals/{one}/accept", json=body, headers=as_(second)),
            client.post(f"/proposals/{other}/accept", json=body),
        )
        assert sorted(a.status_code for a in answers[:2]) == [200, 409], [a.text for a in answers]
        assert answers[2].status_code == 200, answers[2].text
        agenda = (await client.get(f"/meetings/{meeting['meeting_id']}")).json()
        assert sorted(a["title"] for a in agenda["agenda"]) == [
            "Cloud",
            "Erfaringer med AI i sagsbehandlingen",
            "Runde",
        ]
        assert [a["position"] for a in agenda["agenda"]] == [1, 2, 3] and agenda["sequence"] == 2
        positions = {(await client.get(f"/proposals/{p}")).json()["agenda_position"] for p in (one, other)}
        assert positions == {2, 3}
