"""Reminders, nudges and members who leave, through `handle(cmd, uow)` with the fakes and the fake clock of
test_handlers: planned at 09:00 Copenhagen 7 and 1 days before (across a change to summer time), re-planned when the
meeting moves, dropped when it is cancelled, never sent late; a nudge only to those without an answer; the waiting
list's place in the reminder; a group's settings; and what a member who left is (not) owed."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notifications.adapters.messages import compose
from notifications.adapters.unsubscribe import UnsubscribeTokens
from notifications.domain import commands, model
from notifications.domain.errors import DomainError, Forbidden, NotFound, Suppressed

from . import test_handlers as handlers
from .test_handlers import NOW, OWNER, contact, join, lease_all, run

store, clock, new_uow = handlers.store, handlers.clock, handlers.new_uow

# Tuesday 30 March 2027, 17:00 in Copenhagen (summer time began on Sunday 28 March): 15:00 UTC
STARTS = datetime(2027, 3, 30, 15, 0, tzinfo=UTC)


def meeting_of(group_id, starts=STARTS, sequence=0) -> model.Meeting:
    meeting_id = uuid.uuid4()
    data = {
        "meeting_id": str(meeting_id),
        "group_id": str(group_id),
        "title": "Forårsmøde på Åbyhøj",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "timezone": "Europe/Copenhagen",
        "agenda": [],
        "sequence": sequence,
    }
    return model.Meeting(meeting_id, group_id, sequence, data)


def moved_fields(starts) -> dict:
    return {
        "title": "Forårsmøde på Åbyhøj",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "timezone": "Europe/Copenhagen",
    }


async def a_group_with(new_uow, n=4, coordinator=None):
    group_id = uuid.uuid4()
    members = [uuid.uuid4() for _ in range(n)]
    await run(new_uow, commands.RecordGroup(group_id, "Offentlig digitalisering øst"))
    await run(new_uow, commands.RecordContacts(tuple(contact(m) for m in members)))
    await run(new_uow, commands.RecordJoins(tuple(join(m, group_id) for m in members)))
    if coordinator is not None:
        await run(new_uow, commands.RecordRole(members[coordinator], group_id, "coordinator"))
    return group_id, members


async def scheduled(new_uow, group_id, starts=STARTS) -> model.Meeting:
    meeting = meeting_of(group_id, starts)
    await run(new_uow, commands.RecordMeeting(meeting, uuid.uuid4()))
    return meeting


def answer(meeting, member_id, response, status="noted", position=None, at=NOW) -> commands.RecordRsvp:
    return commands.RecordRsvp(
        meeting.meeting_id, meeting.group_id, member_id, response, status, position, None, uuid.uuid4(), None, at
    )


def planned(store, meeting_id, status=model.PLANNED) -> list[tuple[str, int, datetime]]:
    return sorted(
        (r.kind, r.days_before, r.due_at)
        for r in store.reminders.values()
        if r.meeting_id == meeting_id and r.status == status
    )


def owed(store, kind) -> dict:
    return {d.member_id: d for d in store.deliveries.values() if d.kind == kind}


# -- planning -----------------------------------------------------------------------------------------------------
async def test_reminders_are_planned_at_nine_copenhagen_time_7_and_1_days_before_across_summer_time(new_uow, store):
    group_id, _ = await a_group_with(new_uow)
    meeting = await scheduled(new_uow, group_id)

    assert planned(store, meeting.meeting_id) == [
        ("nudge", 10, datetime(2027, 3, 20, 8, 0, tzinfo=UTC)),  # 09:00 CET (winter time)
        ("reminder", 1, datetime(2027, 3, 29, 7, 0, tzinfo=UTC)),  # 09:00 CEST: summer time began the 28th
        ("reminder", 7, datetime(2027, 3, 23, 8, 0, tzinfo=UTC)),  # 09:00 CET
    ]


def test_a_reminder_whose_time_has_passed_when_planned_is_skipped_not_sent_late():
    starts = datetime(2027, 3, 30, 15, 0, tzinfo=UTC)
    now = datetime(2027, 3, 29, 20, 0, tzinfo=UTC)  # the evening before: 7 days and 1 day before have passed
    plan = model.plan_reminders(uuid.uuid4(), starts, _cph(), model.ReminderSettings(), now)
    assert {(p.kind, p.days_before, p.status) for p in plan} == {
        ("reminder", 7, model.SKIPPED),
        ("reminder", 1, model.SKIPPED),
        ("nudge", 10, model.SKIPPED),
    }
    assert {p.reason for p in plan} == {"its time had passed when it was planned"}
    # a same-day reminder at 09:00 for a meeting at 08:00 would come after its start: skipped too
    early = datetime(2027, 3, 30, 6, 0, tzinfo=UTC)
    [same_day] = model.plan_reminders(uuid.uuid4(), early, _cph(), model.ReminderSettings((0,), None, 9), NOW)
    assert same_day.status == model.SKIPPED and same_day.reason == "its time falls after the meeting starts"


def _cph():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Copenhagen")


async def test_a_moved_meeting_is_planned_anew_and_a_cancelled_one_has_no_reminders(new_uow, store, clock):
    group_id, members = await a_group_with(new_uow)
    meeting = await scheduled(new_uow, group_id)
    for m in members:
        await run(new_uow, answer(meeting, m, "attending", "confirmed"))
    later = STARTS + timedelta(days=14)  # Tuesday 13 April 2027, 17:00 CEST
    await run(
        new_uow,
        commands.RecordReschedule(meeting.meeting_id, group_id, 1, moved_fields(later), STARTS, uuid.uuid4(), None),
    )
    assert planned(store, meeting.meeting_id) == [
        ("nudge", 10, datetime(2027, 4, 3, 7, 0, tzinfo=UTC)),
        ("reminder", 1, datetime(2027, 4, 12, 7, 0, tzinfo=UTC)),
        ("reminder", 7, datetime(2027, 4, 6, 7, 0, tzinfo=UTC)),
    ]
    # the old times owe nothing: at the first old reminder's time, nothing is due
    clock.advance((datetime(2027, 3, 23, 8, 0, tzinfo=UTC) - NOW).total_seconds())
    (handled, count), _ = await run(new_uow, commands.SendDueReminders(100))
    assert (handled, count) == (0, 0) and owed(store, model.REMINDER) == {}

    await run(new_uow, commands.RecordCancellation(meeting.meeting_id, group_id, 2, "Aflyst", uuid.uuid4()))
    assert planned(store, meeting.meeting_id) == []
    assert {r.reason for r in store.reminders.values()} == {"the meeting was cancelled"}
    clock.advance(timedelta(days=30).total_seconds())
    (handled, count), _ = await run(new_uow, commands.SendDueReminders(100))
    assert (handled, count) == (0, 0) and owed(store, model.REMINDER) == {} and owed(store, model.NUDGE) == {}


# -- sending ------------------------------------------------------------------------------------------------------
async def test_a_due_reminder_goes_once_to_those_attending_or_tentative_with_the_waiting_list_place(
    new_uow, store, clock
):
    group_id, (mette, ole, john, kim) = await a_group_with(new_uow)
    meeting = await scheduled(new_uow, group_id)
    await run(new_uow, answer(meeting, mette, "attending", "confirmed"))
    await run(new_uow, answer(meeting, ole, "attending", "waitlisted", position=2))
    await run(new_uow, answer(meeting, john, "declined"))
    await run(new_uow, answer(meeting, kim, "tentative"))
    await run(new_uow, answer(meeting, kim, "declined", at=NOW - timedelta(hours=1)))  # older, arrived late

    clock.advance((datetime(2027, 3, 23, 8, 0, tzinfo=UTC) - NOW).total_seconds())
    (handled, count), _ = await run(new_uow, commands.SendDueReminders(100))
    assert (handled, count) == (2, 3)  # the nudge (10 days) and the 7-day reminder were due
    reminders = owed(store, model.REMINDER)
    assert set(reminders) == {mette, ole, kim}
    assert reminders[ole].payload["waitlist_position"] == "2" and reminders[ole].payload["status"] == "waitlisted"
    assert "waitlist_position" not in reminders[mette].payload
    assert reminders[mette].payload["days_before"] == "7"
    assert owed(store, model.NUDGE) == {}  # everybody answered
    again, _ = await run(new_uow, commands.SendDueReminders(100))
    assert again == (0, 0)
    assert len(owed(store, model.REMINDER)) == 3

    leased = await lease_all(new_uow)
    assert {d.kind for d in leased} >= {model.REMINDER}


async def test_a_nudge_goes_only_to_members_who_have_not_answered_and_respects_the_reminders_preference(
    new_uow, store, clock
):
    group_id, (mette, ole, john, kim) = await a_group_with(new_uow)
    meeting = await scheduled(new_uow, group_id)
    await run(new_uow, answer(meeting, mette, "declined"))
    await run(new_uow, commands.SetPreferences(kim, (model.Preference(kim, model.REMINDERS, email=False),)))
    clock.advance((datetime(2027, 3, 20, 8, 0, tzinfo=UTC) - NOW).total_seconds())
    await run(new_uow, commands.SendDueReminders(100))
    assert set(owed(store, model.NUDGE)) == {ole, john}
    assert owed(store, model.NUDGE)[ole].payload["days_before"] == "10"


async def test_a_reminder_the_service_was_down_for_goes_a_little_late_but_not_half_a_day_late(new_uow, store, clock):
    group_id, (mette, *_) = await a_group_with(new_uow)
    meeting = await scheduled(new_uow, group_id)
    await run(new_uow, answer(meeting, mette, "attending", "confirmed"))
    clock.advance((datetime(2027, 3, 23, 8, 5, tzinfo=UTC) - NOW).total_seconds())  # 7 days before, 5 min late
    await run(new_uow, commands.SendDueReminders(100))
    assert set(owed(store, model.REMINDER)) == {mette}
    clock.advance(timedelta(days=6, hours=13).total_seconds())  # 1 day before, 13 hours late: the night before
    await run(new_uow, commands.SendDueReminders(100))
    assert len(owed(store, model.REMINDER)) == 1
    assert planned(store, meeting.meeting_id, model.SKIPPED)[-1][:2] == ("reminder", 1)


# -- settings -----------------------------------------------------------------------------------------------------
async def test_a_coordinator_sets_the_groups_timings_and_its_meetings_are_planned_anew(new_uow, store):
    group_id, (coordinator, member, *_) = await a_group_with(new_uow, coordinator=0)
    meeting = await scheduled(new_uow, group_id)
    chosen = model.ReminderSettings((3,), None, 18)
    await run(new_uow, commands.SetReminderSettings(group_id, chosen, by=coordinator))
    assert planned(store, meeting.meeting_id) == [("reminder", 3, datetime(2027, 3, 27, 17, 0, tzinfo=UTC))]
    with pytest.raises(Forbidden):
        await run(new_uow, commands.SetReminderSettings(group_id, chosen, by=member))
    with pytest.raises(DomainError):
        await run(new_uow, commands.SetReminderSettings(group_id, model.ReminderSettings((7,), None, 23)))
    with pytest.raises(DomainError):
        await run(new_uow, commands.SetReminderSettings(group_id, model.ReminderSettings((7, 7), None, 9)))
    with pytest.raises(NotFound):
        await run(new_uow, commands.SetReminderSettings(uuid.uuid4(), chosen))
    # a new meeting of the group is planned with them
    other = await scheduled(new_uow, group_id, STARTS + timedelta(days=7))
    assert planned(store, other.meeting_id) == [("reminder", 3, datetime(2027, 4, 3, 16, 0, tzinfo=UTC))]


# -- leaving ------------------------------------------------------------------------------------------------------
async def test_a_member_who_left_gets_no_more_meeting_mails_but_what_is_theirs_still_goes(new_uow, store, clock):
    group_id, (mette, ole, *_) = await a_group_with(new_uow, n=2)
    meeting = await scheduled(new_uow, group_id)
    await run(new_uow, answer(meeting, mette, "attending", "confirmed"))
    await run(new_uow, commands.RecordCancellation(uuid.uuid4(), group_id, 0, "x", uuid.uuid4()))  # another one
    left_at = NOW + timedelta(minutes=5)
    await run(new_uow, commands.RecordLeaving(mette, group_id, left_at))

    theirs = [d for d in store.deliveries.values() if d.member_id == mette]
    by_kind = {d.kind: d.status for d in theirs}
    assert by_kind[model.INVITATION] == model.SKIPPED
    assert by_kind[model.RSVP_CONFIRMATION] == model.PENDING  # the receipt of their own answer still goes
    assert by_kind[model.CANCELLATION] == model.PENDING  # transactional: owed before they left, it goes
    invitation = next(d for d in theirs if d.kind == model.INVITATION)
    assert invitation.last_error == "the member left the group"
    # an older join arriving later does not bring them back, nor owe a second welcome
    await run(new_uow, commands.RecordJoins((commands.Join(mette, group_id, "member", uuid.uuid4(), None, NOW),)))
    later = await scheduled(new_uow, group_id, STARTS + timedelta(days=7))
    assert {d.member_id for d in store.deliveries.values() if d.kind == model.INVITATION and d.status == "pending"} == {
        ole
    }
    # and no reminder for the meeting they had answered
    clock.advance((datetime(2027, 3, 23, 8, 0, tzinfo=UTC) - NOW).total_seconds())
    await run(new_uow, commands.SendDueReminders(100))
    assert mette not in owed(store, model.REMINDER)
    assert later.meeting_id != meeting.meeting_id
    # a newer join brings them back
    await run(
        new_uow,
        commands.RecordJoins(
            (commands.Join(mette, group_id, "member", uuid.uuid4(), None, left_at + timedelta(days=1)),)
        ),
    )
    assert mette in await handlers.FakeRepository(store).members_of(group_id)


def test_the_reminder_and_the_nudge_in_danish_and_english_with_html_and_one_click_unsubscribe():
    tokens = UnsubscribeTokens(b"test-key-0123456789", "https://netvaerk.example.org")
    the_meeting = meeting_of(uuid.uuid4())
    for kind, locale, payload, subject, words in (
        (
            model.REMINDER,
            "da",
            {"days_before": "1", "response": "attending", "status": "waitlisted", "waitlist_position": "3"},
            "Påmindelse: Forårsmøde på Åbyhøj – 30. marts 2027",
            ["Husk mødet i Offentlig digitalisering øst i morgen.", "ventelisten som nummer 3"],
        ),
        (
            model.REMINDER,
            "en",
            {"days_before": "7", "response": "tentative", "status": "noted"},
            "Reminder: Forårsmøde på Åbyhøj – 30 March 2027",
            ["A reminder of the meeting of Offentlig digitalisering øst in 7 days.", "You replied: maybe."],
        ),
        (
            model.NUDGE,
            "da",
            {"days_before": "10"},
            "Kommer du? Forårsmøde på Åbyhøj – 30. marts 2027",
            ["er om 10 dage, og vi har endnu ikke hørt, om du kommer."],
        ),
    ):
        d = model.Delivery(
            uuid.uuid4(),
            "k",
            uuid.uuid4(),
            kind,
            uuid.uuid4(),
            NOW,
            NOW,
            payload={"meeting_id": str(the_meeting.meeting_id), **payload},
        )
        c = model.Contact(d.member_id, "Mette Ærø", "mette@example.org", locale)
        material = model.Material(c, model.Group(the_meeting.group_id, "Offentlig digitalisering øst"), the_meeting)
        message = compose(
            d, material, mail_from="netvaerk@example.org", mail_from_name="Netværk", now=NOW, unsubscribe_url=tokens.url
        )
        parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
        assert parsed["Subject"] == subject
        text = parsed.get_body(("plain",)).get_content()
        for expected in words:
            assert expected in text
        assert parsed.get_body(("html",)) is not None
        assert not [p for p in parsed.walk() if p.get_content_type() == "text/calendar"]
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert tokens.read(str(parsed["List-Unsubscribe"]).strip("<>").rsplit("/", 1)[1]) == (d.member_id, "reminders")


def test_a_reminder_about_a_cancelled_meeting_is_suppressed_and_one_owed_is_withdrawn_once():
    the_meeting = meeting_of(uuid.uuid4())
    cancelled = model.Meeting(the_meeting.meeting_id, the_meeting.group_id, 1, the_meeting.data, model.CANCELLED)
    d = model.Delivery(uuid.uuid4(), "k", uuid.uuid4(), model.REMINDER, uuid.uuid4(), NOW, NOW)
    with pytest.raises(Suppressed):
        d.made_of(model.Contact(d.member_id, "M", "m@example.org", "da"), None, cancelled)
    d.lease(OWNER, NOW, NOW + timedelta(seconds=30))
    assert d.withdraw("the member left the group", NOW) and d.status == model.SKIPPED and d.lease_owner is None
    assert not d.withdraw("again", NOW)
