"""The Delivery aggregate's transitions: lease, sent, retry with backoff, failed, waiting for data, refused after the
commit point, an operator's retry, bring-forward. Pure: no database, no clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notifications.domain import model
from notifications.domain.errors import LeaseLost, NotFailed, NotReady
from notifications.domain.events import NotificationFailed, NotificationSent

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ME, OTHER = "worker-a", "worker-b"


def owed(**changes) -> model.Delivery:
    delivery = model.welcome(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), now=NOW)
    for name, value in changes.items():
        setattr(delivery, name, value)
    return delivery


def leased(**changes) -> model.Delivery:
    delivery = owed(**changes)
    delivery.lease(ME, NOW, NOW + timedelta(seconds=30))
    return delivery


def sent(**changes) -> model.Delivery:
    delivery = leased(**changes)
    delivery.mark_sent(ME, NOW, to_email="mette@example.org", subject="Velkommen", message_id="<id@x>")
    delivery.events.clear()
    return delivery


def state(delivery: model.Delivery) -> tuple:
    return (delivery.status, delivery.attempts, delivery.lease_owner, delivery.next_attempt_at, delivery.last_error)


# -- lease --------------------------------------------------------------------------------------------------------
def test_a_due_delivery_is_leased_once_and_taken_over_only_when_the_lease_ran_out():
    delivery = owed()
    delivery.lease(ME, NOW, NOW + timedelta(seconds=30))
    assert (delivery.lease_owner, delivery.lease_until) == (ME, NOW + timedelta(seconds=30))
    with pytest.raises(LeaseLost):
        delivery.lease(OTHER, NOW + timedelta(seconds=29), NOW + timedelta(seconds=59))
    assert delivery.lease_owner == ME
    delivery.lease(OTHER, NOW + timedelta(seconds=31), NOW + timedelta(seconds=61))  # ME died
    assert delivery.lease_owner == OTHER


@pytest.mark.parametrize(
    "changes", [{"next_attempt_at": NOW + timedelta(seconds=1)}, {"status": model.SENT}, {"status": model.FAILED}]
)
def test_only_a_pending_due_delivery_can_be_leased(changes):
    delivery = owed(**changes)
    with pytest.raises(LeaseLost):
        delivery.lease(ME, NOW, NOW + timedelta(seconds=30))
    assert delivery.lease_owner is None


def test_release_gives_back_only_our_own():
    delivery = leased()
    assert not delivery.release(OTHER) and delivery.lease_owner == ME
    assert delivery.release(ME)
    assert (delivery.lease_owner, delivery.lease_until, delivery.attempts) == (None, None, 0)


# -- sent ---------------------------------------------------------------------------------------------------------
def test_mark_sent_counts_the_attempt_ends_the_lease_and_records_notification_sent():
    delivery = leased(attempts=2, last_error="451 try later")
    delivery.mark_sent(ME, NOW, to_email="mette@example.org", subject="S" * 400, message_id="<id@x>")
    assert state(delivery) == (model.SENT, 3, None, NOW, None)
    assert (delivery.sent_at, delivery.to_email, delivery.message_id) == (NOW, "mette@example.org", "<id@x>")
    assert delivery.subject == "S" * 300
    assert delivery.events == [NotificationSent(notification_id=delivery.id, sent_at=NOW)]


@pytest.mark.parametrize("holder", [OTHER, None])
def test_mark_sent_refuses_when_the_lease_is_not_ours(holder):
    delivery = leased()
    delivery.lease_owner = holder
    before = state(delivery)
    with pytest.raises(LeaseLost):
        delivery.mark_sent(ME, NOW, to_email="a@example.org", subject="s", message_id="m")
    assert state(delivery) == before and delivery.events == []


# -- retry and failed ---------------------------------------------------------------------------------------------
def test_temporary_trouble_backs_off_and_is_never_given_up_on():
    delivery = owed()
    for attempt, backoff in [(1, 2), (2, 4), (3, 8), (4, 16)]:
        delivery.lease(ME, delivery.next_attempt_at, delivery.next_attempt_at + timedelta(seconds=30))
        at = delivery.next_attempt_at
        delivery.attempt_failed(ME, model.temporary("451 busy", "smtp 451"), at, max_attempts=2)
        assert state(delivery) == (model.PENDING, attempt, None, at + timedelta(seconds=backoff), "451 busy")
    assert delivery.events == []


def test_the_backoff_is_capped_at_ten_minutes():
    delivery = leased(attempts=30)
    delivery.attempt_failed(ME, model.temporary("away", "smtp unreachable"), NOW, max_attempts=8)
    assert delivery.next_attempt_at == NOW + timedelta(minutes=10)


def test_a_permanent_failure_fails_at_once_and_records_notification_failed():
    delivery = leased()
    delivery.attempt_failed(ME, model.cannot_be_sent("550 5.1.1 <x@y>: no", "smtp 550 5.1.1"), NOW, max_attempts=8)
    assert (delivery.status, delivery.attempts, delivery.lease_owner) == (model.FAILED, 1, None)
    assert delivery.last_error == "550 5.1.1 <x@y>: no"
    assert delivery.events == [NotificationFailed(notification_id=delivery.id, reason="smtp 550 5.1.1", permanent=True)]


def test_a_counted_temporary_failure_gives_up_when_the_attempts_are_used_up():
    counted = model.Failure("boom", "boom", permanent=False, counts=True)
    delivery = leased(attempts=6)
    delivery.attempt_failed(ME, counted, NOW, max_attempts=8)
    assert delivery.status == model.PENDING and delivery.events == []
    delivery.lease(ME, delivery.next_attempt_at, delivery.next_attempt_at + timedelta(seconds=30))
    delivery.attempt_failed(ME, counted, NOW, max_attempts=8)
    assert delivery.status == model.FAILED
    assert delivery.events == [NotificationFailed(notification_id=delivery.id, reason="boom", permanent=False)]


def test_a_failure_after_losing_the_lease_changes_nothing():
    delivery = leased()
    delivery.lease_owner = OTHER
    before = state(delivery)
    with pytest.raises(LeaseLost):
        delivery.attempt_failed(ME, model.cannot_be_sent("x", "x"), NOW, max_attempts=8)
    assert state(delivery) == before and delivery.events == []


# -- waiting for data ---------------------------------------------------------------------------------------------
def test_waiting_for_data_counts_no_attempt_and_looks_again_soon_then_less_often():
    delivery = leased()
    delivery.wait_for_data(ME, NotReady("contact", "no contact yet"), NOW, wait_seconds=3600)
    assert state(delivery) == (model.PENDING, 0, None, NOW + timedelta(seconds=0.5), "waiting: no contact yet")
    later = NOW + timedelta(minutes=30)
    delivery.lease(ME, later, later + timedelta(seconds=30))
    delivery.wait_for_data(ME, NotReady("contact", "no contact yet"), later, wait_seconds=3600)
    assert delivery.next_attempt_at == later + timedelta(seconds=10) and delivery.attempts == 0
    assert delivery.events == []


def test_waiting_too_long_fails_and_is_announced_as_not_permanent():
    delivery = leased()
    later = NOW + timedelta(seconds=3600)
    delivery.wait_for_data(ME, NotReady("group", "group g not known yet"), later, wait_seconds=3600)
    assert (delivery.status, delivery.attempts) == (model.FAILED, 1)
    assert delivery.last_error == "group g not known yet after 3600 s"
    assert delivery.events == [
        NotificationFailed(notification_id=delivery.id, reason="not ready: no group", permanent=False)
    ]


def test_what_a_message_is_made_of_or_what_it_waits_for():
    contact = model.Contact(uuid.uuid4(), "Mette", "mette@example.org", "da")
    group = model.Group(uuid.uuid4(), "Gruppe")
    welcome = owed()
    with pytest.raises(NotReady) as missing:
        welcome.made_of(None, group, None)
    assert missing.value.missing == "contact"
    with pytest.raises(NotReady) as missing:
        welcome.made_of(contact, None, None)
    assert missing.value.missing == "group"
    assert welcome.made_of(contact, group, None) == model.Material(contact, group, None)

    meeting = model.Meeting(uuid.uuid4(), group.group_id, 0, {})
    [invitation] = model.invitations(meeting.meeting_id, 0, [contact.member_id], uuid.uuid4(), now=NOW)
    assert invitation.about == meeting.meeting_id
    with pytest.raises(NotReady) as missing:
        invitation.made_of(contact, group, None)
    assert missing.value.missing == "meeting"
    assert invitation.made_of(contact, None, meeting).meeting == meeting  # goes without its group's name


@pytest.mark.parametrize("payload", [{}, {"group_id": "not-a-uuid"}])
def test_a_payload_that_names_nothing_cannot_say_what_it_is_about(payload):
    with pytest.raises((KeyError, ValueError)):
        assert owed(payload=payload).about is None  # never reached


# -- refused at the final dot ---------------------------------------------------------------------------------------
def test_a_4xx_after_the_commit_point_puts_it_back_to_pending_with_its_attempt_counted():
    delivery = sent()
    delivery.refused_after_sent(model.temporary("451 later", "smtp 451"), NOW)
    assert state(delivery) == (model.PENDING, 1, None, NOW + timedelta(seconds=2), "451 later")
    assert delivery.sent_at is None and delivery.events == []


def test_a_5xx_after_the_commit_point_fails_it_and_notification_failed_follows():
    delivery = sent()
    delivery.refused_after_sent(model.cannot_be_sent("554 refused", "smtp 554"), NOW)
    assert (delivery.status, delivery.sent_at) == (model.FAILED, None)
    assert delivery.events == [NotificationFailed(notification_id=delivery.id, reason="smtp 554", permanent=True)]


def test_only_a_sent_delivery_can_be_refused_after_sent():
    delivery = leased()
    with pytest.raises(LeaseLost):
        delivery.refused_after_sent(model.temporary("451", "smtp 451"), NOW)
    assert delivery.status == model.PENDING


# -- an operator's retry ------------------------------------------------------------------------------------------
def test_an_operator_retries_a_failed_delivery_with_fresh_attempts_and_a_fresh_wait():
    delivery = leased()
    delivery.attempt_failed(ME, model.cannot_be_sent("550", "smtp 550"), NOW, max_attempts=8)
    later = NOW + timedelta(days=1)
    delivery.retry(later)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at, delivery.created_at) == (
        model.PENDING,
        0,
        later,
        later,
    )


@pytest.mark.parametrize("make", [owed, sent])
def test_only_a_failed_delivery_can_be_retried(make):
    delivery = make()
    before = state(delivery)
    with pytest.raises(NotFailed):
        delivery.retry(NOW)
    assert state(delivery) == before


# -- bring forward ------------------------------------------------------------------------------------------------
def test_a_delivery_waiting_for_its_contact_is_brought_forward_one_backing_off_is_not():
    waiting = leased()
    waiting.wait_for_data(ME, NotReady("contact", "no contact"), NOW, wait_seconds=3600)
    assert waiting.bring_forward(NOW) and waiting.next_attempt_at == NOW

    backing_off = leased()
    backing_off.attempt_failed(ME, model.temporary("451", "smtp 451"), NOW, max_attempts=8)
    assert not backing_off.bring_forward(NOW) and backing_off.next_attempt_at == NOW + timedelta(seconds=2)

    assert not sent().bring_forward(NOW)
    assert not owed().bring_forward(NOW)  # due already
