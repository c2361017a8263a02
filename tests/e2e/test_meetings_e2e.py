"""End to end: a meeting's seats follow the group's roster as the members service changes it, over real NATS between
real processes. Members join (member.joined) and only they may answer; a full meeting puts the next on the waiting
list; a member who leaves (member.left) gives up the seat and the first in line is promoted; a seat transferred to a
colleague (seat.transferred) carries the meeting's seat with it; a colleague known from member.registered can be sent
in one's place; an erased member's answer keeps its count under another id; the group's calendar feed parses with
icalendar; a group renamed and archived (group.updated) is followed and takes no new meeting; every meetings event
an outside subscriber sees is a valid v1 contract."""

from __future__ import annotations

import asyncio
import collections
import json
import uuid
from datetime import UTC, datetime, timedelta

import icalendar
import nats
import pytest

from netvaerk_shared.envelope import parse_event
from netvaerk_testing.plugin import wait_until

from .test_gdpr import register
from .test_platform import join, new_group

pytestmark = pytest.mark.e2e


def acting(member_id: str) -> dict[str, str]:
    return {"X-Netvaerk-Member": member_id}


def answer(p, meeting_id: str, member_id: str, response: str = "attending") -> tuple[int, dict]:
    return p.call(
        "meetings", "PUT", f"/meetings/{meeting_id}/rsvps/{member_id}", {"response": response}, acting(member_id)
    )


def seats(p, meeting_id: str) -> dict:
    status, body = p.call("meetings", "GET", f"/meetings/{meeting_id}/rsvps")
    assert status == 200, body
    return body


def status_of(p, meeting_id: str) -> dict[str, str]:
    return {a["member_id"]: a["status"] for a in seats(p, meeting_id)["answers"]}


