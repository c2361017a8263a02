"""The meetings service in-process against real NATS JetStream and a real database (PostgreSQL and SQLite).

MEMBERS events are published into JetStream by hand, as the members service's relay would; what the service
publishes is read back from the MEETINGS stream with a pull consumer of our own.
"""

from __future__ import annotations

import json
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone

import nats
from cloudevents.core.formats.json import JSONFormat
from nats.js.errors import NotFoundError
from sqlalchemy import func, select

from meetings.bootstrap import bootstrap
from meetings.config import Settings
from meetings.entrypoints.http import create_app
from netvaerk_shared import contracts
from netvaerk_shared.envelope import CloudEvent, make_event, parse_event, to_bytes
from netvaerk_shared.topology import ensure_stream
from netvaerk_testing.plugin import running_app, service_settings, wait_until

PROBLEM = "application/problem+json"
CPH_WINTER = timezone(timedelta(hours=1))


@asynccontextmanager
async def meetings_service(database_url: str, nats_url: str):
    """JetStream with the MEMBERS stream declared (as the members service would), and the service running."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, "members")
        runtime = bootstrap(service_settings(Settings, database_url, nats_url))
        async with running_app(create_app(), runtime) as client:
            yield client, js, runtime
    finally:
        await nc.close()


async def publish(
    js, data: contracts.EventData, *, event_id: str | None = None, msg_id: str | None = None
) -> CloudEvent:
    event = make_event(data, event_id=event_id)
    ack = await js.publish(data.nats_subject(), to_bytes(event), headers={"Nats-Msg-Id": msg_id or event.id})
    assert not ack.duplicate  # JetStream stored it: whatever dedupe happens next is the service's own
    return event


def group_created(group_id: uuid.UUID, name: str = "Offentlig digitalisering øst") -> contracts.GroupCreated:
    return contracts.GroupCreated(
        group_id=group_id,
        name=name,
        slug="offentlig-digitalisering-oest",
        region="Øst",
        description="Netværk for it-folk i kommuner og regioner øst for Storebælt.",
        topics=("digitalisering", "SKI"),
    )


def member_joined(group_id, member_id, role="member", joined_at=None) -> contracts.MemberJoined:
    return contracts.MemberJoined(
        member_id=member_id,
        group_id=group_id,
        role=role,
        joined_at=joined_at or datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
    )


def future(days: int, hour: int) -> datetime:
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=CPH_WINTER)


def meeting_body(group_id, **overrides) -> dict:
    body = {
        "group_id": str(group_id),
        "title": "Vintermøde: udbud, SKI og databeskyttelse",
        "starts_at": future(30, 16).isoformat(),
        "ends_at": future(30, 18).isoformat(),
        "venue": {
            "name": "Rådhuset, mødesal 2",
            "address": "Rådhuspladsen 1, 1550 København V",
            "host_organisation": "Eksempel Kommune",
        },
        "online_url": "https://meet.example.org/vintermoede",
        "capacity": 40,
        "agenda": [
            {"kind": "check_in", "title": "Runde", "minutes": 20},
            {
                "kind": "talk",
                "title": "Databeskyttelse i udbud",
                "speaker": "Mette Eksempel",
                "speaker_organisation": "Eksempel Kommune",
                "minutes": 40,
                "tags": ["gdpr", "udbud"],
            },
            {"kind": "break", "title": "Kaffe", "minutes": 15},
        ],
    }
    body.update(overrides)
    return body


async def settled(js, durable: str) -> bool:
    """Every message in the durable's filter delivered and acked (or terminated)."""
    try:
        info = await js.consumer_info("MEMBERS", durable)
    except NotFoundError:  # the service has not created its durable yet
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq > 0


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"]
    return body


