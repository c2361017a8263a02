"""SmtpMailer against the real development SMTP sink (aiosmtpd, Maildir) on a free local port.

The point of the two-phase send: the message is stored by the server only after `before_commit_point()` returned,
and never when the sender dies (or its commit fails) before that.
"""

import asyncio
import contextlib
import email
import email.policy
import mailbox
import time
from datetime import UTC, datetime

import pytest
from aiosmtpd.controller import Controller
from icalendar import Calendar

from netvaerk_testing.infra import free_port
from netvaerk_testing.smtp_sink import MaildirSink, start_sink
from notifications.adapters.calendar import build_invitation_ics
from notifications.adapters.mailer import (
    SmtpMailer,
    SmtpOutcomeUnknown,
    SmtpRejected,
    SmtpTransient,
    build_message,
)

UTC = UTC


@contextlib.contextmanager
def running(handler, port=None, **smtp_options):
    """A sink with a custom handler (or SMTP options such as an idle timeout)."""
    port = port or free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="sink.test", **smtp_options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def maildir_path(tmp_path):
    return tmp_path / "mail"


@pytest.fixture
def sink(maildir_path):
    port = free_port()
    controller = start_sink("127.0.0.1", port, maildir_path)
    yield port
    controller.stop()


def stored(maildir_path) -> list[email.message.EmailMessage]:
    box = mailbox.Maildir(maildir_path, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]


def invitation(n: int = 1, to: str = "mette.jensen@kommune.example.org"):
    ics = build_invitation_ics(
        meeting_id="3f6c1e2a-8d4b-4c1e-9a77-0b6f2d5e9c10",
        sequence=0,
        title="Forårsmøde",
        starts_at=datetime(2026, 6, 10, 15, 0, tzinfo=UTC),
        ends_at=datetime(2026, 6, 10, 17, 0, tzinfo=UTC),
        timezone="Europe/Copenhagen",
        location="Eksempel Kommune, København",
        online_url=None,
        description="Dagsorden:\n1. Check-in: Runde (20 min)",
        organizer_email="netvaerk@danskit.example.org",
        organizer_name="Dansk IT Netværk",
        attendee_email=to,
        attendee_name="Mette Jensen",
        dtstamp=datetime(2026, 5, 1, 8, 30, tzinfo=UTC),
    )
    return build_message(
        message_id=f"delivery-{n}",
        from_addr="netvaerk@danskit.example.org",
        from_name="Dansk IT Netværk",
        to_addr=to,
        to_name="Mette Jensen",
        subject="Invitation: Forårsmøde – 10. juni 2026",
        # A line holding a lone "." would end DATA early without dot-stuffing.
        text_body="Kære Mette\n.\n.. og en linje med punktum først\nVenlig hilsen",
        ics=ics,
        locale="da",
    )


async def nothing() -> None:
    return None


def mailer(port: int, **options) -> SmtpMailer:
    return SmtpMailer(host="127.0.0.1", port=port, timeout=5, local_hostname="notifications.test", **options)


async def settle() -> None:
    """Give the sink's thread time to act on what we did to the connection."""
    await asyncio.sleep(0.2)


# (a) ------------------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_sent_message_lands_in_the_maildir_and_parses(sink, maildir_path):
    smtp = mailer(sink)
    await smtp.send(invitation(), before_commit_point=nothing)
    await smtp.close()

    [received] = stored(maildir_path)
    assert received["Message-ID"] == "<delivery-1@netvaerk.danskit.example.org>"
    assert received["Subject"] == "Invitation: Forårsmøde – 10. juni 2026"
    assert received["Content-Language"] == "da"
    assert datetime.fromisoformat(received["X-Netvaerk-Received-At"]).tzinfo is not None
    assert received["X-Netvaerk-Mail-From"] == "netvaerk@danskit.example.org"
    assert received["X-Netvaerk-Rcpt-To"] == "mette.jensen@kommune.example.org"
    text = received.get_body(("plain",)).get_content()
    assert text.splitlines() == ["Kære Mette", ".", ".. og en linje med punktum først", "Venlig hilsen"]

    calendar_parts = [part for part in received.walk() if part.get_content_type() == "text/calendar"]
    assert [part.get_filename() for part in calendar_parts] == [None, "invitation.ics"]
    for part in calendar_parts:
        assert part.get_param("method") == "REQUEST"
        calendar = Calendar.from_ical(part.get_payload(decode=True))
        assert calendar["METHOD"] == "REQUEST"
        [event] = calendar.walk("VEVENT")
        assert str(event["UID"]) == "meeting-3f6c1e2a-8d4b-4c1e-9a77-0b6f2d5e9c10@netvaerk.danskit.example.org"
        assert event.start == datetime(2026, 6, 10, 15, 0, tzinfo=UTC)


