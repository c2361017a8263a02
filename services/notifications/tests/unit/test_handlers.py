"""The handlers through `handle(cmd, uow)` with FakeUnitOfWork and a small in-memory repository: what they owe,
record, decide and announce (the contracts the unit of work would write to the outbox)."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from netvaerk_shared import contracts
from netvaerk_testing.fakes import FakeUnitOfWork
from notifications.domain import commands, model
from notifications.domain.errors import LeaseLost, NotFailed, NotFound
from notifications.service_layer.handlers import handle
from notifications.service_layer.translator import to_contract

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
OWNER = "worker-a"
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass
class Store:
    """What the fake repository keeps between units of work (the database)."""

    groups: dict = field(default_factory=dict)
    contacts: dict = field(default_factory=dict)
    roster: dict = field(default_factory=dict)  # (group_id, member_id) -> role
    meetings: dict = field(default_factory=dict)
    deliveries: dict = field(default_factory=dict)  # id -> Delivery, as last saved
    preferences: dict = field(default_factory=dict)  # (member_id, category) -> Preference
    agenda_notices: dict = field(default_factory=dict)  # meeting_id -> last_at
    joined: dict = field(default_factory=dict)  # (group_id, member_id) -> joined_at of the newest join
    left: dict = field(default_factory=dict)  # (group_id, member_id) -> left_at, while they are out
    rsvps: dict = field(default_factory=dict)  # (meeting_id, member_id) -> Rsvp
    reminder_settings: dict = field(default_factory=dict)  # group_id -> ReminderSettings
    reminders: dict = field(default_factory=dict)  # id -> PlannedReminder


class FakeRepository:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: list[model.Delivery] = []

    async def record_group(self, group):
        self.store.groups[group.group_id] = group

    async def record_contacts(self, contacts, now):
        for contact in contacts:
            self.store.contacts[contact.member_id] = contact

    async def mark_undeliverable(self, member_id, email, now, reason):
        contact = self.store.contacts.get(member_id)
        if contact is None or contact.email != email:
            return False
        self.store.contacts[member_id] = replace(contact, undeliverable_at=now, undeliverable_reason=reason)
        return True

    async def clear_undeliverable(self, member_id):
        contact = self.store.contacts.get(member_id)
        if contact is None:
            return False
        self.store.contacts[member_id] = replace(contact, undeliverable_at=None, undeliverable_reason=None)
        return True

    async def record_memberships(self, joins):
        refused = set()
        for join in joins:
            key = (join.group_id, join.member_id)
            left_at = self.store.left.get(key)
            if left_at is not None and (join.joined_at is None or join.joined_at <= left_at):
                refused.add(key)
                continue
            self.store.roster[key] = join.role
            self.store.left.pop(key, None)
            self.store.joined[key] = join.joined_at
        return refused

    async def record_leaving(self, group_id, member_id, left_at):
        key = (group_id, member_id)
        joined_at = self.store.joined.get(key)
        if joined_at is None or joined_at <= left_at:
            self.store.left[key] = max(left_at, self.store.left.get(key, left_at))

    async def record_role(self, group_id, member_id, role, changed_at):
        self.store.roster[(group_id, member_id)] = role

    async def role_of(self, group_id, member_id):
        key = (group_id, member_id)
        return self.store.roster.get(key) if key not in self.store.left else None

    async def group_known(self, group_id):
        return group_id in self.store.groups or any(g == group_id for g, _ in self.store.roster)

    async def owed_about_group(self, member_id, group_id):
        meetings = {str(m) for m, x in self.store.meetings.items() if x.group_id == group_id}
        return [
            self._loaded(d)
            for d in self.store.deliveries.values()
            if d.member_id == member_id and d.status == model.PENDING and d.payload.get("meeting_id") in meetings
        ]

    async def record_rsvp(self, answer):
        key = (answer.meeting_id, answer.member_id)
        if model.newer_rsvp(self.store.rsvps.get(key), answer):
            self.store.rsvps[key] = answer

    async def record_seat(self, meeting_id, member_id):
        known = self.store.rsvps.get((meeting_id, member_id))
        if known is not None:
            self.store.rsvps[(meeting_id, member_id)] = replace(known, status="confirmed", waitlist_position=None)

    async def rsvps_of(self, meeting_id):
        return [a for (m, _), a in self.store.rsvps.items() if m == meeting_id]

    async def reminder_settings(self, group_id):
        return self.store.reminder_settings.get(group_id)

    async def set_reminder_settings(self, group_id, settings, now):
        self.store.reminder_settings[group_id] = settings

    async def meetings_of(self, group_id):
        return [m for m in self.store.meetings.values() if m.group_id == group_id and m.status == model.SCHEDULED]

    async def plan_reminders(self, meeting_id, planned, now):
        for rid, r in list(self.store.reminders.items()):
            if r.meeting_id == meeting_id and r.status == model.PLANNED:
                del self.store.reminders[rid]
        taken = {(r.meeting_id, r.kind, r.days_before, r.starts_at) for r in self.store.reminders.values()}
        for p in planned:
            if (p.meeting_id, p.kind, p.days_before, p.starts_at) not in taken:
                self.store.reminders[p.id] = p

    async def drop_reminders(self, meeting_id, reason, now):
        for rid, r in list(self.store.reminders.items()):
            if r.meeting_id == meeting_id and r.status == model.PLANNED:
                self.store.reminders[rid] = replace(r, status=model.SKIPPED, reason=reason)

    async def due_reminders(self, now, limit):
        due = [r for r in self.store.reminders.values() if r.status == model.PLANNED and r.due_at <= now]
        return sorted(due, key=lambda r: r.due_at)[:limit]

    async def finish_reminder(self, reminder_id, status, reason, now):
        self.store.reminders[reminder_id] = replace(self.store.reminders[reminder_id], status=status, reason=reason)

    async def record_meeting(self, meeting):
        self.store.meetings[meeting.meeting_id] = meeting

    async def meeting(self, meeting_id):
        return self.store.meetings.get(meeting_id)

    async def agenda_notice(self, meeting_id):
        return self.store.agenda_notices.get(meeting_id)

    async def record_agenda_notice(self, meeting_id, last_at):
        self.store.agenda_notices[meeting_id] = last_at

    async def members_of(self, group_id):
        return [m for (g, m) in self.store.roster if g == group_id and (g, m) not in self.store.left]

    async def knows(self, member_id):
        return member_id in self.store.contacts

    async def preferences(self, member_id):
        return {c: p for (m, c), p in self.store.preferences.items() if m == member_id}

    async def set_preferences(self, preferences, now):
        for pref in preferences:
            self.store.preferences[(pref.member_id, pref.category)] = pref

    async def turned_off(self, member_ids, category):
        return {m for m in member_ids if not self.store.preferences.get((m, category), model.Preference(m, "")).email}

    async def material(self, delivery, about):
        meeting = self.store.meetings.get(about) if delivery.kind != model.WELCOME else None
        if meeting is not None and not meeting.ready:
            meeting = None
        group_id = meeting.group_id if meeting else about
        category = model.category_of(delivery.kind)
        preference = self.store.preferences.get((delivery.member_id, category)) if category else None
        return self.store.contacts.get(delivery.member_id), self.store.groups.get(group_id), meeting, preference

    async def owe(self, deliveries):
        keys = {d.dedupe_key for d in self.store.deliveries.values()}
        for delivery in deliveries:
            if delivery.dedupe_key not in keys:
                self.store.deliveries[delivery.id] = _row(delivery)
                keys.add(delivery.dedupe_key)

    async def get(self, delivery_id):
        found = self.store.deliveries.get(delivery_id)
        return self._loaded(found) if found else None

    async def due(self, now, limit):
        due = [
            d
            for d in self.store.deliveries.values()
            if d.status == model.PENDING and d.next_attempt_at <= now and (d.lease_until is None or d.lease_until < now)
        ]
        return [self._loaded(d) for d in sorted(due, key=lambda d: d.created_at)[:limit]]

    async def not_yet_due(self, member_ids, now):
        return [
            self._loaded(d)
            for d in self.store.deliveries.values()
            if d.member_id in member_ids and d.status == model.PENDING and d.next_attempt_at > now
        ]

    async def save(self, delivery):
        self.store.deliveries[delivery.id] = _row(delivery)

    async def save_leases(self, deliveries):
        for delivery in deliveries:
            await self.save(delivery)

    def _loaded(self, delivery):
        delivery = copy.deepcopy(delivery)
        self.seen.append(delivery)
        return delivery


def _row(delivery: model.Delivery) -> model.Delivery:
    """What a database row keeps of a delivery: everything but the events, which go to the outbox."""
    row = copy.deepcopy(delivery)
    row.events = []
    return row


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def clock():
    now = [NOW]

    class Clock:
        def __call__(self):
            return now[0]

        def advance(self, seconds: float) -> None:
            now[0] += timedelta(seconds=seconds)

    return Clock()


@pytest.fixture
def new_uow(store, clock):
    def make() -> FakeUnitOfWork:
        return FakeUnitOfWork(repositories=lambda _: FakeRepository(store), translate=to_contract, clock=clock)

    return make


async def run(new_uow, cmd):
    uow = new_uow()
    result = await handle(cmd, uow)
    return result, uow


def join(member_id, group_id, cause=None) -> commands.Join:
    return commands.Join(member_id, group_id, "member", cause or uuid.uuid4(), TRACE)


def contact(member_id, name="Mette Eksempel", email="mette@example.org") -> model.Contact:
    return model.Contact(member_id, name, email, "da")


async def a_welcome_owed(new_uow, store, *, registered=True) -> model.Delivery:
    member_id, group_id = uuid.uuid4(), uuid.uuid4()
    await run(new_uow, commands.RecordGroup(group_id, "Offentlig digitalisering øst"))
    if registered:
        await run(new_uow, commands.RecordContacts((contact(member_id),)))
    await run(new_uow, commands.RecordJoins((join(member_id, group_id),)))
    [delivery] = [d for d in store.deliveries.values() if d.member_id == member_id]
    return delivery


async def lease_all(new_uow, owner=OWNER) -> list[model.Delivery]:
    leased, _ = await run(new_uow, commands.LeaseDeliveries(owner, 50, 30))
    return leased


# -- what is owed -------------------------------------------------------------------------------------------------
async def test_a_join_owes_one_welcome_however_often_it_is_seen(new_uow, store):
    member_id, group_id, cause = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    _, uow = await run(new_uow, commands.RecordJoins((join(member_id, group_id, cause),)))
    await run(new_uow, commands.RecordJoins((join(member_id, group_id), join(member_id, group_id))))

    assert uow.committed and uow.published == []  # owing announces nothing
    [delivery] = store.deliveries.values()
    assert (delivery.kind, delivery.member_id, delivery.payload) == ("welcome", member_id, {"group_id": str(group_id)})
    assert (delivery.cause_event_id, delivery.traceparent) == (cause, TRACE)  # the first join caused it
    assert (delivery.status, delivery.next_attempt_at) == ("pending", NOW)
    assert store.roster == {(group_id, member_id): "member"}


async def test_a_meeting_owes_an_invitation_to_each_member_of_its_group_and_again_for_a_new_sequence(new_uow, store):
    group_id, other_group = uuid.uuid4(), uuid.uuid4()
    members = [uuid.uuid4() for _ in range(3)]
    await run(new_uow, commands.RecordJoins(tuple(join(m, group_id) for m in members)))
    await run(new_uow, commands.RecordJoins((join(uuid.uuid4(), other_group),)))
    meeting_id, cause = uuid.uuid4(), uuid.uuid4()

    for sequence in (0, 0, 1):
        meeting = model.Meeting(meeting_id, group_id, sequence, {"title": "Forårsmøde"})
        await run(new_uow, commands.RecordMeeting(meeting, cause, TRACE))

    invitations = [d for d in store.deliveries.values() if d.kind == "invitation"]
    assert sorted(d.member_id for d in invitations) == sorted(members * 2)  # sequence 0 once, sequence 1 once
    assert {d.cause_event_id for d in invitations} == {cause}
    assert store.meetings[meeting_id].sequence == 1


async def test_a_contact_arriving_brings_forward_only_what_waited_for_it(new_uow, store, clock):
    waiting = await a_welcome_owed(new_uow, store, registered=False)
    backing_off = await a_welcome_owed(new_uow, store)
    await lease_all(new_uow)
    await run(new_uow, commands.PrepareDelivery(waiting.id, OWNER, 3600, 8))
    await run(
        new_uow, commands.RecordFailure(backing_off.id, OWNER, model.temporary("451", "smtp 451"), max_attempts=8)
    )
    assert store.deliveries[waiting.id].next_attempt_at > NOW

    clock.advance(0.1)
    await run(new_uow, commands.RecordContacts((contact(waiting.member_id), contact(backing_off.member_id))))

    assert store.deliveries[waiting.id].next_attempt_at == clock()
    assert store.deliveries[backing_off.id].next_attempt_at == NOW + timedelta(seconds=2)


# -- the delivery worker's ----------------------------------------------------------------------------------------
async def test_leasing_takes_what_is_due_oldest_first_and_never_what_another_holds(new_uow, store, clock):
    first = await a_welcome_owed(new_uow, store)
    clock.advance(1)
    second = await a_welcome_owed(new_uow, store)

    leased = await lease_all(new_uow)
    assert [d.id for d in leased] == [first.id, second.id]
    held = {(d.lease_owner, d.lease_until) for d in store.deliveries.values()}
    assert held == {(OWNER, clock() + timedelta(seconds=30))}
    assert await lease_all(new_uow, "worker-b") == []

    clock.advance(31)  # worker-a died: its leases ran out
    assert [d.id for d in await lease_all(new_uow, "worker-b")] == [first.id, second.id]


async def test_release_gives_back_untried(new_uow, store):
    delivery = await a_welcome_owed(new_uow, store)
    await lease_all(new_uow)
    await run(new_uow, commands.ReleaseDeliveries(OWNER, (delivery.id,)))
    assert store.deliveries[delivery.id].lease_owner is None
    assert [d.id for d in await lease_all(new_uow, "worker-b")] == [delivery.id]


async def test_prepare_hands_over_what_the_message_is_made_of(new_uow, store):
    delivery = await a_welcome_owed(new_uow, store)
    await lease_all(new_uow)
    (prepared, material), uow = await run(new_uow, commands.PrepareDelivery(delivery.id, OWNER, 3600, 8))
    assert prepared.id == delivery.id
    assert (material.contact.email, material.group.name, material.meeting) == (
        "mette@example.org",
        "Offentlig digitalisering øst",
        None,
    )
    assert uow.committed and uow.published == []


async def test_prepare_without_the_contact_records_the_wait_and_hands_over_nothing(new_uow, store):
    delivery = await a_welcome_owed(new_uow, store, registered=False)
    await lease_all(new_uow)
    prepared, uow = await run(new_uow, commands.PrepareDelivery(delivery.id, OWNER, 3600, 8))
    assert prepared is None and uow.committed and uow.published == []
    row = store.deliveries[delivery.id]
    assert (row.status, row.attempts, row.lease_owner) == ("pending", 0, None)
    assert row.last_error == f"waiting: no contact yet for member {delivery.member_id}"


async def test_prepare_gives_up_after_the_wait_and_announces_it_as_not_permanent(new_uow, store, clock):
    delivery = await a_welcome_owed(new_uow, store, registered=False)
    clock.advance(3600)
    await lease_all(new_uow)
    prepared, uow = await run(new_uow, commands.PrepareDelivery(delivery.id, OWNER, 3600, 8))
    assert prepared is None and store.deliveries[delivery.id].status == "failed"
    [failed] = uow.published
    assert isinstance(failed, contracts.NotificationFailed)
    assert (failed.notification_id, failed.reason, failed.permanent) == (delivery.id, "not ready: no contact", False)


async def test_a_payload_that_names_no_group_fails_for_good(new_uow, store):
    delivery = await a_welcome_owed(new_uow, store)
    store.deliveries[delivery.id].payload = {}
    await lease_all(new_uow)
    prepared, uow = await run(new_uow, commands.PrepareDelivery(delivery.id, OWNER, 3600, 8))
    assert prepared is None
    assert (store.deliveries[delivery.id].status, store.deliveries[delivery.id].attempts) == ("failed", 1)
    [failed] = uow.published
    assert (failed.reason, failed.permanent) == ("payload: KeyError", True)


async def test_mark_sent_announces_notification_sent_by_ids_only(new_uow, store):
    delivery = await a_welcome_owed(new_uow, store)
    await lease_all(new_uow)
    cmd = commands.MarkSent(delivery.id, OWNER, "mette@example.org", "Velkommen", "<m@x>")
    _, uow = await run(new_uow, cmd)

    row = store.deliveries[delivery.id]
    assert (row.status, row.attempts, row.lease_owner, row.to_email) == ("sent", 1, None, "mette@example.org")
    assert uow.published == [
        contracts.NotificationSent(
            notification_id=delivery.id,
            member_id=delivery.member_id,
            kind="welcome",
            channel="email",
            cause_event_id=delivery.cause_event_id,
            sent_at=NOW,
        )
    ]


async def test_mark_sent_without_the_lease_rolls_back_and_announces_nothing(new_uow, store):
    delivery = await a_welcome_owed(new_uow, store)
    await lease_all(new_uow, "worker-b")
    uow = new_uow()
    with pytest.raises(LeaseLost):
        await handle(commands.MarkSent(delivery.id, OWNER, "mette@example.org", "Velkommen", "<m@x>"), uow)
    assert uow.rolled_back and not uow.committed and uow.published == []
    assert (store.deliveries[delivery.id].status, store.deliveries[delivery.id].lease_owner) == ("pending", "worker-b")


async def test_a_refusal_fails_the_delivery_and_announces_the_short_reason(new_uow, store):
    delivery = await a_welcome_owed(new_uow, store)
    await lease_all(new_uow)
    failure = model.cannot_be_sent("550 5.1.1 <mette@example.org>\r\n: no such user", "smtp 550\r\n5.1.1")
    after, uow = await run(new_uow, commands.RecordFailure(delivery.id, OWNER, failure, 8))
    assert after.status == "failed" == store.deliveries[delivery.id].status
    [failed] = uow.published
    assert (failed.reason, failed.permanent, failed.cause_event_id) == ("smtp 550 5.1.1", True, delivery.cause_event_id)


async def test_a_temporary_failure_is_retried_later_and_announces_nothing(new_uow, store):
    delivery = await a_welcome_owed(new_uow, store)
    await lease_all(new_uow)
    failure = model.temporary("smtp 127.0.0.1:1025: connection refused", "smtp unreachable")
    after, uow = await run(new_uow, commands.RecordFailure(delivery.id, OWNER, failure, 1))
    assert (after.status, after.attempts, after.next_attempt_at) == ("pending", 1, NOW + timedelta(seconds=2))
    assert uow.published == []
    assert await lease_all(new_uow) == []  # backing off


async def test_a_refusal_after_sent_undoes_it_and_a_permanent_one_corrects_notification_sent(new_uow, store):
    delivery = await a_welcome_owed(new_uow, store)
    await lease_all(new_uow)
    await run(new_uow, commands.MarkSent(delivery.id, OWNER, "mette@example.org", "Velkommen", "<m@x>"))
    after, uow = await run(new_uow, commands.UndoSent(delivery.id, model.cannot_be_sent("554 no", "smtp 554")))
    assert (after.status, after.sent_at) == ("failed", None)
    [failed] = uow.published
    assert (failed.notification_id, failed.reason, failed.permanent) == (delivery.id, "smtp 554", True)


# -- an operator's ------------------------------------------------------------------------------------------------
async def test_an_operator_retries_only_a_failed_delivery(new_uow, store, clock):
    with pytest.raises(NotFound):
        await handle(commands.RetryDelivery(uuid.uuid4()), new_uow())
    delivery = await a_welcome_owed(new_uow, store)
    with pytest.raises(NotFailed):
        await handle(commands.RetryDelivery(delivery.id), new_uow())

    await lease_all(new_uow)
    await run(new_uow, commands.RecordFailure(delivery.id, OWNER, model.cannot_be_sent("550", "smtp 550"), 8))
    clock.advance(60)
    _, uow = await run(new_uow, commands.RetryDelivery(delivery.id))
    row = store.deliveries[delivery.id]
    assert (row.status, row.attempts, row.next_attempt_at, row.created_at) == ("pending", 0, clock(), clock())
    assert uow.committed and uow.published == []
    assert [d.id for d in await lease_all(new_uow)] == [delivery.id]
