"""The sign-in mail without a network: once per link, the limit per member, the link kept only while the delivery
may still go (and never in its error text, its repr or an event), a transactional message with no List-Unsubscribe
and the link as the one link of its HTML."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtplib.email import flatten_message

from notifications.adapters.messages import Undeliverable, compose
from notifications.adapters.unsubscribe import UnsubscribeTokens
from notifications.domain import commands, model

NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
LINK = "https://netvaerk.example.org/login/eksempel-token-0123456789"
ME = "worker-a"
TOKENS = UnsubscribeTokens(b"test-key-0123456789", "https://netvaerk.example.org")


def owed(member_id=None, link_id=None) -> model.Delivery:
    return model.sign_in_mail(member_id or uuid.uuid4(), link_id or uuid.uuid4(), LINK, now=NOW)


def leased() -> model.Delivery:
    delivery = owed()
    delivery.lease(ME, NOW, NOW + timedelta(seconds=30))
    return delivery


def test_one_mail_per_link_named_by_the_link_and_about_the_member_alone():
    member_id, link_id = uuid.uuid4(), uuid.uuid4()
    a, b = owed(member_id, link_id), owed(member_id, link_id)
    assert a.dedupe_key == b.dedupe_key == f"sign_in:{link_id}:{member_id}"
    assert owed(member_id).dedupe_key != a.dedupe_key
    assert (a.kind, a.cause_event_id, a.about, a.payload) == (model.SIGN_IN, link_id, member_id, {})
    assert model.category_of(model.SIGN_IN) is None  # transactional: no preference turns it off
    contact = model.Contact(member_id, "Mette Eksempel", "mette@example.org", "da")
    assert a.made_of(contact, None, None).contact == contact  # no group, no meeting needed


def test_the_link_is_in_no_repr():
    delivery = owed()
    assert LINK not in repr(delivery)
    assert LINK not in repr(commands.SendSignInMail(delivery.member_id, uuid.uuid4(), LINK))


def test_at_most_five_a_member_within_fifteen_minutes():
    assert model.sign_in_wait([], NOW) is None
    four = [NOW - timedelta(minutes=m) for m in (1, 2, 3, 4)]
    assert model.sign_in_wait(four, NOW) is None
    five = [NOW - timedelta(minutes=10), *four]
    assert model.sign_in_wait(five, NOW) == timedelta(minutes=5)  # when the oldest leaves the window
    older = [NOW - timedelta(minutes=15), NOW - timedelta(minutes=20), *four]
    assert model.sign_in_wait(older, NOW) is None


def test_sent_the_link_is_blanked_and_nothing_is_announced():
    delivery = leased()
    delivery.mark_sent(ME, NOW, to_email="mette@example.org", subject="Dit login-link til Netværk", message_id="<x>")
    assert (delivery.status, delivery.secret, delivery.events) == (model.SENT, None, [])


def test_failed_for_good_the_link_is_blanked_and_kept_out_of_the_error():
    delivery = leased()
    failure = model.cannot_be_sent(f"build: could not use {LINK}", f"build: {LINK}")
    delivery.attempt_failed(ME, failure, NOW, max_attempts=5)
    assert (delivery.status, delivery.secret, delivery.events) == (model.FAILED, None, [])
    assert LINK not in (delivery.last_error or "") and "[link]" in (delivery.last_error or "")


def test_a_temporary_failure_keeps_the_link_for_the_next_attempt_but_not_in_the_error():
    delivery = leased()
    delivery.attempt_failed(ME, model.temporary(f"smtp 451 for {LINK}", "smtp 451"), NOW, max_attempts=5)
    assert (delivery.status, delivery.secret) == (model.PENDING, LINK)
    assert LINK not in (delivery.last_error or "")


def build(delivery: model.Delivery, locale: str) -> email.message.EmailMessage:
    contact = model.Contact(delivery.member_id, "Mette Ærø", "mette@example.org", locale)
    message = compose(
        delivery,
        model.Material(contact, None, None),
        mail_from="netvaerk@example.org",
        mail_from_name="Dansk IT Netværk",
        now=NOW,
        unsubscribe_url=TOKENS.url,
    )
    return email.message_from_bytes(flatten_message(message, cte_type="7bit"), policy=email.policy.default)


@pytest.mark.parametrize(
    ("locale", "subject", "words"),
    [
        ("da", "Dit login-link til Netværk", "Linket virker én gang og i 15 minutter."),
        ("en", "Your sign-in link to Netværk", "The link works once and for 15 minutes."),
    ],
)
def test_the_mail_in_the_members_language_with_the_link_and_no_unsubscribe(locale, subject, words):
    message = build(owed(), locale)
    assert message["Subject"] == subject
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    text = message.get_body(("plain",)).get_content()
    assert LINK in text.splitlines() and words in text and "Mette Ærø" in text
    html = message.get_body(("html",)).get_content()
    assert html.count("<a ") == 1 and f'<a href="{LINK}"' in html


def test_without_its_link_the_mail_cannot_be_built():
    delivery = owed()
    delivery.secret = None  # it ended once (sent, then refused after the commit; an operator's retry)
    with pytest.raises(Undeliverable) as refused:
        build(delivery, "da")
    assert refused.value.reason == "sign-in link gone"