async def test_roster_from_members_events_then_a_scheduled_meeting_goes_out_on_jetstream(database_url, clean_nats):
    group_id, member_id = uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        # The join may overtake the group's creation (separate durables): it is kept, not refused.
        await publish(js, member_joined(group_id, member_id, role="coordinator"))
        export = await wait_until(lambda: _export_rows(client, member_id), message="the membership before its group")
        assert [(r["group_id"], r["group_name"], r["role"], _instant(r["joined_at"])) for r in export] == [
            (str(group_id), None, "coordinator", datetime(2026, 11, 2, 9, 30, tzinfo=UTC))
        ]
        body = assert_problem(await client.get(f"/groups/{group_id}"), 404)
        assert "unknown to the meetings service" in body["detail"]
        body = assert_problem(await client.post("/meetings", json=meeting_body(group_id)), 404)
        assert "unknown to the meetings service" in body["detail"]

        await publish(js, group_created(group_id))
        roster = await wait_until(lambda: _ok_json(client, f"/groups/{group_id}"), message="the roster copy")
        assert roster["name"] == "Offentlig digitalisering øst" and roster["region"] == "Øst"
        assert roster["member_ids"] == [str(member_id)]
        assert roster["members"][0]["role"] == "coordinator"

        starts, ends = future(30, 16), future(30, 18)
        response = await client.post(
            "/meetings", json=meeting_body(group_id, starts_at=starts.isoformat(), ends_at=ends.isoformat())
        )
        assert response.status_code == 201, response.text
        meeting = response.json()
        meeting_id = meeting["meeting_id"]
        starts_utc = starts.astimezone(UTC)
        assert _instant(meeting["starts_at"]) == starts_utc and _instant(meeting["ends_at"]) == ends
        assert meeting["timezone"] == "Europe/Copenhagen" and meeting["sequence"] == 0
        assert [(a["position"], a["kind"]) for a in meeting["agenda"]] == [(1, "check_in"), (2, "talk"), (3, "break")]
        assert (await client.get(f"/meetings/{meeting_id}")).json() == meeting
        assert (await client.get(f"/groups/{group_id}/meetings")).json() == [meeting]

        sub = await js.pull_subscribe("meetings.meeting.scheduled.v1.>", durable="test-probe", stream="MEETINGS")
        [msg] = await sub.fetch(1, timeout=10)
        await msg.ack()

    assert msg.subject == f"meetings.meeting.scheduled.v1.{meeting_id}"
    spec = JSONFormat().read(None, msg.data)  # the CloudEvents SDK accepts it as a structured-mode event
    assert spec.get_specversion() == "1.0" and spec.get_type() == "dk.danskit.meeting.scheduled.v1"
    assert spec.get_source() == "/meetings" and spec.get_subject() == meeting_id
    assert msg.headers["Nats-Msg-Id"] == spec.get_id()
    event, data = parse_event(msg.data)
    assert isinstance(data, contracts.MeetingScheduled)
    assert str(data.meeting_id) == meeting_id and data.group_id == group_id
    assert data.title == "Vintermøde: udbud, SKI og databeskyttelse"
    assert data.starts_at == starts_utc and data.starts_at.utcoffset() == timedelta(0)
    assert data.ends_at == ends.astimezone(UTC)
    assert data.timezone == "Europe/Copenhagen" and data.sequence == 0
    assert data.venue == contracts.Venue(
        name="Rådhuset, mødesal 2", address="Rådhuspladsen 1, 1550 København V", host_organisation="Eksempel Kommune"
    )
    assert data.capacity == 40 and data.online_url == "https://meet.example.org/vintermoede"
    assert [(a.position, a.kind.value, a.title, a.minutes) for a in data.agenda] == [
        (1, "check_in", "Runde", 20),
        (2, "talk", "Databeskyttelse i udbud", 40),
        (3, "break", "Kaffe", 15),
    ]
    assert data.agenda[1].tags == ("gdpr", "udbud")
    assert json.loads(msg.data)["data"]["starts_at"].endswith("Z")


async def test_redelivered_and_republished_members_events_leave_one_roster_row(database_url, clean_nats):
    group_id, member_id = uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        created = await publish(js, group_created(group_id))
        joined = member_joined(
            group_id, member_id, role="coordinator", joined_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
        )
        first = await publish(js, joined)
        # the same event again under a new Nats-Msg-Id (JetStream stores it twice) ...
        await publish(js, joined, event_id=first.id, msg_id=str(uuid.uuid4()))
        # ... the same fact under a new event id (a republish), an older join arriving late, a replayed creation
        await publish(js, joined)
        await publish(
            js, member_joined(group_id, member_id, role="member", joined_at=datetime(2026, 10, 1, 8, 0, tzinfo=UTC))
        )
        replayed = await publish(js, group_created(group_id, name="A stale copy of the name"))
        assert replayed.id != created.id

        await wait_until(lambda: settled(js, "meetings-member-joined-v1"), message="member.joined consumed")
        await wait_until(lambda: settled(js, "meetings-group-created-v1"), message="group.created consumed")
        roster = (await client.get(f"/groups/{group_id}")).json()
        assert roster["member_ids"] == [str(member_id)]
        assert [(m["role"], _instant(m["joined_at"])) for m in roster["members"]] == [
            ("coordinator", datetime(2026, 11, 2, 9, 30, tzinfo=UTC))
        ]
        assert roster["name"] == "Offentlig digitalisering øst"
        assert (await client.get("/admin/dead-letters")).json() == []

        inbox = runtime.tables.inbox
        async with runtime.engine.connect() as conn:
            counts = dict((await conn.execute(select(inbox.c.consumer, func.count()).group_by(inbox.c.consumer))).all())
        # 4 messages on member.joined with 3 distinct event ids; 2 distinct group.created events, both processed
        assert counts == {"meetings-member-joined-v1": 3, "meetings-group-created-v1": 2}


