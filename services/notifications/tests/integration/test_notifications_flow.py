"""The notifications service in-process against real NATS JetStream, a real database and a real SMTP server (the
Maildir sink): welcome emails, invitations with ICS, NotificationSent, and nothing sent twice."""

from __future__ import annotations

import email
import email.policy
import json
import uuid
from datetime import UTC, datetime, timedelta

import icalendar
import nats
import pytest

from netvaerk_shared import contracts, topology
from netvaerk_shared.envelope import make_event, parse_event, to_bytes
from netvaerk_testing.infra import free_port
from netvaerk_testing.plugin import running_app, service_settings, wait_until
from netvaerk_testing.smtp_sink import open_maildir, start_sink
from notifications.bootstrap import bootstrap
from notifications.config import Settings
from notifications.entrypoints.http import create_app


@pytest.fixture
def smtp(tmp_path):
    port = free_port()
    path = tmp_path / "mail"
    controller = start_sink("127.0.0.1", port, path)
    yield {"port": port, "path": path, "controller": controller}
    controller.stop()


@pytest.fixture
async def js(clean_nats):
    nc = await nats.connect(clean_nats)
    js = nc.jetstream()
    for service in ("members", "meetings"):
        await topology.ensure_stream(js, service)
    yield js
    await nc.close()


@pytest.fixture
async def app(clean_nats, database_url, smtp, js):
    settings = service_settings(
        Settings,
        database_url,
        clean_nats,
        smtp_port=smtp["port"],
        mail_from="netvaerk@example.org",
        delivery_lease_seconds=2,
    )
    runtime = bootstrap(settings)
    async with running_app(create_app(), runtime) as client:
        yield client


def mails(path) -> list[email.message.EmailMessage]:
    box = open_maildir(path)
    return [email.message_from_bytes(box.get_bytes(k), policy=email.policy.default) for k in box.keys()]


async def publish(js, data: contracts.EventData, event_id: str | None = None) -> str:
    event = make_event(data, event_id=event_id)
    await js.publish(data.nats_subject(), to_bytes(event), headers={"Nats-Msg-Id": str(uuid.uuid4())})
    return event.id


def member(name: str, email_: str, locale: str = "da") -> contracts.MemberRegistered:
    return contracts.MemberRegistered(
        member_id=uuid.uuid4(),
        name=name,
        email=email_,
        job_title="Arkitekt",
        locale=locale,
        registered_at=datetime.now(UTC),
        organisation=contracts.Organisation(id=uuid.uuid4(), name="Eksempel Leverandør A/S", kind="supplier"),
    )


def group(name="Offentlig digitalisering øst") -> contracts.GroupCreated:
    return contracts.GroupCreated(
        group_id=uuid.uuid4(), name=name, slug="offentlig-digitalisering-oest", region="Øst", description=""
    )


def joined(m, g) -> contracts.MemberJoined:
    return contracts.MemberJoined(
        member_id=m.member_id, group_id=g.group_id, role="member", joined_at=datetime.now(UTC)
    )


async def test_welcome_in_the_members_language_once_even_if_redelivered(app, js, smtp):
    g = group()
    mette, john = member("Mette Eksempel", "mette@example.org"), member("John Example", "john@example.org", "en")
    await publish(js, g)
    for m in (mette, john):
        await publish(js, m)
    join_id = await publish(js, joined(mette, g))
    await publish(js, joined(mette, g), event_id=join_id)  # the same event delivered again
    await publish(js, joined(john, g))
    await wait_until(lambda: len(mails(smtp["path"])) >= 2, message="two welcome emails")
    await wait_until(lambda: _all_sent(app, 2), message="delivery log says sent")
    got = {m["To"].addresses[0].addr_spec: m for m in mails(smtp["path"])}
    assert set(got) == {"mette@example.org", "john@example.org"}
    assert got["mette@example.org"]["Subject"] == "Velkommen i Offentlig digitalisering øst"
    assert got["john@example.org"]["Subject"] == "Welcome to Offentlig digitalisering øst"
    assert "Mette" in got["mette@example.org"].get_body(("plain",)).get_content()
    log = (await app.get("/deliveries")).json()
    assert len(log) == 2 and {d["status"] for d in log} == {"sent"}
    assert {d["message_id"] for d in log} == {m["Message-ID"].strip() for m in got.values()}


async def _all_sent(app, n):
    log = (await app.get("/deliveries")).json()
    return len(log) == n and all(d["status"] == "sent" for d in log)


