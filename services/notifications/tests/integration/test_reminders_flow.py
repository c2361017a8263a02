"""Reminders and leaving, in-process against real NATS JetStream, a real database (PostgreSQL and SQLite) and a real
SMTP server (the Maildir sink). Time is the service's clock, moved ahead rather than slept through: a reminder is
planned from the meeting and the answers, the service stops, its clock moves to just after the reminder's time, it
starts again and sends exactly one reminder to each member attending or tentative; a reschedule re-plans it first.
A member who left gets no more of the group's meeting mails."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import nats
import pytest
from sqlalchemy import select

from netvaerk_shared import contracts, gdpr
from netvaerk_shared.contracts import meetings as plan
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_shared.uow import utc_now
from netvaerk_testing.plugin import running_app, service_settings, wait_until
from notifications.adapters import orm
from notifications.bootstrap import bootstrap
from notifications.config import Settings
from notifications.entrypoints.http import create_app

from . import test_notifications_flow as flow
from .test_notifications_flow import group, joined, mails, member, publish

js, smtp = flow.js, flow.smtp  # the flow tests' fixtures: JetStream and the SMTP sink


class MovableClock:
    """The real time, plus however far the test moved it ahead."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.ahead


def settings_for(database_url, clean_nats, smtp) -> Settings:
    return service_settings(
        Settings,
        database_url,
        clean_nats,
        smtp_port=smtp["port"],
        mail_from="netvaerk@example.org",
        delivery_lease_seconds=2,
        reminder_poll_seconds=0.2,
    )


def to(path, address: str, prefix: str) -> list:
    return [m for m in mails(path) if m["To"].addresses[0].addr_spec == address and m["Subject"].startswith(prefix)]


async def reminder_rows(runtime, meeting_id) -> list[dict]:
    r = orm.reminders
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(r).where(r.c.meeting_id == meeting_id).order_by(r.c.due_at))).mappings()
        return [dict(x) for x in rows]


def answered(meeting, m, response, status) -> plan.RsvpRecorded:
    return plan.RsvpRecorded(
        meeting_id=meeting.meeting_id,
        group_id=meeting.group_id,
        member_id=m.member_id,
        response=response,
        status=status,
        answered_at=datetime.now(UTC),
    )


async def test_a_due_reminder_goes_once_to_each_attending_member_after_a_restart_and_a_reschedule(
    clean_nats, database_url, smtp, js
):
    clock = MovableClock()
    settings = settings_for(database_url, clean_nats, smtp)
    mette, ole = member("Mette Ærø", "mette@example.org"), member("Ole Øster", "ole@example.org", "en")
    john = member("John Example", "john@example.org", "en")
    # three days ahead at 15:00 UTC: the 7-day reminder and the nudge have passed when planned, the 1-day one not
    day = (datetime.now(UTC) + timedelta(days=3)).replace(hour=15, minute=0, second=0, microsecond=0)
    meeting = contracts.MeetingScheduled(
        meeting_id=uuid.uuid4(),
        group_id=uuid.uuid4(),
        title="Vintermøde om SKI-aftaler",
        starts_at=day,
        ends_at=day + timedelta(hours=2),
        venue=contracts.Venue(name="Eksempelhuset", address="Eksempelvej 1"),
    )
    runtime = bootstrap(settings, clock=clock)
    async with running_app(create_app(), runtime):
        g = group()
        meeting = meeting.model_copy(update={"group_id": g.group_id})
        await publish(js, g)
        for p in (mette, ole, john):
            await publish(js, p)
            await publish(js, joined(p, g))
        await wait_until(lambda: len(mails(smtp["path"])) >= 3, timeout=15, message="welcomes")
        await publish(js, meeting)
        await publish(js, answered(meeting, mette, "attending", "confirmed"))
        await publish(js, answered(meeting, ole, "tentative", "noted"))
        await publish(js, answered(meeting, john, "declined", "noted"))
        await wait_until(lambda: len(mails(smtp["path"])) >= 3 + 3 + 3, timeout=15, message="invitations, receipts")

        moved_to = day + timedelta(days=1)
        await publish(
            js,
            plan.MeetingRescheduled(
                meeting_id=meeting.meeting_id,
                group_id=g.group_id,
                title=meeting.title,
                starts_at=moved_to,
                ends_at=moved_to + timedelta(hours=2),
                venue=meeting.venue,
                previous_starts_at=day,
                sequence=1,
            ),
        )
        await wait_until(lambda: len(mails(smtp["path"])) >= 12, timeout=15, message="updates")

        async def replanned() -> bool:
            rows = await reminder_rows(runtime, meeting.meeting_id)
            return any(r["status"] == "planned" and r["starts_at"] == moved_to for r in rows)

        await wait_until(replanned, timeout=15, message="the reminder re-planned for the new time")
        rows = await reminder_rows(runtime, meeting.meeting_id)
    [due] = [r for r in rows if r["status"] == "planned"]
    assert (due["kind"], due["days_before"]) == ("reminder", 1)
    assert due["due_at"] == datetime.combine(
        (moved_to.astimezone(_cph()) - timedelta(days=1)).date(), datetime.min.time().replace(hour=9), tzinfo=_cph()
    )
    assert not [r for r in rows if r["status"] == "planned" and r["starts_at"] == day]  # the old time's are gone
    assert {r["reason"] for r in rows if r["status"] == "skipped"} == {"its time had passed when it was planned"}
    sent_before = len(mails(smtp["path"]))

    # the service was down; when it starts again its reminder's time has just come
    clock.ahead = due["due_at"] - utc_now() + timedelta(seconds=1)
    runtime = bootstrap(settings, clock=clock)
    async with running_app(create_app(), runtime):
        await wait_until(
            lambda: (
                len(to(smtp["path"], "mette@example.org", "Påmindelse")) == 1
                and len(to(smtp["path"], "ole@example.org", "Reminder")) == 1
            ),
            timeout=20,
            message="one reminder each",
        )
        await asyncio.sleep(1.5)  # several passes of the reminder worker
        assert len(mails(smtp["path"])) == sent_before + 2  # none to john (declined), none twice
        [reminder] = to(smtp["path"], "mette@example.org", "Påmindelse")
        text = reminder.get_body(("plain",)).get_content()
        assert "Husk mødet i Offentlig digitalisering øst i morgen." in text
        assert "Du har svaret: jeg deltager." in text
        assert reminder.get_body(("html",)) is not None
        assert reminder["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert [r["status"] for r in await reminder_rows(runtime, meeting.meeting_id) if r["kind"] == "reminder"][
            -1
        ] == "done"


