"""The meeting's life, its agenda and the year's plan through HTTP and events, in-process against real NATS JetStream
and a real database (PostgreSQL and SQLite): who may plan (coordinators from the roster, or the administration), a
meeting moved, given a new agenda, cancelled, its minutes written; a series planned in one step, one occurrence moved
and one cancelled on its own, the series listed, exported as CSV and cancelled as one. Every change goes out on
MEETINGS with a rising sequence; every refusal is problem+json and leaves nothing behind."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from meetings.adapters import orm
from netvaerk_shared.contracts import meetings as contracts
from netvaerk_shared.contracts import members as contracts_members
from netvaerk_shared.envelope import parse_event
from netvaerk_testing.plugin import wait_until

from .test_meetings_flow import (
    _instant,
    _ok_json,
    assert_problem,
    group_created,
    meeting_body,
    meetings_service,
    member_joined,
    publish,
    settled,
)

CPH = ZoneInfo("Europe/Copenhagen")


def as_member(member_id) -> dict:
    return {"X-Netvaerk-Member": str(member_id)}


async def roster_of(client, js, group_id, *members) -> None:
    """The group and its roster (member, role) as MEMBERS events, and wait until the service has them."""
    await publish(js, group_created(group_id))
    for member_id, role in members:
        await publish(js, member_joined(group_id, member_id, role=role))

    async def arrived():
        body = await _ok_json(client, f"/groups/{group_id}")
        return body is not None and len(body["members"]) == len(members)

    await wait_until(arrived, timeout=15, message="the roster copy")


async def counts(runtime) -> dict[str, int]:
    async with runtime.engine.connect() as conn:
        return {
            t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            for t in (orm.meetings, orm.agenda_items, orm.series, runtime.tables.outbox)
        }


async def events_on(js, subject: str, n: int, durable: str) -> list:
    sub = await js.pull_subscribe(subject, durable=durable, stream="MEETINGS")
    got = []
    while len(got) < n:
        for msg in await sub.fetch(n - len(got), timeout=10):
            await msg.ack()
            got.append((msg.subject, *parse_event(msg.data)))
    return got


async def test_coordinators_and_the_administration_plan_members_and_outsiders_may_not(database_url, clean_nats):
    group_id, coordinator, member, outsider = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await roster_of(client, js, group_id, (coordinator, "coordinator"), (member, "member"))
        before = await counts(runtime)
        for who in (member, outsider):
            body = assert_problem(
                await client.post("/meetings", json=meeting_body(group_id), headers=as_member(who)), 403
            )
            assert "coordinator" in body["detail"]
        assert await counts(runtime) == before  # nothing half-written

        by_coordinator = await client.post("/meetings", json=meeting_body(group_id), headers=as_member(coordinator))
        assert by_coordinator.status_code == 201, by_coordinator.text
        by_admin = await client.post("/meetings", json=meeting_body(group_id))
        assert by_admin.status_code == 201, by_admin.text
        meeting_id = by_coordinator.json()["meeting_id"]
        after_two = await counts(runtime)

        series = series_body(group_id)
        for who in (member, outsider):
            h = as_member(who)
            assert_problem(await client.patch(f"/meetings/{meeting_id}", json={"capacity": 5}, headers=h), 403)
            assert_problem(await client.post(f"/meetings/{meeting_id}/cancel", json={"reason": "Nej"}, headers=h), 403)
            assert_problem(await client.put(f"/meetings/{meeting_id}/agenda", json={"agenda": []}, headers=h), 403)
            assert_problem(await client.put(f"/meetings/{meeting_id}/minutes", json={"minutes": "x"}, headers=h), 403)
            assert_problem(await client.post("/series", json=series, headers=h), 403)
        assert await counts(runtime) == after_two
        assert (await client.get(f"/meetings/{meeting_id}")).json()["sequence"] == 0

        moved = await client.patch(f"/meetings/{meeting_id}", json={"capacity": 5}, headers=as_member(coordinator))
        assert moved.status_code == 200 and moved.json()["capacity"] == 5, moved.text
        planned = await client.post("/series", json=series, headers=as_member(coordinator))
        assert planned.status_code == 201, planned.text
        assert_problem(await client.patch(f"/meetings/{uuid.uuid4()}", json={"capacity": 5}), 404)
        assert_problem(await client.post(f"/series/{uuid.uuid4()}/cancel", json={"reason": "x"}), 404)


async def test_a_meeting_moved_given_an_agenda_and_cancelled_goes_out_with_a_rising_sequence(database_url, clean_nats):
    group_id = uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await roster_of(client, js, group_id)
        starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        deadline = starts - timedelta(days=7)
        created = await client.post(
            "/meetings",
            json=meeting_body(
                group_id,
                starts_at=starts.isoformat(),
                ends_at=(starts + timedelta(hours=3)).isoformat(),
                rsvp_deadline=deadline.isoformat(),
            ),
        )
        assert created.status_code == 201, created.text
        meeting = created.json()
        meeting_id = meeting["meeting_id"]
        assert (meeting["status"], meeting["sequence"], _instant(meeting["rsvp_deadline"])) == (
            "scheduled",
            0,
            deadline,
        )

        later = starts + timedelta(days=7)
        change = {
            "starts_at": later.isoformat(),
            "ends_at": (later + timedelta(hours=3)).isoformat(),
            "venue": {"name": "Eksempelhuset", "address": "Eksempelvej 1, 8000 Aarhus C"},
            "online_url": None,
        }
        moved = await client.patch(f"/meetings/{meeting_id}", json=change)
        assert moved.status_code == 200, moved.text
        assert moved.json()["sequence"] == 1 and _instant(moved.json()["starts_at"]) == later
        assert moved.json()["online_url"] is None and moved.json()["venue"]["name"] == "Eksempelhuset"
        assert moved.json()["capacity"] == 40 and moved.json()["agenda"] == meeting["agenda"]  # the rest stays
        again = await client.patch(f"/meetings/{meeting_id}", json=change)
        assert again.json()["sequence"] == 1  # the same change twice is one change

        agenda = {
            "agenda": [
                {"kind": "check_in", "title": "Runden", "minutes": 20},
                {
                    "kind": "talk",
                    "title": "Agile kontrakter",
                    "speaker": "Oplægsholder",
                    "speaker_organisation": "Eksempel Leverandør A/S",
                    "minutes": 60,
                    "tags": ["SKI", "udbud"],
                    "materials": ["https://example.org/slides/agile.pdf"],
                },
                {"kind": "discussion", "title": "Drøftelse", "minutes": 40},
            ]
        }
        updated = await client.put(f"/meetings/{meeting_id}/agenda", json=agenda)
        assert updated.status_code == 200, updated.text
        assert [(a["position"], a["kind"]) for a in updated.json()["agenda"]] == [
            (1, "check_in"),
            (2, "talk"),
            (3, "discussion"),
        ]
        assert updated.json()["agenda"][1]["materials"] == ["https://example.org/slides/agile.pdf"]
        too_long = {"agenda": [{"kind": "talk", "title": "Hele dagen", "minutes": 181}]}
        body = assert_problem(await client.put(f"/meetings/{meeting_id}/agenda", json=too_long), 422)
        assert "181 minutes" in body["detail"]
        body = assert_problem(await client.patch(f"/meetings/{meeting_id}", json={"ends_at": later.isoformat()}), 422)
        assert "end after it starts" in body["detail"]
        past = datetime.now(UTC) - timedelta(days=1)
        body = assert_problem(
            await client.patch(
                f"/meetings/{meeting_id}",
                json={"starts_at": past.isoformat(), "ends_at": (past + timedelta(hours=1)).isoformat()},
            ),
            422,
        )
        assert "past" in body["detail"]
        body = assert_problem(await client.put(f"/meetings/{meeting_id}/minutes", json={"minutes": "Referat"}), 409)
        assert "begun" in body["detail"]

        cancelled = await client.post(f"/meetings/{meeting_id}/cancel", json={"reason": "Oplægsholderen er syg"})
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["cancel_reason"], cancelled.json()["sequence"]) == (
            "cancelled",
            "Oplægsholderen er syg",
            3,
        )
        before = await counts(runtime)
        for refused in (
            await client.patch(f"/meetings/{meeting_id}", json={"capacity": 10}),
            await client.post(f"/meetings/{meeting_id}/cancel", json={"reason": "Igen"}),
            await client.put(f"/meetings/{meeting_id}/agenda", json=agenda),
        ):
            assert "cancelled" in assert_problem(refused, 409)["detail"]
        assert await counts(runtime) == before
        assert (await client.get(f"/meetings/{meeting_id}")).json() == cancelled.json()

        got = await events_on(js, f"meetings.*.*.v1.{meeting_id}", 4, "probe-life")
    assert [(s.rsplit(".", 1)[0], d.sequence) for s, _, d in got] == [
        ("meetings.meeting.scheduled.v1", 0),
        ("meetings.meeting.rescheduled.v1", 1),
        ("meetings.agenda.updated.v1", 2),
        ("meetings.meeting.cancelled.v1", 3),
    ]
    _, _, scheduled = got[0]
    assert scheduled.rsvp_deadline == deadline and scheduled.series_id is None
    _, event, rescheduled = got[1]
    assert isinstance(rescheduled, contracts.MeetingRescheduled) and event.subject == meeting_id
    assert rescheduled.previous_starts_at == starts and rescheduled.starts_at == later
    assert rescheduled.group_id == group_id and rescheduled.online_url is None
    assert rescheduled.venue.address == "Eksempelvej 1, 8000 Aarhus C"
    _, _, agenda_updated = got[2]
    assert isinstance(agenda_updated, contracts.AgendaUpdated)
    assert [a.title for a in agenda_updated.agenda] == ["Runden", "Agile kontrakter", "Drøftelse"]
    assert agenda_updated.agenda[1].materials == ("https://example.org/slides/agile.pdf",)
    _, _, cancelled_event = got[3]
    assert isinstance(cancelled_event, contracts.MeetingCancelled)
    assert cancelled_event.reason == "Oplægsholderen er syg" and cancelled_event.starts_at == later


async def test_minutes_once_the_meeting_has_begun_and_then_it_is_held(database_url, clean_nats):
    group_id = uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await roster_of(client, js, group_id)
        created = await client.post("/meetings", json=meeting_body(group_id))
        assert created.status_code == 201, created.text
        meeting_id = created.json()["meeting_id"]
        ends = _instant(created.json()["ends_at"])
        runtime.clock = lambda: ends + timedelta(days=1)  # the day after the meeting
        minutes = "Referat\r\n\r\n- Runden: SKI 02.19 og databeskyttelse\n- Næste gang: AI i sagsbehandlingen"
        written = await client.put(f"/meetings/{meeting_id}/minutes", json={"minutes": minutes})
        assert written.status_code == 200, written.text
        assert written.json()["status"] == "held" and written.json()["sequence"] == 1
        assert written.json()["minutes"] == minutes.replace("\r\n", "\n")
        assert (
            "begun"
            in assert_problem(await client.patch(f"/meetings/{meeting_id}", json={"capacity": 1}), 409)["detail"]
        )
        assert_problem(await client.put(f"/meetings/{meeting_id}/minutes", json={"minutes": " \n "}), 422)

        [(_, _, data)] = await events_on(js, f"meetings.agenda.updated.v1.{meeting_id}", 1, "probe-minutes")
    assert data.status == contracts.MeetingStatus.held and data.minutes == minutes.replace("\r\n", "\n")


def series_body(group_id, **overrides) -> dict:
    year = datetime.now(UTC).year + 1
    body = {
        "group_id": str(group_id),
        "title": "Netværksmøde",
        "months": [3, 6, 9, 12],
        "weekday": "tuesday",
        "week": 2,
        "starts": "13:00",
        "ends": "16:00",
        "first_day": f"{year}-01-01",
        "count": 4,
        "venue": {"name": "Eksempelhuset", "host_organisation": "Eksempel Kommune"},
        "capacity": 30,
        "agenda": [{"kind": "check_in", "title": "Runden", "minutes": 30}],
        "rsvp_days_before": 7,
    }
    body.update(overrides)
    return body


async def test_a_years_plan_in_one_step_each_meeting_on_its_own_and_the_series_as_one(database_url, clean_nats):
    group_id = uuid.uuid4()
    year = datetime.now(UTC).year + 1
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await roster_of(client, js, group_id)
        before = await counts(runtime)
        refused = series_body(group_id, first_day="2020-01-01")
        body = assert_problem(await client.post("/series", json=refused), 422)
        assert "Meeting 1 of the series (2020-03-10 13:00)" in body["detail"] and "past" in body["detail"]
        gap = series_body(group_id, months=[3], weekday="sunday", week=-1, starts="02:30", ends="04:00", count=1)
        assert "does not exist" in assert_problem(await client.post("/series", json=gap), 422)["detail"]
        assert_problem(await client.post("/series", json=series_body(uuid.uuid4())), 404)
        assert await counts(runtime) == before  # a refused series leaves no meeting behind

        planned = await client.post("/series", json=series_body(group_id))
        assert planned.status_code == 201, planned.text
        series = planned.json()
        series_id = series["series_id"]
        assert series["rule"] == {
            "months": [3, 6, 9, 12],
            "weekday": "tuesday",
            "week": 2,
            "starts": "13:00",
            "ends": "16:00",
        }
        local = [_instant(m["starts_at"]).astimezone(CPH) for m in series["meetings"]]
        assert [d.date() for d in local] == [second_tuesday(year, month) for month in (3, 6, 9, 12)]
        assert {(d.hour, d.minute) for d in local} == {(13, 0)}  # on both sides of daylight saving
        assert [_instant(m["starts_at"]).hour for m in series["meetings"]] == [12, 11, 11, 12]  # UTC
        assert all(m["series_id"] == series_id and m["capacity"] == 30 for m in series["meetings"])
        first = series["meetings"][0]
        assert _instant(first["rsvp_deadline"]) == _instant(first["starts_at"]) - timedelta(days=7)
        assert len((await client.get(f"/groups/{group_id}/meetings")).json()) == 4
        assert [s["series_id"] for s in (await client.get(f"/groups/{group_id}/series")).json()] == [series_id]

        second, third = series["meetings"][1]["meeting_id"], series["meetings"][2]["meeting_id"]
        new_day = datetime(year, 6, 15, 13, 0, tzinfo=CPH)
        moved = await client.patch(
            f"/meetings/{second}",
            json={"starts_at": new_day.isoformat(), "ends_at": (new_day + timedelta(hours=3)).isoformat()},
        )
        assert moved.status_code == 200, moved.text
        cancelled = await client.post(f"/meetings/{third}/cancel", json={"reason": "Sommerferie hos værten"})
        assert cancelled.status_code == 200, cancelled.text
        now = (await client.get(f"/series/{series_id}")).json()
        assert [(m["status"], m["sequence"]) for m in now["meetings"]] == [
            ("scheduled", 0),
            ("scheduled", 1),
            ("cancelled", 1),
            ("scheduled", 0),
        ]
        assert _instant(now["meetings"][1]["starts_at"]) == new_day.astimezone(UTC)

        exported = await client.get(f"/series/{series_id}/export.csv")
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["dato"], r["start"], r["slut"], r["status"]) for r in rows] == [
            (str(second_tuesday(year, 3)), "13:00", "16:00", "scheduled"),
            (f"{year}-06-15", "13:00", "16:00", "scheduled"),
            (str(second_tuesday(year, 9)), "13:00", "16:00", "cancelled"),
            (str(second_tuesday(year, 12)), "13:00", "16:00", "scheduled"),
        ]
        assert rows[2]["aflysningsgrund"] == "Sommerferie hos værten" and rows[0]["vært"] == "Eksempel Kommune"

        whole = await client.post(f"/series/{series_id}/cancel", json={"reason": "Gruppen holder pause"})
        assert whole.status_code == 200, whole.text
        assert [(m["status"], m["cancel_reason"]) for m in whole.json()["meetings"]] == [
            ("cancelled", "Gruppen holder pause"),
            ("cancelled", "Gruppen holder pause"),
            ("cancelled", "Sommerferie hos værten"),  # already cancelled: stays as it was
            ("cancelled", "Gruppen holder pause"),
        ]

        scheduled = await events_on(js, "meetings.meeting.scheduled.v1.>", 4, "probe-series-scheduled")
        cancelled_events = await events_on(js, "meetings.meeting.cancelled.v1.>", 4, "probe-series-cancelled")
        assert_problem(await client.get(f"/series/{uuid.uuid4()}"), 404)
        assert_problem(await client.get(f"/series/{uuid.uuid4()}/export.csv"), 404)
        assert_problem(await client.get(f"/groups/{uuid.uuid4()}/series"), 404)
    assert {d.series_id for _, _, d in scheduled} == {uuid.UUID(series_id)}
    assert sorted(str(d.meeting_id) for _, _, d in scheduled) == sorted(m["meeting_id"] for m in series["meetings"])
    assert all(d.series_id == uuid.UUID(series_id) for _, _, d in cancelled_events)


async def test_the_csv_export_does_not_let_a_spreadsheet_run_a_title(database_url, clean_nats):
    group_id = uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await roster_of(client, js, group_id)
        planned = await client.post("/series", json=series_body(group_id, title='=HYPERLINK("https://evil.example")'))
        assert planned.status_code == 201, planned.text
        exported = await client.get(f"/series/{planned.json()['series_id']}/export.csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["titel"] for r in rows} == {'\'=HYPERLINK("https://evil.example")'}


def second_tuesday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(1 - first.weekday()) % 7 + 7)


async def test_who_may_plan_follows_the_roster_role_changes_and_leaving(database_url, clean_nats):
    from netvaerk_shared import contracts as all_contracts

    group_id, promoted, leaving = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await roster_of(client, js, group_id, (promoted, "member"), (leaving, "coordinator"))
        body = meeting_body(group_id)
        assert (await client.post("/meetings", json=body, headers=as_member(promoted))).status_code == 403
        assert (await client.post("/meetings", json=body, headers=as_member(leaving))).status_code == 201

        await publish(js, all_contracts.MemberRoleChanged(member_id=promoted, group_id=group_id, role="coordinator"))
        await publish(
            js,
            all_contracts.MemberLeft(member_id=leaving, group_id=group_id, left_at=datetime.now(UTC), reason="left"),
        )

        async def roles_changed():
            a = await client.post("/meetings", json=body, headers=as_member(promoted))
            return a.status_code == 201

        await wait_until(roles_changed, timeout=15, message="the promotion arrived")

        async def left():
            return (await client.post("/meetings", json=body, headers=as_member(leaving))).status_code == 403

        await wait_until(left, timeout=15, message="the leaving arrived")


async def test_changes_of_one_meeting_at_once_each_land_whole_in_turn(database_url, clean_nats):
    """Ten changes of one meeting at the same moment: the row lock (PostgreSQL) or the one writer (SQLite, BEGIN
    IMMEDIATE) puts them in turn, so each lands with its own sequence and its own event, none lost, none doubled."""
    import asyncio

    group_id = uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await roster_of(client, js, group_id)
        created = await client.post("/meetings", json=meeting_body(group_id))
        meeting_id = created.json()["meeting_id"]
        answers = await asyncio.gather(
            *(client.patch(f"/meetings/{meeting_id}", json={"capacity": 10 + n}) for n in range(10))
        )
        assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
        final = (await client.get(f"/meetings/{meeting_id}")).json()
        assert final["sequence"] == 10
        got = await events_on(js, f"meetings.meeting.rescheduled.v1.{meeting_id}", 10, "probe-race")
        assert sorted(d.sequence for _, _, d in got) == list(range(1, 11))
        assert {d.capacity for _, _, d in got} == set(range(10, 20))
        assert [d.capacity for _, _, d in got if d.sequence == 10] == [final["capacity"]]


async def test_more_seats_let_the_waiting_list_move_up_in_the_same_change(database_url, clean_nats):
    group_id, first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await roster_of(client, js, group_id, (first, "member"), (second, "member"), (third, "member"))
        created = await client.post("/meetings", json=meeting_body(group_id, capacity=1))
        meeting_id = created.json()["meeting_id"]
        for member_id in (first, second, third):
            answer = await client.put(f"/meetings/{meeting_id}/rsvps/{member_id}", json={"response": "attending"})
            assert answer.status_code == 200, answer.text
        seats = (await client.get(f"/meetings/{meeting_id}/rsvps")).json()
        assert (seats["confirmed"], seats["waitlisted"]) == (1, 2)

        raised = await client.patch(f"/meetings/{meeting_id}", json={"capacity": 2})
        assert raised.status_code == 200, raised.text
        seats = (await client.get(f"/meetings/{meeting_id}/rsvps")).json()
        assert (seats["capacity"], seats["confirmed"], seats["waitlisted"]) == (2, 2, 1)
        by_member = {a["member_id"]: a["status"] for a in seats["answers"]}
        assert by_member == {str(first): "confirmed", str(second): "confirmed", str(third): "waitlisted"}

        lowered = await client.patch(f"/meetings/{meeting_id}", json={"capacity": 1})  # nobody loses a seat
        assert lowered.status_code == 200, lowered.text
        assert (await client.get(f"/meetings/{meeting_id}/rsvps")).json()["confirmed"] == 2

        [(_, _, promoted)] = await events_on(js, f"meetings.waitlist.promoted.v1.{meeting_id}", 1, "probe-refill")
    assert promoted.member_id == second


def group_updated(group_id, status: str, name: str = "Offentlig digitalisering øst") -> contracts_members.GroupUpdated:
    return contracts_members.GroupUpdated(
        group_id=group_id,
        name=name,
        slug="offentlig-digitalisering-oest",
        region="Øst",
        description="Netværk for it-folk i kommuner og regioner øst for Storebælt.",
        status=status,
    )


async def test_the_group_copy_follows_group_updated_and_an_archived_group_takes_no_new_meetings(
    database_url, clean_nats
):
    group_id, waiting = uuid.uuid4(), uuid.uuid4()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        await roster_of(client, js, group_id)
        before = await client.post("/meetings", json=meeting_body(group_id))
        assert before.status_code == 201, before.text
        assert (await client.get(f"/groups/{group_id}")).json()["status"] == "open"

        await publish(js, group_updated(group_id, "closed", name="Digitalisering øst"))

        async def copy_is(name: str, status: str) -> bool:
            body = await _ok_json(client, f"/groups/{group_id}")
            return body is not None and (body["name"], body["status"]) == (name, status)

        await wait_until(lambda: copy_is("Digitalisering øst", "closed"), message="the renamed, closed group")
        closed = await client.post("/meetings", json=meeting_body(group_id))  # closed to new members, not meetings
        assert closed.status_code == 201, closed.text

        await publish(js, group_updated(group_id, "archived", name="Digitalisering øst (arkiv)"))
        await wait_until(lambda: copy_is("Digitalisering øst (arkiv)", "archived"), message="the archived group")
        async with runtime.engine.connect() as conn:
            outbox_before = (await conn.execute(select(func.count()).select_from(runtime.tables.outbox))).scalar_one()
        body = assert_problem(await client.post("/meetings", json=meeting_body(group_id)), 409)
        assert "archived" in body["detail"]
        body = assert_problem(await client.post("/series", json=series_body(group_id)), 409)
        assert "archived" in body["detail"]

        # an older update consumed late does not reopen it; a group whose creation is still to come is made
        await publish(js, group_updated(group_id, "open", name="Digitalisering øst"))
        await publish(js, group_updated(waiting, "open", name="Netværk vest"))
        await wait_until(lambda: _ok_json(client, f"/groups/{waiting}"), message="the group known from its update")
        assert await copy_is("Digitalisering øst (arkiv)", "archived")
        await publish(js, group_created(waiting, name="Netværk vest, gammelt navn"))  # creation after the update
        await wait_until(lambda: settled(js, "meetings-group-created-v1"), message="group.created consumed")
        assert (await client.get(f"/groups/{waiting}")).json()["name"] == "Netværk vest"
        async with runtime.engine.connect() as conn:
            outbox_after = (await conn.execute(select(func.count()).select_from(runtime.tables.outbox))).scalar_one()
        assert outbox_after == outbox_before  # nothing refused left an event behind
        meeting = (await client.get(f"/meetings/{before.json()['meeting_id']}")).json()
        assert meeting["status"] == "scheduled"  # what the group had stays as it was
