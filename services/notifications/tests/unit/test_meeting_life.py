"""After the invitation: a meeting moved, cancelled, its agenda edited, a member's answer, a seat from the waiting
list, an accepted proposal, and members' preferences — through `handle(cmd, uow)` with the fakes of
test_handlers, and the domain's own rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notifications.domain import commands, model
from notifications.domain.errors import NotFound

from . import test_handlers as handlers
from .test_handlers import NOW, OWNER, TRACE, contact, join, lease_all, run

store, clock, new_uow = handlers.store, handlers.clock, handlers.new_uow  # the handler tests' fakes and clock

WINDOW = 3600
STARTS = datetime(2027, 3, 11, 8, 0, tzinfo=UTC)


def fields(title="Forårsmøde", starts=STARTS) -> dict:
    return {
        "title": title,
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=3)).isoformat(),
        "timezone": "Europe/Copenhagen",
    }


async def a_group_with(new_uow, n=2):
    group_id = uuid.uuid4()
    members = [uuid.uuid4() for _ in range(n)]
    await run(new_uow, commands.RecordGroup(group_id, "Offentlig digitalisering øst"))
    await run(new_uow, commands.RecordContacts(tuple(contact(m) for m in members)))
    await run(new_uow, commands.RecordJoins(tuple(join(m, group_id) for m in members)))
    return group_id, members


async def scheduled(new_uow, group_id, meeting_id=None):
    meeting_id = meeting_id or uuid.uuid4()
    data = {**fields(), "agenda": [{"position": 1, "kind": "talk", "title": "Agile kontrakter", "minutes": 60}]}
    meeting = model.Meeting(meeting_id, group_id, 0, {**data, "meeting_id": str(meeting_id)})
    await run(new_uow, commands.RecordMeeting(meeting, uuid.uuid4(), TRACE))
    return meeting_id


def owed(store, kind):
    return sorted((d for d in store.deliveries.values() if d.kind == kind), key=lambda d: d.next_attempt_at)


def reschedule(meeting_id, group_id, sequence, cause=None, starts=STARTS + timedelta(days=7)):
    return commands.RecordReschedule(
        meeting_id, group_id, sequence, fields(starts=starts), STARTS, cause or uuid.uuid4(), TRACE
    )


def agenda(meeting_id, group_id, sequence, held=False):
    items = ({"position": 1, "kind": "discussion", "title": f"Punkt {sequence}", "minutes": 30},)
    return commands.RecordAgenda(meeting_id, group_id, sequence, items, held, WINDOW, uuid.uuid4(), TRACE)


# -- the copy of a meeting, whatever order its events arrive in ---------------------------------------------------
def test_a_reschedule_that_overtakes_the_schedule_wins_and_the_schedule_still_brings_the_agenda():
    meeting_id, group_id = uuid.uuid4(), uuid.uuid4()
    moved = model.changed_meeting(None, meeting_id, group_id, 2, fields=fields("Flyttet"))
    assert moved.ready and moved.sequence == 2 and moved.data["agenda"] == []
    late = model.changed_meeting(moved, meeting_id, group_id, 0, fields=fields("Gammel"), agenda=[{"position": 1}])
    assert (late.data["title"], late.sequence, late.data["agenda"]) == ("Flyttet", 2, [{"position": 1}])
    cancelled = model.changed_meeting(late, meeting_id, group_id, 3, status=model.CANCELLED)
    again = model.changed_meeting(cancelled, meeting_id, group_id, 4, agenda=[], status=model.HELD)
    assert (cancelled.status, again.status, again.sequence, again.data["sequence"]) == ("cancelled", "cancelled", 4, 4)
    assert not model.changed_meeting(None, meeting_id, group_id, 1, agenda=[]).ready  # an agenda alone: not yet


def test_agenda_slots_give_at_most_one_notice_a_window_and_always_the_last_edit():
    window = timedelta(hours=1)
    t0 = NOW
    assert model.agenda_slot(None, t0, window) == t0
    assert model.agenda_slot(t0, t0 + timedelta(minutes=1), window) == t0 + window  # held back to the window's end
    assert model.agenda_slot(t0 + window, t0 + timedelta(minutes=2), window) == t0 + window  # the same one
    assert model.agenda_slot(t0 + window, t0 + window + timedelta(minutes=5), window) == t0 + 2 * window
    assert model.agenda_slot(t0, t0 + 3 * window, window) == t0 + 3 * window  # quiet for long: at once


# -- what is owed -------------------------------------------------------------------------------------------------
async def test_a_reschedule_owes_each_member_one_update_per_version_however_often_it_is_seen(new_uow, store):
    group_id, members = await a_group_with(new_uow)
    meeting_id = await scheduled(new_uow, group_id)
    cause = uuid.uuid4()
    for _ in range(2):
        await run(new_uow, reschedule(meeting_id, group_id, 1, cause))
    await run(new_uow, reschedule(meeting_id, group_id, 1))  # the same version, another event id
    updates = owed(store, model.MEETING_UPDATE)
    assert sorted(d.member_id for d in updates) == sorted(members)
    assert {d.cause_event_id for d in updates} == {cause}
    assert updates[0].payload == {"meeting_id": str(meeting_id), "previous_starts_at": STARTS.isoformat()}
    await run(new_uow, reschedule(meeting_id, group_id, 2))
    assert len(owed(store, model.MEETING_UPDATE)) == 4
    assert store.meetings[meeting_id].sequence == 2
    assert store.meetings[meeting_id].data["agenda"][0]["title"] == "Agile kontrakter"  # kept from the schedule


async def test_a_cancellation_goes_to_everyone_and_skips_what_is_still_owed_about_the_meeting_as_planned(
    new_uow, store
):
    group_id, (keen, quiet) = await a_group_with(new_uow)
    await run(new_uow, commands.SetPreferences(quiet, (model.Preference(quiet, model.ANNOUNCEMENTS, email=False),)))
    meeting_id = await scheduled(new_uow, group_id)
    assert [d.member_id for d in owed(store, model.INVITATION)] == [keen]  # quiet turned announcements off
    await run(new_uow, commands.RecordCancellation(meeting_id, group_id, 1, "Sygdom", uuid.uuid4(), TRACE))
    await run(new_uow, commands.RecordCancellation(meeting_id, group_id, 1, "Sygdom", uuid.uuid4(), TRACE))
    cancellations = owed(store, model.CANCELLATION)
    assert sorted(d.member_id for d in cancellations) == sorted([keen, quiet])  # transactional: always
    assert cancellations[0].payload["reason"] == "Sygdom"

    await lease_all(new_uow)
    [invitation] = owed(store, model.INVITATION)
    prepared, _ = await run(new_uow, commands.PrepareDelivery(invitation.id, OWNER, 3600, 8))
    assert prepared is None
    assert (store.deliveries[invitation.id].status, store.deliveries[invitation.id].last_error) == (
        "skipped",
        "the meeting was cancelled",
    )
    (_, material), _ = await run(new_uow, commands.PrepareDelivery(cancellations[0].id, OWNER, 3600, 8))
    assert material.meeting.status == "cancelled"


async def test_an_agenda_edited_five_times_owes_one_notice_now_and_one_at_the_end_of_the_window(new_uow, store, clock):
    group_id, members = await a_group_with(new_uow)
    meeting_id = await scheduled(new_uow, group_id)
    for sequence in range(1, 6):
        await run(new_uow, agenda(meeting_id, group_id, sequence))
        clock.advance(60)
    notices = owed(store, model.AGENDA_UPDATE)
    assert sorted({d.next_attempt_at for d in notices}) == [NOW, NOW + timedelta(seconds=WINDOW)]
    assert len(notices) == 2 * len(members)
    assert store.agenda_notices[meeting_id] == NOW + timedelta(seconds=WINDOW)
    assert store.meetings[meeting_id].data["agenda"][0]["title"] == "Punkt 5"

    # a contact update does not bring the held-back notice forward
    await run(new_uow, commands.RecordContacts(tuple(contact(m) for m in members)))
    assert max(d.next_attempt_at for d in owed(store, model.AGENDA_UPDATE)) == NOW + timedelta(seconds=WINDOW)

    # minutes written after the meeting owe nothing
    await run(new_uow, agenda(meeting_id, group_id, 6, held=True))
    assert len(owed(store, model.AGENDA_UPDATE)) == 2 * len(members)


async def test_an_answer_owes_a_receipt_once_and_a_withdrawn_one_none(new_uow, store):
    group_id, (member_id, _) = await a_group_with(new_uow)
    meeting_id, cause = await scheduled(new_uow, group_id), uuid.uuid4()
    answer = commands.RecordRsvp(meeting_id, group_id, member_id, "attending", "waitlisted", 3, None, cause, TRACE)
    await run(new_uow, answer)
    await run(new_uow, answer)
    [receipt] = owed(store, model.RSVP_CONFIRMATION)
    assert receipt.payload == {
        "meeting_id": str(meeting_id),
        "response": "attending",
        "status": "waitlisted",
        "waitlist_position": "3",
    }
    withdrawn = commands.RecordRsvp(
        meeting_id, group_id, member_id, "attending", "withdrawn", None, None, uuid.uuid4(), TRACE
    )
    await run(new_uow, withdrawn)
    assert len(owed(store, model.RSVP_CONFIRMATION)) == 1


async def test_a_seat_and_an_accepted_proposal_are_owed_to_that_member_alone(new_uow, store):
    group_id, (member_id, other) = await a_group_with(new_uow)
    meeting_id = await scheduled(new_uow, group_id)
    await run(new_uow, commands.RecordPromotion(meeting_id, member_id, uuid.uuid4(), TRACE))
    proposal_id = uuid.uuid4()
    for _ in range(2):
        await run(new_uow, commands.RecordProposalAccepted(proposal_id, meeting_id, member_id, 1, uuid.uuid4(), TRACE))
    assert [d.member_id for d in owed(store, model.WAITLIST_PROMOTION)] == [member_id]
    [accepted] = owed(store, model.PROPOSAL_ACCEPTED)
    assert (accepted.member_id, accepted.payload["agenda_position"]) == (member_id, "1")


# -- preferences ----------------------------------------------------------------------------------------------------
async def test_turned_off_after_it_was_owed_it_is_skipped_and_transactional_kinds_have_no_switch(new_uow, store):
    group_id, (member_id, _) = await a_group_with(new_uow)
    meeting_id = await scheduled(new_uow, group_id)
    await run(new_uow, commands.RecordPromotion(meeting_id, member_id, uuid.uuid4(), TRACE))
    await run(new_uow, commands.Unsubscribe(member_id, model.ANNOUNCEMENTS))
    await run(new_uow, commands.Unsubscribe(member_id, model.ANNOUNCEMENTS))  # idempotent
    assert store.preferences[(member_id, model.ANNOUNCEMENTS)] == model.Preference(member_id, "announcements", False)
    await lease_all(new_uow)
    [invitation] = [d for d in owed(store, model.INVITATION) if d.member_id == member_id]
    assert (await run(new_uow, commands.PrepareDelivery(invitation.id, OWNER, 3600, 8)))[0] is None
    assert store.deliveries[invitation.id].last_error == "the member turned announcements off"
    [seat] = owed(store, model.WAITLIST_PROMOTION)
    (_, material), _ = await run(new_uow, commands.PrepareDelivery(seat.id, OWNER, 3600, 8))
    assert material.preference is None  # no switch for a transactional kind


async def test_the_language_chosen_for_a_category_is_the_messages(new_uow, store):
    group_id, (member_id, _) = await a_group_with(new_uow)
    chosen = model.Preference(member_id, model.ANNOUNCEMENTS, email=True, language="en")
    await run(new_uow, commands.SetPreferences(member_id, (chosen,)))
    await scheduled(new_uow, group_id)
    await lease_all(new_uow)
    [invitation] = [d for d in owed(store, model.INVITATION) if d.member_id == member_id]
    (_, material), _ = await run(new_uow, commands.PrepareDelivery(invitation.id, OWNER, 3600, 8))
    assert (material.contact.locale, material.locale) == ("da", "en")


async def test_preferences_of_a_member_this_service_does_not_know_are_not_found(new_uow):
    stranger = uuid.uuid4()
    with pytest.raises(NotFound):
        await run(new_uow, commands.SetPreferences(stranger, (model.Preference(stranger, model.REMINDERS, False),)))
    with pytest.raises(NotFound):
        await run(new_uow, commands.Unsubscribe(stranger, model.REMINDERS))