async def test_a_malformed_message_becomes_a_dead_letter_and_the_next_event_still_lands(database_url, clean_nats):
    group_id, member_id = uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await js.publish(
            "members.member.joined.v1.x", b"this is { not json", headers={"Nats-Msg-Id": str(uuid.uuid4())}
        )
        bad_role = make_event(member_joined(group_id, uuid.uuid4())).model_copy(
            update={
                "data": {
                    "member_id": str(uuid.uuid4()),
                    "group_id": str(group_id),
                    "role": "owner",
                    "joined_at": "2026-11-02T09:30:00Z",
                }
            }
        )
        bad_subject = f"members.member.joined.v1.{bad_role.subject}"
        await js.publish(bad_subject, to_bytes(bad_role), headers={"Nats-Msg-Id": bad_role.id})
        await publish(js, member_joined(group_id, member_id))

        rows = await wait_until(lambda: _export_rows(client, member_id), message="the good event after the bad ones")
        assert [r["group_id"] for r in rows] == [str(group_id)]
        dead = (await client.get("/admin/dead-letters")).json()
        by_subject = {d["subject"]: d for d in dead}
        assert len(dead) == 2 and set(by_subject) == {"members.member.joined.v1.x", bad_subject}
        not_json = by_subject["members.member.joined.v1.x"]
        assert not_json["consumer"] == "meetings-member-joined-v1"
        assert "not JSON" in not_json["reason"] and not_json["body"] == "this is { not json"
        contract_breach = by_subject[bad_subject]
        assert "breaks the dk.danskit.member.joined.v1 contract" in contract_breach["reason"]
        assert contract_breach["body"]["id"] == bad_role.id
        await wait_until(lambda: settled(js, "meetings-member-joined-v1"), message="nothing left to redeliver")


async def test_bad_requests_are_problems_not_500s(database_url, clean_nats):
    group_id = uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await publish(js, group_created(group_id))
        await wait_until(lambda: _ok_json(client, f"/groups/{group_id}"), message="the roster copy")

        body = assert_problem(await client.post("/meetings", json=meeting_body(uuid.uuid4())), 404)
        assert "unknown to the meetings service" in body["detail"]
        body = assert_problem(
            await client.post(
                "/meetings",
                json=meeting_body(group_id, starts_at=future(30, 18).isoformat(), ends_at=future(30, 16).isoformat()),
            ),
            422,
        )
        assert "end after it starts" in body["detail"]
        assert_problem(
            await client.post("/meetings", json=meeting_body(group_id, ends_at=future(30, 16).isoformat())), 422
        )
        body = assert_problem(
            await client.post(
                "/meetings",
                json=meeting_body(group_id, starts_at=future(-2, 16).isoformat(), ends_at=future(-2, 18).isoformat()),
            ),
            422,
        )
        assert "past" in body["detail"]
        body = assert_problem(
            await client.post(
                "/meetings", json=meeting_body(group_id, starts_at=future(30, 16).replace(tzinfo=None).isoformat())
            ),
            422,
        )
        assert body["errors"][0]["field"] == "starts_at"
        for title in ("", "   "):
            assert_problem(await client.post("/meetings", json=meeting_body(group_id, title=title)), 422)
        body = assert_problem(await client.post("/meetings", json=meeting_body(group_id, timezone="Europe/Kbh")), 422)
        assert body["errors"][0]["field"] == "timezone"
        assert_problem(
            await client.post(
                "/meetings", json=meeting_body(group_id, agenda=[{"kind": "lecture", "title": "Oplæg", "minutes": 30}])
            ),
            422,
        )
        assert_problem(await client.get(f"/meetings/{uuid.uuid4()}"), 404)
        assert_problem(await client.get(f"/groups/{uuid.uuid4()}/meetings"), 404)
        assert (await client.get(f"/groups/{group_id}/meetings")).json() == []
        assert_problem(await client.get(f"/groups/{group_id}", headers={"Authorization": "Bearer wrong"}), 401)
        assert_problem(await client.get(f"/members/{uuid.uuid4()}/export"), 404)  # one rule for every service

        async with runtime.engine.connect() as conn:
            outbox = (await conn.execute(select(func.count()).select_from(runtime.tables.outbox))).scalar_one()
        assert outbox == 0  # nothing refused left an event behind


async def _export_rows(client, member_id):
    response = await client.get(f"/members/{member_id}/export")
    if response.status_code == 404:  # this service holds nothing about the member
        return []
    assert response.status_code == 200, response.text
    return response.json()["group_memberships"]


async def _ok_json(client, path):
    response = await client.get(path)
    return response.json() if response.status_code == 200 else None


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), text  # the API answers in UTC
    return moment
