"""The short reason a NotificationFailed carries: the SMTP code and status, never the reply text or an address."""

import pytest

from notifications.adapters.mailer import SmtpRejected, SmtpTransient, smtp_reason


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (SmtpRejected(550, "5.1.1 <mette@example.org>: Recipient address rejected"), "smtp 550 5.1.1"),
        (SmtpRejected(550, "mette@example.org: 5.1.1 mailbox unavailable"), "smtp 550 5.1.1"),
        (SmtpRejected(554, "message refused at end of data"), "smtp 554"),
        (SmtpRejected(553, "non-ASCII address, and the server does not support SMTPUTF8"), "smtp 553"),
        (SmtpRejected(550, "user5.1.1@example.org: no such user"), "smtp 550"),
        (SmtpTransient("451 4.3.0 try later", code=451), "smtp 451 4.3.0"),
        (SmtpTransient("smtp 127.0.0.1:1025: connection refused"), "smtp unreachable"),
    ],
)
def test_smtp_reason(error, reason):
    assert smtp_reason(error) == reason
    assert "@" not in smtp_reason(error)
