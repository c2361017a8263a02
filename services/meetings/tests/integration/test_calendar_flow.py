"""Calendar feeds through HTTP, in-process against real NATS JetStream and a real database (PostgreSQL and SQLite):
every feed is parsed with the icalendar package; meetings either side of the next daylight-saving change keep their
13:00; a change raises SEQUENCE under the same UID and a new ETag, a cancellation shows as STATUS:CANCELLED; a
conditional GET answers 304; a member's feed follows their groups; a revoked feed opens nothing; who may not: 403."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar

from meetings.adapters.ics import uid
from netvaerk_shared import contracts
from netvaerk_testing.plugin import wait_until

from .test_meetings_flow import _ok_json, assert_problem, group_created, meetings_service, member_joined, publish
from .test_proposals_flow import a_group, as_

CPH = ZoneInfo("Europe/Copenhagen")


def next_change() -> date:
    """The next day on which Copenhagen changes between winter and summer time, at least three days ahead."""
    day = datetime.now(UTC).date() + timedelta(days=3)
    while _offset(day) == _offset(day + timedelta(days=1)):
        day += timedelta(days=1)
    return day + timedelta(days=1)


def _offset(day: date) -> timedelta | None:
    return datetime.combine(day, time(12), CPH).utcoffset()


def at_13(day: date) -> datetime:
    return datetime.combine(day, time(13), CPH)


async def schedule(client, group_id, day: date, title: str = "Netværksmøde") -> dict:
    body = {
        "group_id": str(group_id),
        "title": title,
        "starts_at": at_13(day).isoformat(),
        "ends_at": (at_13(day) + timedelta(hours=3)).isoformat(),
        "venue": {"name": "Rådhuset", "address": "Rådhuspladsen 1, 1550 København V"},
        "agenda": [{"kind": "talk", "title": "AI, og ansvar", "speaker": "Mette Eksempel", "minutes": 45}],
    }
    response = await client.post("/meetings", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def parse(response) -> icalendar.Calendar:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    text = response.content.decode("utf-8")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    return icalendar.Calendar.from_ical(text)


def events(cal: icalendar.Calendar) -> dict[str, icalendar.Event]:
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


async def test_a_group_feed_stays_in_sync_across_daylight_saving_and_changes(database_url, clean_nats):
    coordinator, member, outsider = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    change = next_change()
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = await a_group(client, js, coordinator=coordinator, members=(member,))
        before = await schedule(client, group_id, change - timedelta(days=2), "Før skiftet")
        after = await schedule(client, group_id, change + timedelta(days=2), "Efter skiftet")

        assert_problem(await client.post(f"/groups/{group_id}/calendar-feeds", headers=as_(outsider)), 403)
        assert_problem(await client.post(f"/groups/{uuid.uuid4()}/calendar-feeds", headers=as_(member)), 404)
        response = await client.post(f"/groups/{group_id}/calendar-feeds", headers=as_(member))
        assert response.status_code == 201, response.text
        feed = response.json()
        assert feed["path"] == f"/calendar/{feed['token']}.ics" and feed["group_id"] == str(group_id)

        # as Outlook, Google and Apple Calendar fetch it: no Authorization header, the URL's token is the key
        bearer = client.headers.pop("authorization")
        try:
            first = await client.get(feed["path"])
            assert_problem(await client.get(f"/groups/{group_id}/calendar-feeds"), 401)  # nothing else opens
        finally:
            client.headers["authorization"] = bearer
        cal = parse(first)
        assert str(cal["X-WR-CALNAME"]) == "Offentlig digitalisering øst"
        assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Europe/Copenhagen"]
        found = events(cal)
        assert set(found) == {uid(uuid.UUID(before["meeting_id"])), uid(uuid.UUID(after["meeting_id"]))}
        a, b = found[uid(uuid.UUID(before["meeting_id"]))], found[uid(uuid.UUID(after["meeting_id"]))]
        for event, meeting in ((a, before), (b, after)):
            start = event.decoded("DTSTART")
            assert (start.hour, start.minute) == (13, 0) and start == datetime.fromisoformat(meeting["starts_at"])
            assert (event["SEQUENCE"], event["STATUS"]) == (0, "CONFIRMED")
            assert str(event["LOCATION"]) == "Rådhuset, Rådhuspladsen 1, 1550 København V"
            assert "Oplæg: AI, og ansvar (Mette Eksempel), 45 min." in str(event["DESCRIPTION"])
        assert a.decoded("DTSTART").utcoffset() != b.decoded("DTSTART").utcoffset()  # either side of the change

        # conditional GET
        etag = first.headers["etag"]
        for given in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            unchanged = await client.get(feed["path"], headers={"If-None-Match": given})
            assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
        assert (await client.get(feed["path"], headers={"If-None-Match": '"other"'})).status_code == 200

        # moved by an hour: the same UID, a higher SEQUENCE, a new ETag
        moved = await client.patch(
            f"/meetings/{before['meeting_id']}",
            json={
                "starts_at": (at_13(change - timedelta(days=2)) + timedelta(hours=1)).isoformat(),
                "ends_at": (at_13(change - timedelta(days=2)) + timedelta(hours=4)).isoformat(),
            },
        )
        assert moved.status_code == 200, moved.text
        second = await client.get(feed["path"], headers={"If-None-Match": etag})
        a = events(parse(second))[uid(uuid.UUID(before["meeting_id"]))]
        assert second.headers["etag"] != etag
        assert a["SEQUENCE"] == 1 and a.decoded("DTSTART").hour == 14

        cancelled = await client.post(f"/meetings/{after['meeting_id']}/cancel", json={"reason": "Ingen lokaler"})
        assert cancelled.status_code == 200, cancelled.text
        b = events(parse(await client.get(feed["path"])))[uid(uuid.UUID(after["meeting_id"]))]
        assert (b["SEQUENCE"], b["STATUS"]) == (1, "CANCELLED")  # kept, so subscribed calendars drop it

        # one meeting as a file
        single = await client.get(f"/meetings/{before['meeting_id']}/calendar.ics")
        [only] = parse(single).walk("VEVENT")
        assert str(only["UID"]) == uid(uuid.UUID(before["meeting_id"])) and only["SEQUENCE"] == 1
        assert single.headers["content-disposition"].startswith("attachment;")
        again = await client.get(
            f"/meetings/{before['meeting_id']}/calendar.ics", headers={"If-None-Match": single.headers["etag"]}
        )
        assert again.status_code == 304
        assert_problem(await client.get(f"/meetings/{uuid.uuid4()}/calendar.ics"), 404)

        # revoked: the URL opens nothing
        feed_url = f"/calendar-feeds/{feed['feed_id']}"
        assert_problem(await client.delete(feed_url, headers=as_(outsider)), 403)
        assert_problem(await client.delete(feed_url, headers=as_(coordinator)), 403)  # not theirs
        assert (await client.delete(feed_url, headers=as_(member))).status_code == 204
        assert_problem(await client.get(feed["path"]), 404)
        assert (await client.delete(feed_url)).status_code == 204  # again, by the administration: still revoked
        assert_problem(await client.delete(f"/calendar-feeds/{uuid.uuid4()}"), 404)
        assert_problem(await client.get(f"/calendar/{'A' * 43}.ics"), 404)  # no such feed
        for bad in ("short", "A" * 44, "A" * 42 + "%00"):
            response = await client.get(f"/calendar/{bad}.ics")
            assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
        # revoked, it opens nothing whatever Authorization is sent
        assert_problem(await client.get(feed["path"], headers={"Authorization": "Bearer wrong"}), 404)


async def test_a_members_feed_follows_the_groups_they_are_in(database_url, clean_nats):
    member, other = uuid.uuid4(), uuid.uuid4()
    day = datetime.now(UTC).date() + timedelta(days=20)
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        groups = []
        for name in ("Øst", "Vest", "Nord"):
            group_id = uuid.uuid4()
            await publish(js, group_created(group_id, name=f"Netværk {name}"))
            groups.append(group_id)
        for group_id in groups[:2]:
            await publish(js, member_joined(group_id, member))
        await publish(js, member_joined(groups[2], other))

        async def rosters() -> bool:
            copies = [await _ok_json(client, f"/groups/{g}") for g in groups]
            return all(c is not None and c["member_ids"] for c in copies)

        await wait_until(rosters, timeout=15, message="three rosters")
        meetings = [await schedule(client, g, day + timedelta(days=i)) for i, g in enumerate(groups)]

        assert_problem(await client.post(f"/members/{member}/calendar-feeds", headers=as_(other)), 403)
        feed = (await client.post(f"/members/{member}/calendar-feeds", headers=as_(member))).json()
        assert (await client.post(f"/members/{member}/calendar-feeds")).status_code == 201  # the administration
        cal = parse(await client.get(feed["path"]))
        assert str(cal["X-WR-CALNAME"]) == "Mine netværksmøder"
        found = events(cal)
        assert set(found) == {uid(uuid.UUID(m["meeting_id"])) for m in meetings[:2]}
        assert sorted(str(e["SUMMARY"]) for e in found.values()) == [
            "Netværk Vest: Netværksmøde",
            "Netværk Øst: Netværksmøde",
        ]

        listed = (await client.get(f"/members/{member}/calendar-feeds", headers=as_(member))).json()
        assert len(listed) == 2 and all("token" not in f for f in listed)
        assert_problem(await client.get(f"/members/{member}/calendar-feeds", headers=as_(other)), 403)

        # leaving a group takes its meetings out of the member's feed
        await publish(
            js,
            contracts.MemberLeft(member_id=member, group_id=groups[1], left_at=datetime.now(UTC), reason="left"),
        )

        async def one_group_left() -> bool:
            return len(events(parse(await client.get(feed["path"])))) == 1

        await wait_until(one_group_left, timeout=15, message="the feed without the group left")
        assert set(events(parse(await client.get(feed["path"])))) == {uid(uuid.UUID(meetings[0]["meeting_id"]))}
