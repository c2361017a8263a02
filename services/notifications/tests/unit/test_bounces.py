"""Bouncing addresses, the pure part: which SMTP refusals mark the recipient's address, and what a delivery to a
marked address comes to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from notifications.adapters.mailer import SmtpRejected, SmtpTransient, refuses_address
from notifications.domain.model import UNDELIVERABLE, Contact, marked_undeliverable


@pytest.mark.parametrize(
    ("error", "marks"),
    [
        (SmtpRejected(550, "5.1.1 <a@example.org>: Recipient address rejected"), True),
        (SmtpRejected(550, "No such user here"), True),
        (SmtpRejected(553, "mailbox name not allowed"), True),
        (SmtpRejected(551, "User not local"), True),
        (SmtpRejected(550, "5.2.1 Mailbox disabled"), True),
        (SmtpRejected(550, "5.7.1 Message rejected as spam"), False),  # policy: not the address
        (SmtpRejected(552, "5.3.4 Message too big"), False),
        (SmtpRejected(554, "Transaction failed"), False),
        (SmtpRejected(450, "4.2.1 Mailbox busy"), False),  # temporary
        (SmtpRejected(550, "5.1.1 unknown", committed=True), False),  # a refusal of the final ".": about the message
        (SmtpTransient("connection lost"), False),
    ],
)
def test_which_refusals_mark_the_address(error, marks):
    assert refuses_address(error) is marks


def test_a_marked_address_fails_at_once_permanently_with_the_reason_and_an_unmarked_one_goes():
    member = uuid.uuid4()
    assert marked_undeliverable(Contact(member, "Mette Eksempel", "mette@example.org", "da")) is None
    marked = Contact(
        member,
        "Mette Eksempel",
        "mette@example.org",
        "da",
        undeliverable_at=datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
        undeliverable_reason="smtp 550 5.1.1",
    )
    failure = marked_undeliverable(marked)
    assert failure is not None
    assert (failure.reason, failure.permanent, failure.counts) == (UNDELIVERABLE, True, True)
    assert failure.reason == "address marked undeliverable" and "smtp 550 5.1.1" in failure.error
    assert "mette@example.org" not in failure.reason