def _cph():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Copenhagen")


async def test_a_member_who_left_gets_no_more_meeting_mails_even_when_an_older_join_arrives_later(
    clean_nats, database_url, smtp, js
):
    settings = settings_for(database_url, clean_nats, smtp)
    runtime = bootstrap(settings)
    async with running_app(create_app(), runtime) as app:
        mette, ole = member("Mette Ærø", "mette@example.org"), member("Ole Øster", "ole@example.org")
        g = group()
        await publish(js, g)
        joins = {}
        for p in (mette, ole):
            await publish(js, p)
            joins[p.member_id] = joined(p, g)
            await publish(js, joins[p.member_id])
        await wait_until(lambda: len(mails(smtp["path"])) >= 2, timeout=15, message="welcomes")
        left = contracts.MemberLeft(
            member_id=mette.member_id, group_id=g.group_id, left_at=datetime.now(UTC), reason="left"
        )
        await publish(js, left)
        await publish(js, joins[mette.member_id])  # the old join again, after the leaving (another event id)
        starts = datetime.now(UTC) + timedelta(days=30)
        meeting = contracts.MeetingScheduled(
            meeting_id=uuid.uuid4(),
            group_id=g.group_id,
            title="Forårsmøde",
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
        )

        async def left_recorded() -> bool:
            gm = orm.group_members
            async with runtime.engine.connect() as conn:
                stmt = select(gm.c.left_at).where(gm.c.member_id == mette.member_id)
                return (await conn.execute(stmt)).scalar() is not None

        await wait_until(left_recorded, timeout=15, message="the leaving recorded")
        await asyncio.sleep(0.5)  # the old join's redelivery is handled too
        await publish(js, meeting)
        await wait_until(lambda: len(to(smtp["path"], "ole@example.org", "Invitation")) == 1, timeout=15)
        await asyncio.sleep(1)
        assert to(smtp["path"], "mette@example.org", "Invitation") == []
        assert len(to(smtp["path"], "mette@example.org", "Velkommen")) == 1
        export = (await app.get(f"/members/{mette.member_id}/export")).json()
        [row] = export["groups"]  # the roster row, with the leaving
        assert row["group_id"] == str(g.group_id) and row["left_at"] is not None


