"""The seats, in-process against real NATS JetStream and a real database (PostgreSQL and SQLite): answers and the
waiting list through HTTP, what goes out on MEETINGS, the roster's upkeep from MEMBERS events (leaving, role changes,
seat transfers, organisations), attendance, erasure, who may not, hostile input; and on PostgreSQL fifty members
answering at once for the last ten seats."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from meetings.adapters import orm
from netvaerk_shared import contracts
from netvaerk_shared.contracts.meetings import RsvpRecorded, WaitlistPromoted
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_shared.envelope import parse_event
from netvaerk_testing import hostile
from netvaerk_testing.plugin import wait_until

from .test_meetings_flow import (
    _ok_json,
    assert_problem,
    group_created,
    meeting_body,
    meetings_service,
    member_joined,
    publish,
)

AS = "X-Netvaerk-Member"


def registered(member_id, organisation_id, at=None) -> contracts.MemberRegistered:
    return contracts.MemberRegistered(
        member_id=member_id,
        name="Eksempel Person",
        email=f"person-{member_id.hex[:8]}@example.org",
        organisation=contracts.Organisation(id=organisation_id, name="Eksempel Kommune", kind="public_authority"),
        job_title="It-arkitekt",
        locale="da",
        registered_at=at or datetime(2026, 11, 1, 9, 0, tzinfo=UTC),
    )


async def a_group(client, js, members, coordinator=None) -> uuid.UUID:
    group_id = uuid.uuid4()
    await publish(js, group_created(group_id))
    if coordinator is not None:
        await publish(js, member_joined(group_id, coordinator, role="coordinator"))
    for m in members:
        await publish(js, member_joined(group_id, m))
    want = len(members) + (coordinator is not None)

    async def roster_complete():
        group = await _ok_json(client, f"/groups/{group_id}")
        return group if group and len(group["member_ids"]) == want else None

    await wait_until(roster_complete, timeout=20, message="the roster")
    return group_id


async def a_meeting(client, group_id, **overrides) -> str:
    response = await client.post("/meetings", json=meeting_body(group_id, **overrides))
    assert response.status_code == 201, response.text
    return response.json()["meeting_id"]


async def rsvp(client, meeting_id, member_id, response="attending", as_=None):
    headers = {AS: str(as_ if as_ is not None else member_id)}
    return await client.put(f"/meetings/{meeting_id}/rsvps/{member_id}", json={"response": response}, headers=headers)


async def seats(client, meeting_id) -> dict:
    response = await client.get(f"/meetings/{meeting_id}/rsvps")
    assert response.status_code == 200, response.text
    return response.json()


async def meetings_events(js, subject: str, n: int) -> list:
    sub = await js.pull_subscribe(subject, durable=f"probe-{uuid.uuid4().hex[:8]}", stream="MEETINGS")
    got = []
    while len(got) < n:
        for msg in await sub.fetch(n - len(got), timeout=10):
            await msg.ack()
            got.append((msg.subject, parse_event(msg.data)[1]))
    return got


async def test_seats_then_the_waiting_list_a_decline_promotes_and_the_events_go_out(database_url, clean_nats):
    a, b, c, outsider = (uuid.uuid4() for _ in range(4))
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, [a, b, c])
        meeting_id = await a_meeting(client, group_id, capacity=2)

        assert (await rsvp(client, meeting_id, a)).json()["status"] == "confirmed"
        assert (await rsvp(client, meeting_id, b, "tentative")).json()["status"] == "noted"
        assert (await rsvp(client, meeting_id, b)).json()["status"] == "confirmed"
        got = (await rsvp(client, meeting_id, c)).json()
        assert (got["status"], got["waitlist_position"]) == ("waitlisted", 1)

        # who may not: a non-member, someone answering for another, a member looking at another group's answers
        body = assert_problem(await rsvp(client, meeting_id, outsider), 403)
        assert "members of the group" in body["detail"]
        assert_problem(await rsvp(client, meeting_id, a, as_=b), 403)
        assert_problem(await client.get(f"/meetings/{meeting_id}/rsvps", headers={AS: str(outsider)}), 403)
        assert_problem(await rsvp(client, uuid.uuid4(), a), 404)

        assert (await rsvp(client, meeting_id, a, "declined")).json()["status"] == "noted"
        view = await seats(client, meeting_id)
        assert (view["capacity"], view["confirmed"], view["waitlisted"]) == (2, 2, 0)
        assert [(x["member_id"], x["status"]) for x in view["answers"]] == [
            (str(b), "confirmed"),
            (str(c), "confirmed"),
            (str(a), "noted"),
        ]
        history = (await client.get(f"/members/{c}/meetings", headers={AS: str(c)})).json()
        assert [(h["meeting_id"], h["rsvp"]["status"], h["attended"]) for h in history] == [
            (meeting_id, "confirmed", None)
        ]
        assert_problem(await client.get(f"/members/{c}/meetings", headers={AS: str(a)}), 403)

        events = await meetings_events(js, "meetings.rsvp.recorded.v1.>", 5)
        [(subject, promoted)] = await meetings_events(js, "meetings.waitlist.promoted.v1.>", 1)
    assert {s for s, _ in events} == {f"meetings.rsvp.recorded.v1.{meeting_id}"}
    assert all(isinstance(e, RsvpRecorded) and str(e.group_id) == str(group_id) for _, e in events)
    assert [(e.member_id, e.response.value, e.status.value, e.waitlist_position) for _, e in events] == [
        (a, "attending", "confirmed", None),
        (b, "tentative", "noted", None),
        (b, "attending", "confirmed", None),
        (c, "attending", "waitlisted", 1),
        (a, "declined", "noted", None),
    ]
    assert isinstance(promoted, WaitlistPromoted) and promoted.member_id == c
    assert subject == f"meetings.waitlist.promoted.v1.{meeting_id}"


async def test_the_deadline_and_a_cancelled_meeting_refuse_answers(database_url, clean_nats):
    a = uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, [a])
        meeting_id = await a_meeting(client, group_id)
        deadline = datetime.now(UTC) + timedelta(days=1)
        async with runtime.engine.begin() as conn:  # time passes: the deadline is behind us
            await conn.execute(
                update(orm.meetings)
                .where(orm.meetings.c.id == uuid.UUID(meeting_id))
                .values(rsvp_deadline=deadline - timedelta(days=2))
            )
        body = assert_problem(await rsvp(client, meeting_id, a), 409)
        assert "deadline" in body["detail"]
        other = await a_meeting(client, group_id)
        assert (await client.post(f"/meetings/{other}/cancel", json={"reason": "Aflyst"})).status_code == 200
        body = assert_problem(await rsvp(client, other, a), 409)
        assert "cancelled" in body["detail"]
        async with runtime.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(orm.rsvps))).scalar_one() == 0


async def test_leaving_roles_transfers_and_colleagues(database_url, clean_nats):
    coordinator, a, b, c, colleague, newcomer = (uuid.uuid4() for _ in range(6))
    organisation = uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, [a, b, c], coordinator=coordinator)
        for m in (a, b, colleague):
            await publish(js, registered(m, organisation))
        await publish(js, registered(c, uuid.uuid4()))  # another organisation
        meeting_id = await a_meeting(client, group_id, capacity=1)
        for m in (a, b, c):
            await rsvp(client, meeting_id, m)

        # a sends a colleague of the same organisation (not in the group) in their place: the seat goes along
        async def organisations_known():
            async with runtime.engine.connect() as conn:
                n = (await conn.execute(select(func.count()).select_from(orm.member_organisations))).scalar_one()
            return n == 4

        await wait_until(organisations_known, timeout=15, message="the organisations")
        url = f"/meetings/{meeting_id}/rsvps/{a}/colleague"
        assert_problem(await client.post(url, json={"colleague_id": str(c)}, headers={AS: str(a)}), 422)
        assert_problem(await client.post(url, json={"colleague_id": str(colleague)}, headers={AS: str(b)}), 403)
        got = await client.post(url, json={"colleague_id": str(colleague)}, headers={AS: str(a)})
        assert got.status_code == 200, got.text
        assert (got.json()["status"], got.json()["on_behalf_of"]) == ("confirmed", str(a))

        # b leaves the group: the roster drops b, b's place in line is withdrawn, c moves up
        await publish(
            js,
            contracts.MemberLeft(member_id=b, group_id=group_id, left_at=datetime.now(UTC), reason="left"),
        )

        async def withdrawn():
            view = await seats(client, meeting_id)
            return view if {x["member_id"]: x["status"] for x in view["answers"]}[str(b)] == "withdrawn" else None

        view = await wait_until(withdrawn, timeout=15, message="b's answer withdrawn")
        assert [x["member_id"] for x in view["answers"] if x["status"] == "waitlisted"] == [str(c)]
        roster = (await client.get(f"/groups/{group_id}")).json()["member_ids"]
        assert str(b) not in roster and len(roster) == 3
        await publish(js, member_joined(group_id, b))  # an older join arriving late does not bring b back
        await asyncio.sleep(1.5)
        assert str(b) not in (await client.get(f"/groups/{group_id}")).json()["member_ids"]

        # the colleague gives the seat back: c is promoted
        assert (await rsvp(client, meeting_id, colleague, "declined")).json()["status"] == "noted"
        assert {x["member_id"]: x["status"] for x in (await seats(client, meeting_id))["answers"]}[str(c)] == (
            "confirmed"
        )

        # c hands the group seat to a newcomer (seat transfer): the meeting seat goes with it
        await publish(js, member_joined(group_id, newcomer, joined_at=datetime.now(UTC)))
        await publish(
            js,
            contracts.SeatTransferred(
                group_id=group_id, organisation_id=uuid.uuid4(), from_member_id=c, to_member_id=newcomer
            ),
        )

        async def transferred():
            answers = {x["member_id"]: x for x in (await seats(client, meeting_id))["answers"]}
            return answers if str(newcomer) in answers else None

        answers = await wait_until(transferred, timeout=15, message="the seat transferred")
        assert (answers[str(newcomer)]["status"], answers[str(newcomer)]["on_behalf_of"]) == ("confirmed", str(c))
        assert answers[str(c)]["status"] == "withdrawn"

        # a becomes coordinator (role change): may now record attendance, once the meeting has begun
        attendance = f"/meetings/{meeting_id}/attendance/{newcomer}"
        assert_problem(await client.put(attendance, json={"attended": True}, headers={AS: str(a)}), 403)
        await publish(js, contracts.MemberRoleChanged(member_id=a, group_id=group_id, role="coordinator"))

        async def a_is_coordinator():
            group = await _ok_json(client, f"/groups/{group_id}")
            return any(m["member_id"] == str(a) and m["role"] == "coordinator" for m in group["members"])

        await wait_until(a_is_coordinator, timeout=15, message="the role change")
        body = assert_problem(await client.put(attendance, json={"attended": True}, headers={AS: str(a)}), 409)
        assert "begun" in body["detail"]
        await _begin(runtime, meeting_id)
        got = await client.put(attendance, json={"attended": True}, headers={AS: str(a)})
        assert got.status_code == 200 and got.json()["attended"] is True, got.text
        history = (await client.get(f"/members/{newcomer}/meetings")).json()  # the administration
        assert [(h["rsvp"]["status"], h["attended"]) for h in history] == [("confirmed", True)]
        [(_, recorded)] = await meetings_events(js, "meetings.attendance.recorded.v1.>", 1)
        assert recorded.member_id == newcomer and recorded.attended is True


async def test_a_role_change_that_overtakes_its_join_is_applied_once_the_join_is_in(database_url, clean_nats):
    member = uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, [])
        await publish(js, contracts.MemberRoleChanged(member_id=member, group_id=group_id, role="coordinator"))
        await asyncio.sleep(0.5)  # (tried once at least: no membership yet, retried later)
        await publish(js, member_joined(group_id, member))

        async def coordinator():
            group = await _ok_json(client, f"/groups/{group_id}")
            return group and [(m["member_id"], m["role"]) for m in group["members"]] == [(str(member), "coordinator")]

        await wait_until(coordinator, timeout=20, message="the role applied after the join")


async def test_erasure_anonymises_answers_and_attendance_and_frees_coming_seats(database_url, clean_nats):
    gone, waiting, stays = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, [gone, waiting, stays], coordinator=None)
        await publish(js, registered(gone, uuid.uuid4()))
        past = await a_meeting(client, group_id, capacity=5)
        coming = await a_meeting(client, group_id, capacity=1)
        for m in (gone, stays):
            await rsvp(client, past, m)
        await rsvp(client, coming, gone)
        await rsvp(client, coming, waiting)
        await _begin(runtime, past)
        for m in (gone, stays):
            assert (await client.put(f"/meetings/{past}/attendance/{m}", json={"attended": True})).status_code == 200

        async def exported():
            data = await _ok_json(client, f"/members/{gone}/export")
            return data if data and data["organisation"] else None

        data = await wait_until(exported, timeout=15, message="the export")
        assert sorted(r["meeting_id"] for r in data["rsvps"]) == sorted([past, coming])
        assert [x["meeting_id"] for x in data["attendance"]] == [past]

        await publish(js, MemberErased(member_id=gone, erased_at=datetime.now(UTC)))

        async def forgotten():
            return (await client.get(f"/members/{gone}/export")).status_code == 404

        await wait_until(forgotten, timeout=15, message="the member forgotten")
        held = await seats(client, past)
        assert held["confirmed"] == 2 and str(gone) not in {x["member_id"] for x in held["answers"]}
        async with runtime.engine.connect() as conn:
            n = (
                await conn.execute(
                    select(func.count()).where(
                        orm.attendance.c.meeting_id == uuid.UUID(past), orm.attendance.c.attended
                    )
                )
            ).scalar_one()
        assert n == 2  # the count of who came stays right
        upcoming = await seats(client, coming)
        assert [x["member_id"] for x in upcoming["answers"] if x["status"] == "confirmed"] == [str(waiting)]
        assert str(gone) not in {x["member_id"] for x in upcoming["answers"]}
        assert (await client.get(f"/members/{gone}/meetings")).json() == []
        [(_, promoted)] = await meetings_events(js, "meetings.waitlist.promoted.v1.>", 1)
        assert promoted.member_id == waiting


async def test_hostile_answers_are_problems_and_nothing_is_written(database_url, clean_nats):
    a = uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, [a])
        meeting_id = await a_meeting(client, group_id)
        before = await _rows(runtime)
        document = client._transport.app.openapi()
        for method, path, valid in (
            ("PUT", "/meetings/{meeting_id}/rsvps/{member_id}", {"response": "attending"}),
            ("POST", "/meetings/{meeting_id}/rsvps/{member_id}/colleague", {"colleague_id": str(a)}),
            ("PUT", "/meetings/{meeting_id}/attendance/{member_id}", {"attended": True}),
        ):
            schema = hostile.request_schema(document, method, path)
            name = schema["$ref"].rsplit("/", 1)[-1]
            assert document["components"]["schemas"][name]["additionalProperties"] is False, path
            assert hostile.variants(document, method, path, valid) == [], path  # no free text: enums, ids, flags
        h = {AS: str(a)}
        base = f"/meetings/{meeting_id}/rsvps/{a}"
        for body in (
            {"response": "maybe"},
            {"response": "attending\u0000"},
            {"response": ""},
            {"response": 1},
            {"response": None},
            {},
            {"response": "attending", "extra": "x"},
            ["attending"],
            {"response": "a" * 10_000},
        ):
            assert_problem(await client.put(base, json=body, headers=h), 422)
        for body in ({"colleague_id": "not-a-uuid"}, {"colleague_id": "\u0000"}, {}, {"colleague_id": str(a), "x": 1}):
            assert_problem(await client.post(f"{base}/colleague", json=body, headers=h), 422)
        for body in ({"attended": "true"}, {"attended": 1}, {"attended": None}, {}, {"attended": True, "x": 1}):
            assert_problem(await client.put(f"/meetings/{meeting_id}/attendance/{a}", json=body), 422)
        assert_problem(await client.put(f"/meetings/not-a-uuid/rsvps/{a}", json={"response": "attending"}), 422)
        assert_problem(await client.put(base, json={"response": "attending"}, headers={AS: "not-a-uuid"}), 422)
        assert await _rows(runtime) == before
        assert (await rsvp(client, meeting_id, a)).status_code == 200  # the ordinary answer still goes through


async def test_fifty_members_at_once_for_the_last_ten_seats(postgres_database_url, clean_nats):
    early = [uuid.uuid4() for _ in range(10)]
    rush = [uuid.uuid4() for _ in range(50)]
    async with meetings_service(postgres_database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, early + rush)
        meeting_id = await a_meeting(client, group_id, capacity=20)
        for m in early:
            await rsvp(client, meeting_id, m)
        responses = await asyncio.gather(*(rsvp(client, meeting_id, m) for m in rush))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
        view = await seats(client, meeting_id)
        assert (view["confirmed"], view["waitlisted"]) == (20, 40)
        confirmed = [x for x in view["answers"] if x["status"] == "confirmed"]
        waiting = [x for x in view["answers"] if x["status"] == "waitlisted"]
        assert {x["member_id"] for x in confirmed} >= {str(m) for m in early}
        # arrival order: every seat went to an earlier answer than any place in line, the line is in arrival order
        # and numbered 1..40 without gaps, each answer was decided alone (arrivals 1..60, none twice)
        assert max(x["arrival"] for x in confirmed) < min(x["arrival"] for x in waiting)
        assert [x["waitlist_position"] for x in waiting] == list(range(1, 41))
        assert [x["arrival"] for x in waiting] == sorted(x["arrival"] for x in waiting)
        assert sorted(x["arrival"] for x in view["answers"]) == list(range(1, 61))
        # what each of the fifty was told matches the end state
        told = {r.json()["member_id"]: (r.json()["status"], r.json()["waitlist_position"]) for r in responses}
        assert sum(1 for s, _ in told.values() if s == "confirmed") == 10
        assert sorted(p for s, p in told.values() if s == "waitlisted") == list(range(1, 41))
        for x in waiting:
            assert told[x["member_id"]] == ("waitlisted", x["waitlist_position"])


async def _begin(runtime, meeting_id: str) -> None:
    """Time passes: the meeting began an hour ago."""
    now = datetime.now(UTC)
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(orm.meetings)
            .where(orm.meetings.c.id == uuid.UUID(meeting_id))
            .values(starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1))
        )


async def _rows(runtime) -> tuple[int, ...]:
    async with runtime.engine.connect() as conn:
        return tuple(
            [
                (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (orm.rsvps, orm.attendance, runtime.tables.outbox)
            ]
        )


async def test_a_members_upcoming_meetings_come_soonest_first_with_their_own_answer_and_nothing_else(
    database_url, clean_nats
):
    """What the web gateway's overview shows, in one call: the coming meetings of the member's groups (not another
    group's, not a cancelled one), each with the member's own answer and place in line."""
    from .test_meetings_flow import future

    a, b, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        mine = await a_group(client, js, [a, b])
        theirs = await a_group(client, js, [other])
        later = await a_meeting(
            client, mine, capacity=1, starts_at=future(40, 16).isoformat(), ends_at=future(40, 18).isoformat()
        )
        sooner = await a_meeting(client, mine, starts_at=future(20, 16).isoformat(), ends_at=future(20, 18).isoformat())
        cancelled = await a_meeting(client, mine)
        await a_meeting(client, theirs)
        assert (await client.post(f"/meetings/{cancelled}/cancel", json={"reason": "Aflyst"})).status_code == 200
        assert (await rsvp(client, later, b)).json()["status"] == "confirmed"
        assert (await rsvp(client, later, a)).json()["status"] == "waitlisted"

        answer = await client.get(f"/members/{a}/upcoming", headers={AS: str(a)})
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert [x["meeting"]["meeting_id"] for x in got] == [sooner, later]
        assert got[0]["rsvp"] is None
        assert (got[1]["rsvp"]["status"], got[1]["rsvp"]["waitlist_position"]) == ("waitlisted", 1)
        assert got[1]["meeting"]["agenda"][0]["kind"] == "check_in"
        assert [
            x["meeting"]["meeting_id"]
            for x in (await client.get(f"/members/{a}/upcoming?limit=1", headers={AS: str(a)})).json()
        ] == [sooner]
        assert_problem(await client.get(f"/members/{a}/upcoming", headers={AS: str(b)}), 403)
        assert (await client.get(f"/members/{uuid.uuid4()}/upcoming")).json() == []