async def test_invitation_with_ics_for_every_member_and_notification_sent_events(app, js, smtp, clean_nats):
    g = group()
    people = [member(f"Deltager {i}", f"deltager{i}@example.org") for i in range(3)]
    await publish(js, g)
    for p in people:
        await publish(js, p)
        await publish(js, joined(p, g))
    outsider = member("Udenfor Gruppen", "udenfor@example.org")
    await publish(js, outsider)
    await wait_until(lambda: len(mails(smtp["path"])) >= 3, message="welcome emails")

    starts = datetime(2027, 6, 10, 7, 30, tzinfo=UTC)  # 09:30 in Copenhagen (summer time)
    meeting = contracts.MeetingScheduled(
        meeting_id=uuid.uuid4(),
        group_id=g.group_id,
        title="Sommermøde om SKI-aftaler",
        starts_at=starts,
        ends_at=starts + timedelta(hours=3),
        venue=contracts.Venue(name="Eksempelhuset", address="Eksempelvej 1"),
        agenda=(
            contracts.AgendaItem(position=1, kind="check_in", title="Runden", minutes=30),
            contracts.AgendaItem(position=2, kind="talk", title="SKI 02.19", speaker="Oplægsholder", minutes=60),
        ),
    )
    scheduled_id = await publish(js, meeting)
    await wait_until(lambda: len(mails(smtp["path"])) >= 6, message="three invitations")
    invitations = [m for m in mails(smtp["path"]) if m["Subject"].startswith("Invitation")]
    assert sorted(m["To"].addresses[0].addr_spec for m in invitations) == sorted(p.email for p in people)
    uids = set()
    for m in invitations:
        part = next(p for p in m.walk() if p.get_content_type() == "text/calendar")
        cal = icalendar.Calendar.from_ical(part.get_payload(decode=True))
        assert str(cal["METHOD"]) == "REQUEST"
        event = next(c for c in cal.walk("VEVENT"))
        uids.add(str(event["UID"]))
        start = event.decoded("DTSTART")
        assert str(start.tzinfo) == "Europe/Copenhagen" and (start.hour, start.minute) == (9, 30)
        assert start == starts
        assert cal.walk("VTIMEZONE")
    assert len(uids) == 1  # one stable UID per meeting

    # every email sent is announced, by ids only
    nc = await nats.connect(clean_nats)
    sub = await nc.jetstream().pull_subscribe("notifications.>", stream="NOTIFICATIONS")
    await wait_until(lambda: _pending_at_least(nc, 6), message="NotificationSent events")
    sent = [parse_event(m.data) for m in await sub.fetch(10, timeout=2)]
    await nc.close()
    kinds = sorted(d.kind.value for _, d in sent)
    assert kinds == ["invitation"] * 3 + ["welcome"] * 3
    assert {str(d.cause_event_id) for _, d in sent if d.kind == "invitation"} == {scheduled_id}
    assert all("@" not in json.dumps(e.data) for e, _ in sent)


async def _pending_at_least(nc, n):
    info = await nc.jetstream().stream_info("NOTIFICATIONS")
    return info.state.messages >= n


async def test_joined_before_registered_waits_for_the_contact(app, js, smtp):
    g = group()
    m = member("Sen Registrering", "sen@example.org")
    await publish(js, g)
    await publish(js, joined(m, g))
    await wait_until(lambda: _waiting(app), message="delivery waiting for its contact")
    assert mails(smtp["path"]) == []
    [row] = (await app.get("/deliveries")).json()
    assert row["attempts"] == 0  # waiting for data burns no attempt
    await publish(js, m)
    await wait_until(lambda: len(mails(smtp["path"])) == 1, timeout=15, message="welcome after contact arrived")


async def _waiting(app):
    log = (await app.get("/deliveries")).json()
    return log and log[0]["status"] == "pending" and (log[0]["last_error"] or "").startswith("waiting")


async def _status(app, status, attempts=0):
    log = (await app.get("/deliveries")).json()
    return log and log[0]["status"] == status and log[0]["attempts"] >= attempts


async def test_smtp_outage_delays_but_loses_nothing(clean_nats, database_url, js, tmp_path):
    port = free_port()
    settings = service_settings(Settings, database_url, clean_nats, smtp_port=port, delivery_lease_seconds=2)
    async with running_app(create_app(), bootstrap(settings)) as app:
        g, m = group(), member("Mette Eksempel", "mette@example.org")
        for data in (g, m, joined(m, g)):
            await publish(js, data)
        await wait_until(lambda: _status(app, "pending", attempts=1), message="first attempt failed")
        controller = start_sink("127.0.0.1", port, tmp_path / "mail")
        try:
            await wait_until(lambda: len(mails(tmp_path / "mail")) == 1, timeout=20, message="sent after outage")
            await wait_until(lambda: _status(app, "sent"), message="marked sent")
        finally:
            controller.stop()