@pytest.mark.parametrize("as_coordinator", [True, False])
async def test_reminder_settings_over_http_by_the_administration_or_a_coordinator(
    clean_nats, database_url, smtp, js, as_coordinator
):
    settings = settings_for(database_url, clean_nats, smtp)
    runtime = bootstrap(settings)
    async with running_app(create_app(), runtime) as app:
        coordinator, plain = member("Mette Ærø", "mette@example.org"), member("Ole Øster", "ole@example.org")
        g = group()
        await publish(js, g)
        for p in (coordinator, plain):
            await publish(js, p)
            await publish(js, joined(p, g))
        await publish(
            js, contracts.MemberRoleChanged(member_id=coordinator.member_id, group_id=g.group_id, role="coordinator")
        )
        url = f"/groups/{g.group_id}/reminder-settings"

        async def is_coordinator() -> bool:
            got = await app.get(url, headers={"X-Netvaerk-Member": str(coordinator.member_id)})
            return got.status_code == 200

        await wait_until(is_coordinator, timeout=15, message="the role change recorded")
        got = (await app.get(url)).json()
        assert got == {
            "group_id": str(g.group_id),
            "reminder_days": [7, 1],
            "nudge_days": 10,
            "local_hour": 9,
            "default": True,
        }
        headers = {"X-Netvaerk-Member": str(coordinator.member_id)} if as_coordinator else {}
        body = {"reminder_days": [3], "nudge_days": None, "local_hour": 18}
        put = await app.put(url, json=body, headers=headers)
        assert put.status_code == 200, put.text
        assert put.json() == {**body, "group_id": str(g.group_id), "default": False}
        assert (await app.get(url, headers={"X-Netvaerk-Member": str(plain.member_id)})).status_code == 403
        refused = await app.put(url, json=body, headers={"X-Netvaerk-Member": str(plain.member_id)})
        assert refused.status_code == 403
        for bad in ({**body, "local_hour": 3}, {**body, "reminder_days": [1, 2, 3, 4, 5]}, {**body, "nudge_days": 99}):
            assert (await app.put(url, json=bad)).status_code in (400, 422)
        assert (await app.put(url, json={**body, "reminder_days": [2, 2]})).status_code in (400, 422)
        assert (await app.put(f"/groups/{uuid.uuid4()}/reminder-settings", json=body)).status_code == 404


async def test_answers_kept_for_reminders_are_in_the_gdpr_export_and_go_with_erasure(
    clean_nats, database_url, smtp, js
):
    settings = settings_for(database_url, clean_nats, smtp)
    runtime = bootstrap(settings)
    async with running_app(create_app(), runtime) as app:
        mette = member("Mette Ærø", "mette@example.org")
        g = group()
        await publish(js, g)
        await publish(js, mette)
        await publish(js, joined(mette, g))
        starts = datetime.now(UTC) + timedelta(days=30)
        meeting = contracts.MeetingScheduled(
            meeting_id=uuid.uuid4(),
            group_id=g.group_id,
            title="Forårsmøde",
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
        )
        await publish(js, meeting)
        await publish(
            js, answered(meeting, mette, "attending", "waitlisted").model_copy(update={"waitlist_position": 4})
        )

        async def exported() -> dict | None:
            got = await app.get(f"/members/{mette.member_id}/export")
            return got.json() if got.status_code == 200 and got.json()["rsvps"] else None

        export = await wait_until(exported, timeout=15, message="the answer in the export")
        [kept] = export["rsvps"]
        assert (kept["meeting_id"], kept["response"], kept["status"], kept["waitlist_position"]) == (
            str(meeting.meeting_id),
            "attending",
            "waitlisted",
            4,
        )
        nc = await nats.connect(clean_nats)
        try:
            parts = await gdpr.gather_export(nc, mette.member_id, ["notifications"], timeout=3)
            assert [r["status"] for r in parts["notifications"]["rsvps"]] == ["waitlisted"]
        finally:
            await nc.close()
        await publish(js, MemberErased(member_id=mette.member_id, erased_at=datetime.now(UTC)))

        async def forgotten() -> bool:
            return (await app.get(f"/members/{mette.member_id}/export")).status_code == 404

        await wait_until(forgotten, timeout=15, message="the member forgotten")
        await publish(js, answered(meeting, mette, "declined", "noted"))  # arrives after the erasure
        await asyncio.sleep(1)
        async with runtime.engine.connect() as conn:
            assert (await conn.execute(select(orm.rsvps))).all() == []
        assert (await app.get(f"/members/{mette.member_id}/export")).status_code == 404
