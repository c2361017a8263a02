"""The shape of the e-mails build_message makes (no network)."""

import email
import email.policy
from datetime import UTC, datetime

from icalendar import Calendar

from notifications.adapters.mailer import build_message, format_message_id

ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Dansk IT//Netvaerk//DA\r\nMETHOD:REQUEST\r\n"
    b"BEGIN:VEVENT\r\nUID:meeting-1@netvaerk.danskit.example.org\r\nDTSTAMP:20260501T083000Z\r\n"
    b"DTSTART:20260610T150000Z\r\nSUMMARY:For\xc3\xa5rsm\xc3\xb8de\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def message(**overrides):
    args = dict(
        message_id="delivery-42",
        from_addr="netvaerk@danskit.example.org",
        from_name="Dansk IT Netværk",
        to_addr="mette.jensen@kommune.example.org",
        to_name="Mette Jænsen",
        subject="Invitation: Forårsmøde – 10. juni 2026",
        text_body="Kære Mette\n\nDu inviteres hermed.\n.\n",
        ics=ICS,
        locale="da",
        date=datetime(2026, 5, 1, 8, 30, tzinfo=UTC),
    )
    args.update(overrides)
    return build_message(**args)


def roundtrip(msg):
    """Serialise as it goes over SMTP and parse it back, as the receiving side would."""
    wire = msg.as_bytes(policy=email.policy.SMTP)
    return wire, email.message_from_bytes(wire, policy=email.policy.default)


def test_message_id_forms():
    assert format_message_id("delivery-42") == "<delivery-42@netvaerk.danskit.example.org>"
    assert format_message_id("abc@host.example.org") == "<abc@host.example.org>"
    assert format_message_id("<abc@host.example.org>") == "<abc@host.example.org>"


def test_headers():
    _, parsed = roundtrip(message())
    assert parsed["Message-ID"] == "<delivery-42@netvaerk.danskit.example.org>"
    assert parsed["Subject"] == "Invitation: Forårsmøde – 10. juni 2026"
    assert parsed["To"].addresses[0].display_name == "Mette Jænsen"
    assert parsed["To"].addresses[0].addr_spec == "mette.jensen@kommune.example.org"
    assert parsed["From"].addresses[0].display_name == "Dansk IT Netværk"
    assert parsed["Content-Language"] == "da"
    assert parsed["Date"].datetime == datetime(2026, 5, 1, 8, 30, tzinfo=UTC)


def test_invitation_layout_is_mixed_alternative_plus_attachment():
    _, parsed = roundtrip(message())
    assert parsed.get_content_type() == "multipart/mixed"
    alternative, attachment = parsed.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    plain, calendar = alternative.get_payload()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content_charset() == "utf-8"
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_content_charset() == "utf-8"
    assert calendar.get_content_disposition() is None
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "invitation.ics"
    # Both calendar parts carry the ICS byte for byte, and it parses.
    for part in (calendar, attachment):
        assert part.get_payload(decode=True) == ICS
        assert Calendar.from_ical(part.get_payload(decode=True))["METHOD"] == "REQUEST"


def test_text_body_survives():
    _, parsed = roundtrip(message())
    text = parsed.get_body(("plain",)).get_content()
    assert text.splitlines() == ["Kære Mette", "", "Du inviteres hermed.", "."]


def test_message_is_seven_bit_clean():
    wire, _ = roundtrip(message())
    assert wire.isascii()
    assert b"\r\n" in wire


def test_without_ics_it_is_a_single_text_part():
    _, parsed = roundtrip(message(ics=None, locale="en"))
    assert parsed.get_content_type() == "text/plain"
    assert parsed["Content-Language"] == "en"
    assert "Kære Mette" in parsed.get_content()
