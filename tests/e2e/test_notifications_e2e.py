"""End to end, the notifications a meeting's life sends, with the three services as real processes, real NATS and a
real SMTP server: the SMTP server away while a meeting moves, then back — every member gets the update once, and
a calendar parser sees it move the same entry (same UID, higher SEQUENCE); a member clicks the mail's one-click
unsubscribe (RFC 8058, as a mail client does: a form POST to the List-Unsubscribe URL, no API token) and hears no
more announcements; a cancellation still reaches everyone (transactional) as METHOD:CANCEL of that same entry."""

from __future__ import annotations

import asyncio
import collections
import urllib.error
import urllib.request
from datetime import datetime, timedelta

import icalendar
import pytest

from netvaerk_testing.plugin import wait_until

from .test_platform import join, new_group, new_member, roster_has, schedule

pytestmark = pytest.mark.e2e
N = 12


def calendar_of(message) -> icalendar.Calendar:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            return icalendar.Calendar.from_ical(part.get_content())
    raise AssertionError(f"no calendar in {message['Subject']!r}")


def by_subject(p, prefix: str) -> dict[str, list]:
    """address -> the mails whose subject starts with `prefix`."""
    found: dict[str, list] = collections.defaultdict(list)
    for message in p.mails():
        if str(message["Subject"]).startswith(prefix):
            found[message["To"].addresses[0].addr_spec].append(message)
    return found


def one_click(url: str) -> int:
    """What a mail client does for List-Unsubscribe-Post: POST "List-Unsubscribe=One-Click" as a form, no token."""
    request = urllib.request.Request(
        url,
        data=b"List-Unsubscribe=One-Click",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def move(p, meeting: dict, hours: int) -> dict:
    starts = datetime.fromisoformat(meeting["starts_at"]) + timedelta(hours=hours)
    ends = datetime.fromisoformat(meeting["ends_at"]) + timedelta(hours=hours)
    status, body = p.call(
        "meetings",
        "PATCH",
        f"/meetings/{meeting['meeting_id']}",
        {"starts_at": starts.isoformat(), "ends_at": ends.isoformat()},
    )
    assert status == 200, body
    return body


@pytest.mark.parametrize("platform", ["postgresql", "sqlite"], indirect=True)
async def test_smtp_away_then_back_unsubscribe_and_cancel(platform):
    p = platform
    smtp = p.extra["smtp"]
    group_id = new_group(p)
    members = [new_member(p, i) for i in range(N)]
    for m in members:
        join(p, m, group_id)
    addresses = {f"deltager{i:03d}@example.org" for i in range(N)}
    await wait_until(lambda: roster_has(p, group_id, N), timeout=30, message="meetings roster complete")
    status, meeting = schedule(p, group_id)
    assert status == 201, meeting
    await wait_until(lambda: len(by_subject(p, "Invitation")) == N, timeout=60, message="the invitations")
    invitation = calendar_of(by_subject(p, "Invitation")["deltager000@example.org"][0])
    [invited] = invitation.walk("VEVENT")

    # the SMTP server goes away while the meeting moves; the updates wait for it and arrive once each
    smtp.stop()
    moved = move(p, meeting, hours=1)
    await asyncio.sleep(6)
    assert not by_subject(p, "Ændret"), "nothing could have been delivered meanwhile"
    smtp.start()
    await wait_until(lambda: len(by_subject(p, "Ændret")) == N, timeout=90, message="every update after the outage")
    await asyncio.sleep(2)  # anything sent twice would show now
    updates = by_subject(p, "Ændret")
    assert set(updates) == addresses and all(len(v) == 1 for v in updates.values()), {
        a: len(v) for a, v in updates.items()
    }
    for mails in updates.values():
        cal = calendar_of(mails[0])
        [event] = cal.walk("VEVENT")
        assert str(cal["METHOD"]) == "REQUEST"
        assert str(event["UID"]) == str(invited["UID"]), "the same entry, moved"
        assert int(event["SEQUENCE"]) > int(invited["SEQUENCE"])
        assert event.decoded("DTSTART") == datetime.fromisoformat(moved["starts_at"])

    # one click in member 0's mail client: no more announcements for them
    mail = updates["deltager000@example.org"][0]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(mail["List-Unsubscribe"]).strip().strip("<>")
    base = str(p.services["notifications"].url)
    path = url[url.index("/unsubscribe/") :]
    assert one_click(base + path) == 200
    assert one_click(base + path) == 200  # idempotent
    assert one_click(base + path[:-3] + "xyz") == 404  # a forged token opens nothing
    status, prefs = p.call(
        "notifications", "GET", f"/members/{members[0]}/preferences", headers={"X-Netvaerk-Member": members[0]}
    )
    assert status == 200 and prefs["announcements"]["email"] is False, prefs

    moved_again = move(p, moved, hours=1)
    want = addresses - {"deltager000@example.org"}
    await wait_until(
        lambda: sum(len(v) for v in by_subject(p, "Ændret").values()) == 2 * N - 1,
        timeout=60,
        message="the second update to all but the member who unsubscribed",
    )
    second = {a for a, v in by_subject(p, "Ændret").items() if len(v) == 2}
    assert second == want

    # a cancellation is transactional: everyone, the member who unsubscribed too, as CANCEL of the same entry
    status, body = p.call("meetings", "POST", f"/meetings/{meeting['meeting_id']}/cancel", {"reason": "Ingen lokaler"})
    assert status == 200, body
    await wait_until(lambda: len(by_subject(p, "Aflyst")) == N, timeout=60, message="the cancellations")
    await asyncio.sleep(2)  # anything sent twice would show now
    cancels = by_subject(p, "Aflyst")
    assert set(cancels) == addresses and all(len(v) == 1 for v in cancels.values())
    cal = calendar_of(cancels["deltager000@example.org"][0])
    [event] = cal.walk("VEVENT")
    assert str(cal["METHOD"]) == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == str(invited["UID"])
    assert int(event["SEQUENCE"]) > int(moved_again["sequence"]), "higher than the last update's"