@pytest.mark.parametrize("platform", ["postgresql", "sqlite"], indirect=True)
async def test_seats_follow_the_roster_from_the_members_service(platform):
    p = platform
    outside = await nats.connect(p.nats_url)
    seen: list[dict] = []

    async def record(msg) -> None:
        seen.append(json.loads(msg.data))
        parse_event(msg.data)  # a valid v1 contract, or the callback fails (and the test with it, below)

    await outside.subscribe("meetings.>", cb=record)
    await outside.flush()

    tag = uuid.uuid4().hex[:8]
    group_id = new_group(p, f"Netværk for pladser {tag}")
    a, b, c, colleague, outsider = (
        register(p, f"Deltager {n} {tag}", f"deltager.{n}.{tag}@example.org") for n in "abcde"
    )
    for m in (a, b, c):
        join(p, m, group_id)

    async def roster_is(ids: set[str]) -> bool:
        status, body = p.call("meetings", "GET", f"/groups/{group_id}")
        return status == 200 and set(body["member_ids"]) == ids

    await wait_until(lambda: roster_is({a, b, c}), timeout=20, message="meetings knows the roster")

    starts = (datetime.now(UTC) + timedelta(days=30)).replace(hour=11, minute=0, second=0, microsecond=0)
    status, meeting = p.call(
        "meetings",
        "POST",
        "/meetings",
        {
            "group_id": group_id,
            "title": "Netværksmøde: få pladser",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=3)).isoformat(),
            "venue": {"name": "Eksempelhuset", "address": "Eksempelvej 1, 1000 København"},
            "capacity": 2,
        },
    )
    assert status == 201, meeting
    meeting_id = meeting["meeting_id"]

    # only the group's members answer; the third "attending" waits in line
    status, problem = answer(p, meeting_id, outsider)
    assert status == 403 and problem["status"] == 403 and "member" in problem["detail"], problem
    assert [answer(p, meeting_id, m)[1]["status"] for m in (a, b, c)] == ["confirmed", "confirmed", "waitlisted"]
    assert answer(p, meeting_id, c)[1]["waitlist_position"] == 1

    # member.left: a's seat goes to c, the first in line
    status, _ = p.call("members", "DELETE", f"/groups/{group_id}/members/{a}", headers=acting(a))
    assert status == 204
    await wait_until(
        lambda: status_of(p, meeting_id) == {a: "withdrawn", b: "confirmed", c: "confirmed"},
        timeout=20,
        message="a's answer withdrawn and c promoted",
    )
    status, problem = answer(p, meeting_id, a)
    assert status == 403, problem  # no longer on the roster

    # seat.transferred: b hands the group seat to a colleague of the same organisation, the meeting's seat with it
    status, body = p.call(
        "members", "POST", f"/groups/{group_id}/members/{b}/transfer", {"to_member_id": colleague}, acting(b)
    )
    assert status == 200, body
    await wait_until(lambda: roster_is({c, colleague}), timeout=20, message="the roster after the transfer")
    await wait_until(
        lambda: status_of(p, meeting_id).get(colleague) == "confirmed",
        timeout=20,
        message="the colleague holds b's seat",
    )
    assert status_of(p, meeting_id).get(b) != "confirmed"
    assert seats(p, meeting_id)["confirmed"] == 2

    # a colleague sent in one's place: the organisation came from member.registered
    status, sent = p.call(
        "meetings",
        "POST",
        f"/meetings/{meeting_id}/rsvps/{c}/colleague",
        {"colleague_id": outsider},
        acting(c),
    )
    assert status == 200, sent
    assert (sent["status"], sent["on_behalf_of"]) == ("confirmed", c)

    # the group's calendar feed, through the service, parsed with a real iCalendar parser
    status, feed = p.call("meetings", "POST", f"/groups/{group_id}/calendar-feeds", headers=acting(c))
    assert status == 201, feed
    raw = p.services["meetings"].url + feed["path"]
    document = await asyncio.to_thread(_get_bytes, raw)
    [event] = icalendar.Calendar.from_ical(document).walk("VEVENT")
    assert event.decoded("DTSTART") == datetime.fromisoformat(meeting["starts_at"])
    assert str(event["STATUS"]) == "CONFIRMED"

    # member.erased: the colleague's answer stays counted, under an id that is not theirs
    answers_before = len(seats(p, meeting_id)["answers"])
    status, body = p.call("members", "POST", f"/members/{colleague}/erasure")
    assert status == 202, body
    await wait_until(
        lambda: colleague not in status_of(p, meeting_id), timeout=20, message="the erased member's answer anonymised"
    )
    assert len(seats(p, meeting_id)["answers"]) == answers_before

    # group.updated: renamed, then archived in the members service; the copy follows and takes no new meeting
    status, body = p.call("members", "PATCH", f"/groups/{group_id}", {"name": f"Netværk for pladser {tag} (arkiv)"})
    assert status == 200, body
    status, body = p.call("members", "PATCH", f"/groups/{group_id}", {"status": "archived"})
    assert status == 200, body

    async def copy_archived() -> bool:
        status, body = p.call("meetings", "GET", f"/groups/{group_id}")
        return status == 200 and body["status"] == "archived" and body["name"].endswith("(arkiv)")

    await wait_until(copy_archived, timeout=20, message="meetings knows the group is renamed and archived")
    status, problem = p.call(
        "meetings",
        "POST",
        "/meetings",
        {
            "group_id": group_id,
            "title": "Et møde for meget",
            "starts_at": (starts + timedelta(days=7)).isoformat(),
            "ends_at": (starts + timedelta(days=7, hours=2)).isoformat(),
        },
    )
    assert status == 409 and "archived" in problem["detail"], problem

    await asyncio.sleep(0.5)
    await outside.close()
    types = collections.Counter(e["type"] for e in seen)
    assert types["dk.danskit.meeting.scheduled.v1"] == 1
    promoted = [e["data"]["member_id"] for e in seen if e["type"] == "dk.danskit.waitlist.promoted.v1"]
    assert promoted == [c]
    recorded = [
        (e["data"]["member_id"], e["data"]["status"]) for e in seen if e["type"] == "dk.danskit.rsvp.recorded.v1"
    ]
    for expected in ((a, "confirmed"), (c, "waitlisted"), (a, "withdrawn"), (colleague, "confirmed")):
        assert expected in recorded, (expected, recorded)
    assert (outsider, "confirmed") in recorded


def _get_bytes(url: str) -> bytes:
    import urllib.request

    from .conftest import TOKEN

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/calendar")
        return response.read()
