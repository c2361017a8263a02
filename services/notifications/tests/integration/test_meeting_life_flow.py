"""A meeting's life after the invitation, in-process against real NATS JetStream, a real database (PostgreSQL and
SQLite) and a real SMTP server (the Maildir sink): updates whose ICS moves the calendar entry, cancellations as
METHOD:CANCEL, an agenda edited five times giving one mail, a member's answer, a seat and an accepted proposal;
preferences over HTTP, one-click unsubscribe from a received mail's header, and both in the GDPR export and erasure."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import icalendar
import nats
import pytest
from sqlalchemy import select

from netvaerk_shared import contracts, gdpr
from netvaerk_shared.contracts import meetings as plan
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_testing.plugin import running_app, service_settings, wait_until
from notifications.adapters import orm
from notifications.bootstrap import bootstrap
from notifications.config import Settings
from notifications.entrypoints.http import create_app

from . import test_notifications_flow as flow
from .test_gdpr import dump
from .test_notifications_flow import group, joined, mails, member, publish

app, js, smtp = flow.app, flow.js, flow.smtp  # the flow tests' fixtures: the service, JetStream, the SMTP sink

STARTS = datetime(2027, 6, 10, 7, 30, tzinfo=UTC)  # 09:30 in Copenhagen


def subjects(path) -> list[str]:
    return sorted(str(m["Subject"]) for m in mails(path))


def to(path, address: str, prefix: str) -> list:
    return [m for m in mails(path) if m["To"].addresses[0].addr_spec == address and m["Subject"].startswith(prefix)]


def calendar(message) -> icalendar.Calendar:
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    return icalendar.Calendar.from_ical(part.get_payload(decode=True))


async def a_group_of(js, smtp, *people):
    g = group()
    await publish(js, g)
    for p in people:
        await publish(js, p)
        await publish(js, joined(p, g))
    await wait_until(lambda: len(mails(smtp["path"])) >= len(people), timeout=15, message="welcomes")
    return g


async def scheduled(js, smtp, g, expected: int) -> contracts.MeetingScheduled:
    before = len(mails(smtp["path"]))
    meeting = contracts.MeetingScheduled(
        meeting_id=uuid.uuid4(),
        group_id=g.group_id,
        title="Sommermøde om SKI-aftaler på Ærø",
        starts_at=STARTS,
        ends_at=STARTS + timedelta(hours=3),
        venue=contracts.Venue(name="Eksempelhuset", address="Eksempelvej 1"),
        agenda=(contracts.AgendaItem(position=1, kind="talk", title="SKI 02.19", minutes=60),),
    )
    await publish(js, meeting)
    await wait_until(lambda: len(mails(smtp["path"])) >= before + expected, timeout=15, message="invitations")
    return meeting


async def test_a_reschedule_moves_the_entry_and_a_cancellation_cancels_it_once_each(app, js, smtp):
    mette, john = member("Mette Ærø", "mette@example.org"), member("John Example", "john@example.org", "en")
    g = await a_group_of(js, smtp, mette, john)
    meeting = await scheduled(js, smtp, g, 2)

    moved = plan.MeetingRescheduled(
        meeting_id=meeting.meeting_id,
        group_id=g.group_id,
        title=meeting.title,
        starts_at=STARTS + timedelta(days=7),
        ends_at=STARTS + timedelta(days=7, hours=3),
        venue=meeting.venue,
        previous_starts_at=STARTS,
        sequence=1,
    )
    event_id = await publish(js, moved)
    await publish(js, moved, event_id=event_id)  # redelivered
    await publish(js, moved)  # the same version again, another event id
    await wait_until(lambda: len(to(smtp["path"], "john@example.org", "Updated")) == 1, timeout=15, message="update")
    await wait_until(lambda: len(to(smtp["path"], "mette@example.org", "Ændret")) == 1, timeout=15, message="update")

    [invitation] = to(smtp["path"], "mette@example.org", "Invitation")
    [update] = to(smtp["path"], "mette@example.org", "Ændret")
    assert update["Subject"] == "Ændret: Sommermøde om SKI-aftaler på Ærø – 17. juni 2027"
    assert "Mødet er flyttet." in update.get_body(("plain",)).get_content()
    assert update.get_body(("html",)) is not None
    assert update["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    first, second = calendar(invitation), calendar(update)
    [old], [new] = first.walk("VEVENT"), second.walk("VEVENT")
    assert str(second["METHOD"]) == "REQUEST"
    assert str(new["UID"]) == str(old["UID"])
    assert int(new["SEQUENCE"]) > int(old["SEQUENCE"])
    assert new.decoded("DTSTART") == STARTS + timedelta(days=7)
    assert new.decoded("DTSTART").tzinfo is not None and str(new.decoded("DTSTART").tzinfo) == "Europe/Copenhagen"

    # mette turns announcements off: the cancellation still goes (transactional), to both, once
    response = await app.put(
        f"/members/{mette.member_id}/preferences",
        headers={"X-Netvaerk-Member": str(mette.member_id)},
        json={
            "announcements": {"email": False},
            "reminders": {"email": True},
            "agenda_updates": {"email": True, "language": "en"},
        },
    )
    assert response.status_code == 200, response.text
    cancelled = plan.MeetingCancelled(
        meeting_id=meeting.meeting_id,
        group_id=g.group_id,
        starts_at=moved.starts_at,
        reason="Oplægsholderen er blevet syg",
        sequence=2,
    )
    cancel_id = await publish(js, cancelled)
    await publish(js, cancelled, event_id=cancel_id)
    await wait_until(lambda: len(to(smtp["path"], "mette@example.org", "Aflyst")) == 1, timeout=15, message="cancel")
    await wait_until(lambda: len(to(smtp["path"], "john@example.org", "Cancelled")) == 1, timeout=15, message="cancel")
    [cancellation] = to(smtp["path"], "mette@example.org", "Aflyst")
    cal = calendar(cancellation)
    [event] = cal.walk("VEVENT")
    assert str(cal["METHOD"]) == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == str(old["UID"]) and int(event["SEQUENCE"]) == 2 > int(new["SEQUENCE"])
    assert cancellation["List-Unsubscribe"] is None
    assert "Begrundelse: Oplægsholderen er blevet syg" in cancellation.get_body(("plain",)).get_content()
    await asyncio.sleep(1)
    assert len(mails(smtp["path"])) == 2 + 2 + 2 + 2  # welcomes, invitations, updates, cancellations: once each


async def test_an_agenda_edited_five_times_gives_one_mail_and_members_hear_of_their_own_seats(app, js, smtp):
    mette, ole = member("Mette Ærø", "mette@example.org"), member("Ole Øster", "ole@example.org")
    g = await a_group_of(js, smtp, mette, ole)
    meeting = await scheduled(js, smtp, g, 2)
    for sequence in range(1, 6):
        items = (
            plan.AgendaItem(position=1, kind="check_in", title="Runden", minutes=15),
            plan.AgendaItem(position=2, kind="discussion", title=f"Drøftelse nr. {sequence}", minutes=30),
        )
        await publish(
            js, plan.AgendaUpdated(meeting_id=meeting.meeting_id, group_id=g.group_id, agenda=items, sequence=sequence)
        )
    await wait_until(
        lambda: len(to(smtp["path"], "ole@example.org", "Ny dagsorden")) == 1, timeout=15, message="agenda"
    )
    await publish(
        js,
        plan.RsvpRecorded(
            meeting_id=meeting.meeting_id,
            group_id=g.group_id,
            member_id=ole.member_id,
            response="attending",
            status="waitlisted",
            waitlist_position=1,
            answered_at=datetime.now(UTC),
        ),
    )
    await publish(
        js,
        plan.WaitlistPromoted(
            meeting_id=meeting.meeting_id, group_id=g.group_id, member_id=ole.member_id, promoted_at=datetime.now(UTC)
        ),
    )
    await publish(
        js,
        plan.ProposalAccepted(
            proposal_id=uuid.uuid4(),
            group_id=g.group_id,
            member_id=mette.member_id,
            meeting_id=meeting.meeting_id,
            agenda_position=2,
        ),
    )
    await wait_until(lambda: len(mails(smtp["path"])) >= 2 + 2 + 2 + 3, timeout=15, message="answer, seat, proposal")
    await asyncio.sleep(1.5)
    assert len(to(smtp["path"], "mette@example.org", "Ny dagsorden")) == 1
    assert len(to(smtp["path"], "ole@example.org", "Ny dagsorden")) == 1
    [receipt] = to(smtp["path"], "ole@example.org", "Dit svar")
    assert "ventelisten som nummer 1" in receipt.get_body(("plain",)).get_content()
    assert to(smtp["path"], "ole@example.org", "Du har fået en plads")
    [accepted] = to(smtp["path"], "mette@example.org", "Dit forslag er på dagsordenen")
    assert "Punkt 2: Drøftelse nr. 5" in accepted.get_body(("plain",)).get_content()
    assert len(mails(smtp["path"])) == 2 + 2 + 2 + 3
    # the rest of the edits wait for the end of the window, one notice a member, the agenda as it is then
    log = (await app.get("/deliveries", params={"kind": "agenda_update"})).json()
    assert sorted(d["status"] for d in log) == ["pending", "pending", "sent", "sent"]
    held = [d for d in log if d["status"] == "pending"]
    first = min(datetime.fromisoformat(d["created_at"]) for d in log)
    assert all(datetime.fromisoformat(d["next_attempt_at"]) >= first + timedelta(minutes=59) for d in held)


async def test_preferences_one_click_unsubscribe_and_gdpr(app, js, smtp, clean_nats):
    mette, ole = member("Mette Ærø", "mette@example.org"), member("Ole Øster", "ole@example.org")
    g = await a_group_of(js, smtp, mette, ole)
    mine = {"X-Netvaerk-Member": str(mette.member_id)}
    path = f"/members/{mette.member_id}/preferences"
    got = (await app.get(path, headers=mine)).json()
    assert got["announcements"] == {"email": True, "language": None}
    assert (await app.get(path, headers={"X-Netvaerk-Member": str(ole.member_id)})).status_code == 403
    assert (await app.get(f"/members/{uuid.uuid4()}/preferences")).status_code == 404  # administration, unknown
    meeting = await scheduled(js, smtp, g, 2)

    [invitation] = to(smtp["path"], "mette@example.org", "Invitation")
    url = invitation["List-Unsubscribe"]
    assert url.startswith("<https://") and invitation["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = url.strip("<>").rsplit("/", 1)[1]
    for _ in range(2):  # idempotent
        response = await app.post(f"/unsubscribe/{token}")
        assert response.status_code == 200 and response.json() == {"category": "announcements", "email": False}
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "garbled", "%00", "x" * 5000):
        response = await app.post(f"/unsubscribe/{bad}")
        assert response.status_code == 404, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    # a capability URL: the mail client's RFC 8058 POST carries no API token, and a form body
    one_click = await app.post(
        f"/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Authorization": "", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200, one_click.text
    assert (await app.get(path, headers=mine)).json()["announcements"] == {"email": False, "language": None}

    moved = plan.MeetingRescheduled(
        meeting_id=meeting.meeting_id,
        group_id=g.group_id,
        title=meeting.title,
        starts_at=STARTS + timedelta(days=1),
        ends_at=STARTS + timedelta(days=1, hours=3),
        previous_starts_at=STARTS,
        sequence=1,
    )
    await publish(js, moved)
    await wait_until(lambda: len(to(smtp["path"], "ole@example.org", "Ændret")) == 1, timeout=15, message="update")
    await asyncio.sleep(1)
    assert to(smtp["path"], "mette@example.org", "Ændret") == []  # she turned announcements off

    # her own delivery log: hers only, no error text; nobody else's
    own = (await app.get(f"/members/{mette.member_id}/deliveries", headers=mine)).json()
    assert [(d["kind"], d["status"]) for d in own] == [("invitation", "sent"), ("welcome", "sent")]  # no update owed
    assert "last_error" not in own[0] and own[0]["subject"].startswith("Invitation")
    other = {"X-Netvaerk-Member": str(ole.member_id)}
    assert (await app.get(f"/members/{mette.member_id}/deliveries", headers=other)).status_code == 403

    nc = await nats.connect(clean_nats)
    try:
        parts = await gdpr.gather_export(nc, mette.member_id, ["notifications"], timeout=3)
        [chosen] = parts["notifications"]["preferences"]
        assert (chosen["category"], chosen["email"]) == ("announcements", False)
        await publish(js, MemberErased(member_id=mette.member_id, erased_at=datetime.now(UTC)))

        async def forgotten() -> bool:
            return (await app.get(f"/members/{mette.member_id}/export")).status_code == 404

        await wait_until(forgotten, timeout=15, message="the member forgotten")
    finally:
        await nc.close()
    runtime = app._transport.app.state.runtime
    async with runtime.engine.connect() as conn:
        assert (await conn.execute(select(orm.preferences))).all() == []  # gone with the rest
    assert "mette@example.org" not in await dump(app)
    assert (await app.post(f"/unsubscribe/{token}")).status_code == 404
    assert (await app.get(path)).status_code == 404


@pytest.fixture
async def quick_window(clean_nats, database_url, smtp, js):
    settings = service_settings(
        Settings,
        database_url,
        clean_nats,
        smtp_port=smtp["port"],
        delivery_lease_seconds=2,
        agenda_update_window_seconds=3,
    )
    async with running_app(create_app(), bootstrap(settings)) as client:
        yield client


async def test_edits_within_the_window_reach_members_once_when_it_ends_with_the_last_agenda(quick_window, js, smtp):
    ole = member("Ole Øster", "ole@example.org", "en")
    g = await a_group_of(js, smtp, ole)
    meeting = await scheduled(js, smtp, g, 1)
    for sequence in range(1, 6):
        item = plan.AgendaItem(position=1, kind="discussion", title=f"Version {sequence}", minutes=30)
        await publish(
            js,
            plan.AgendaUpdated(meeting_id=meeting.meeting_id, group_id=g.group_id, agenda=(item,), sequence=sequence),
        )
    await wait_until(
        lambda: len(to(smtp["path"], "ole@example.org", "Agenda updated")) == 2,
        timeout=20,
        message="the notice at the end of the window",
    )
    first, last = sorted(to(smtp["path"], "ole@example.org", "Agenda updated"), key=lambda m: m["Date"].datetime)
    assert "Version 5" in last.get_body(("plain",)).get_content()
    assert (last["Date"].datetime - first["Date"].datetime).total_seconds() >= 2  # a window apart (to the second)
    await asyncio.sleep(4)
    assert len(to(smtp["path"], "ole@example.org", "Agenda updated")) == 2