# (b) ------------------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_b_crash_before_the_commit_point_delivers_nothing(sink, maildir_path):
    smtp = mailer(sink)
    crash = RuntimeError("database went away before commit")

    async def commit_fails():
        raise crash

    with pytest.raises(RuntimeError) as raised:
        await smtp.send(invitation(1), before_commit_point=commit_fails)
    assert raised.value is crash  # the caller's own error, not wrapped
    await settle()
    assert stored(maildir_path) == []

    # The retry goes out on a fresh connection, and only it is stored.
    await smtp.send(invitation(2), before_commit_point=nothing)
    await settle()
    assert [m["Message-ID"] for m in stored(maildir_path)] == ["<delivery-2@netvaerk.danskit.example.org>"]
    assert smtp.connections_opened == 2
    await smtp.close()


@pytest.mark.asyncio
async def test_b_cancelled_while_committing_delivers_nothing(sink, maildir_path):
    smtp = mailer(sink)
    in_commit = asyncio.Event()

    async def slow_commit():
        in_commit.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(smtp.send(invitation(), before_commit_point=slow_commit))
    await asyncio.wait_for(in_commit.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()
    assert stored(maildir_path) == []


# (c) ------------------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_c_commit_point_is_awaited_once_before_the_server_stores(sink, maildir_path):
    smtp = mailer(sink)
    seen_in_commit = []

    async def commit():
        seen_in_commit.append(len(stored(maildir_path)))
        await asyncio.sleep(0.3)  # a slow commit: the server must simply wait for the final "."
        seen_in_commit.append(len(stored(maildir_path)))

    await smtp.send(invitation(), before_commit_point=commit)
    assert seen_in_commit == [0, 0]  # awaited exactly once (two looks inside one call), nothing stored meanwhile
    assert len(stored(maildir_path)) == 1
    await smtp.close()


# (d) ------------------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_d_server_not_listening_is_transient():
    calls = []

    async def commit():
        calls.append(1)

    with pytest.raises(SmtpTransient) as raised:
        await mailer(free_port()).send(invitation(), before_commit_point=commit)
    assert raised.value.committed is False
    assert calls == []


# connection handling --------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_one_connection_carries_many_messages_even_when_sent_concurrently(sink, maildir_path):
    smtp = mailer(sink)
    await asyncio.gather(*(smtp.send(invitation(n), before_commit_point=nothing) for n in range(1, 6)))
    assert smtp.connections_opened == 1
    assert sorted(m["Message-ID"] for m in stored(maildir_path)) == [
        f"<delivery-{n}@netvaerk.danskit.example.org>" for n in range(1, 6)
    ]
    await smtp.close()


@pytest.mark.asyncio
async def test_idle_connection_closed_by_the_server_is_reopened(maildir_path):
    with running(MaildirSink(maildir_path), timeout=0.2) as port:
        smtp = mailer(port)
        await smtp.send(invitation(1), before_commit_point=nothing)
        # Block the event loop (time.sleep, not asyncio.sleep) while the server hangs up on the idle connection, so
        # the mailer only finds out when it tries to use it.
        time.sleep(1.0)
        calls = []

        async def commit():
            calls.append(1)

        await smtp.send(invitation(2), before_commit_point=commit)
        assert calls == [1]
        assert smtp.connections_opened == 2
        assert len(stored(maildir_path)) == 2
        await smtp.close()


@pytest.mark.asyncio
async def test_server_restarted_between_sends(maildir_path):
    port = free_port()
    smtp = mailer(port)
    with running(MaildirSink(maildir_path), port=port):
        await smtp.send(invitation(1), before_commit_point=nothing)
    with pytest.raises(SmtpTransient):
        await smtp.send(invitation(2), before_commit_point=nothing)
    with running(MaildirSink(maildir_path), port=port):
        await smtp.send(invitation(3), before_commit_point=nothing)
    assert sorted(m["Message-ID"] for m in stored(maildir_path)) == [
        "<delivery-1@netvaerk.danskit.example.org>",
        "<delivery-3@netvaerk.danskit.example.org>",
    ]
    await smtp.close()


# refusals -------------------------------------------------------------------------------------------------------------


class RefusingSink(MaildirSink):
    """Refuses some recipients and can answer the final "." with a chosen reply or by hanging up."""

    def __init__(self, path, *, rcpt_replies=None, data_reply=None, hang_up_after_storing=False, mail_421_once=False):
        super().__init__(path)
        self.rcpt_replies = rcpt_replies or {}
        self.data_reply = data_reply
        self.hang_up_after_storing = hang_up_after_storing
        self.mail_421_once = mail_421_once

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_421_once:
            self.mail_421_once = False
            return "421 4.4.2 sink.test Error: timeout exceeded"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        reply = await super().handle_DATA(server, session, envelope)
        if self.hang_up_after_storing:
            server.transport.abort()
        return reply


@pytest.mark.asyncio
async def test_5xx_recipient_is_rejected_permanently_and_the_connection_stays_usable(maildir_path):
    refused = "ukendt@kommune.example.org"
    handler = RefusingSink(maildir_path, rcpt_replies={refused: "550 5.1.1 No such user"})
    with running(handler) as port:
        smtp = mailer(port)
        calls = []

        async def commit():
            calls.append(1)

        with pytest.raises(SmtpRejected) as raised:
            await smtp.send(invitation(1, to=refused), before_commit_point=commit)
        assert (raised.value.code, raised.value.permanent, raised.value.committed) == (550, True, False)
        assert calls == []
        await smtp.send(invitation(2), before_commit_point=nothing)
        assert smtp.connections_opened == 1  # RSET, not a reconnect
        assert [m["Message-ID"] for m in stored(maildir_path)] == ["<delivery-2@netvaerk.danskit.example.org>"]
        await smtp.close()


@pytest.mark.asyncio
async def test_4xx_recipient_is_transient(maildir_path):
    busy = "travl@kommune.example.org"
    with running(RefusingSink(maildir_path, rcpt_replies={busy: "450 4.2.1 Mailbox busy"})) as port:
        smtp = mailer(port)
        with pytest.raises(SmtpTransient) as raised:
            await smtp.send(invitation(to=busy), before_commit_point=nothing)
        assert (raised.value.code, raised.value.committed) == (450, False)
        await smtp.close()
    assert stored(maildir_path) == []


@pytest.mark.asyncio
async def test_421_on_a_reused_connection_is_retried_on_a_fresh_one(maildir_path):
    handler = RefusingSink(maildir_path)
    with running(handler) as port:
        smtp = mailer(port)
        await smtp.send(invitation(1), before_commit_point=nothing)
        handler.mail_421_once = True
        await smtp.send(invitation(2), before_commit_point=nothing)
        assert smtp.connections_opened == 2
        assert len(stored(maildir_path)) == 2
        await smtp.close()


@pytest.mark.parametrize(
    ("reply", "code", "permanent"),
    [
        ("554 5.6.0 Message content rejected", 554, True),
        ("451 4.3.0 Temporary failure", 451, False),
    ],
)
@pytest.mark.asyncio
async def test_refusal_of_the_final_dot_is_reported_as_after_commit(maildir_path, reply, code, permanent):
    with running(RefusingSink(maildir_path, data_reply=reply)) as port:
        smtp = mailer(port)
        calls = []

        async def commit():
            calls.append(1)

        with pytest.raises(SmtpRejected) as raised:
            await smtp.send(invitation(), before_commit_point=commit)
        assert (raised.value.code, raised.value.permanent, raised.value.committed) == (code, permanent, True)
        assert calls == [1]
        await smtp.close()


@pytest.mark.asyncio
async def test_no_reply_to_the_final_dot_is_an_unknown_outcome(maildir_path):
    with running(RefusingSink(maildir_path, hang_up_after_storing=True)) as port:
        smtp = mailer(port)
        with pytest.raises(SmtpOutcomeUnknown) as raised:
            await smtp.send(invitation(), before_commit_point=nothing)
        assert raised.value.committed is True
    # Here the server did store it: exactly why the caller must not resend after this error.
    assert len(stored(maildir_path)) == 1
