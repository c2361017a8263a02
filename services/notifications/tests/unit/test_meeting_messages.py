"""The e-mails of a meeting's life after the invitation, built with no network: an update whose ICS moves the
calendar entry (same UID, higher SEQUENCE), a cancellation as METHOD:CANCEL, Danish and English words with æøå in
subject and body, an HTML alternative, and RFC 8058 one-click unsubscribe on every message a member may turn off;
the unsubscribe tokens themselves."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from aiosmtplib.email import flatten_message

from notifications.adapters.messages import compose
from notifications.adapters.unsubscribe import UnsubscribeTokens
from notifications.domain import model

NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
STARTS = datetime(2027, 3, 11, 8, 0, tzinfo=UTC)  # 09:00 in Copenhagen
TOKENS = UnsubscribeTokens(b"test-key-0123456789", "https://netvaerk.example.org")


def meeting(sequence=0, status=model.SCHEDULED, starts=STARTS) -> model.Meeting:
    meeting_id, group_id = uuid.uuid4(), uuid.uuid4()
    data = {
        "meeting_id": str(meeting_id),
        "group_id": str(group_id),
        "title": "Forårsmøde på Åbyhøj",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=3)).isoformat(),
        "timezone": "Europe/Copenhagen",
        "venue": {"name": "Eksempelhuset", "address": "Æblevej 1"},
        "agenda": [{"position": 1, "kind": "talk", "title": "Grøn IT", "speaker": "Søren Eksempel", "minutes": 60}],
        "sequence": sequence,
    }
    return model.Meeting(meeting_id, group_id, sequence, data, status)


def delivery(kind, the_meeting, **payload) -> model.Delivery:
    return model.Delivery(
        id=uuid.uuid4(),
        dedupe_key="k",
        member_id=uuid.uuid4(),
        kind=kind,
        cause_event_id=uuid.uuid4(),
        created_at=NOW,
        next_attempt_at=NOW,
        payload={"meeting_id": str(the_meeting.meeting_id), **payload},
    )


def build(kind, the_meeting, locale="da", preference=None, **payload):
    d = delivery(kind, the_meeting, **payload)
    contact = model.Contact(d.member_id, "Mette Ærø", "mette@example.org", locale)
    material = model.Material(contact, model.Group(the_meeting.group_id, "Offentlig digitalisering øst"), the_meeting)
    if preference is not None:
        material = model.Material(material.contact, material.group, material.meeting, preference)
    message = compose(
        d,
        material,
        mail_from="netvaerk@example.org",
        mail_from_name="Dansk IT Netværk",
        now=NOW,
        unsubscribe_url=TOKENS.url,
    )
    wire = flatten_message(message, cte_type="7bit")
    assert wire.isascii()
    return d, email.message_from_bytes(wire, policy=email.policy.default)


def calendar_of(message) -> icalendar.Calendar:
    [part, attachment] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_payload(decode=True) == attachment.get_payload(decode=True)
    return icalendar.Calendar.from_ical(part.get_payload(decode=True))


def test_an_update_moves_the_calendar_entry_same_uid_higher_sequence():
    first = meeting(0)
    _, invitation = build(model.INVITATION, first)
    moved = model.Meeting(first.meeting_id, first.group_id, 2, {**first.data, "sequence": 2})
    _, update = build(model.MEETING_UPDATE, moved, previous_starts_at=(STARTS - timedelta(days=7)).isoformat())
    before, after = calendar_of(invitation), calendar_of(update)
    [old], [new] = before.walk("VEVENT"), after.walk("VEVENT")
    assert str(after["METHOD"]) == "REQUEST" and str(new["UID"]) == str(old["UID"])
    assert int(new["SEQUENCE"]) == 2 > int(old["SEQUENCE"]) == 0
    assert update["Subject"] == "Ændret: Forårsmøde på Åbyhøj – 11. marts 2027"
    text = update.get_body(("plain",)).get_content()
    assert "Kære Mette Ærø" in text and "Det skulle have været torsdag den 4. marts 2027 kl. 09.00." in text
    html = update.get_body(("html",)).get_content()
    assert "Forårsmøde på Åbyhøj" in html and '<html lang="da">' in html


def test_a_cancellation_is_method_cancel_status_cancelled_and_carries_no_unsubscribe():
    _, message = build(model.CANCELLATION, meeting(3, model.CANCELLED), reason="Oplægsholderen er syg")
    cal = calendar_of(message)
    [event] = cal.walk("VEVENT")
    assert (str(cal["METHOD"]), str(event["STATUS"]), int(event["SEQUENCE"])) == ("CANCEL", "CANCELLED", 3)
    assert all(p.get_param("method") == "CANCEL" for p in message.walk() if p.get_content_type() == "text/calendar")
    assert message["Subject"] == "Aflyst: Forårsmøde på Åbyhøj – 11. marts 2027"
    assert "Begrundelse: Oplægsholderen er syg" in message.get_body(("plain",)).get_content()
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize(
    ("kind", "payload", "subject", "words"),
    [
        (model.AGENDA_UPDATE, {}, "Agenda updated: Forårsmøde på Åbyhøj – 11 March 2027", "Talk: Grøn IT"),
        (
            model.RSVP_CONFIRMATION,
            {"response": "attending", "status": "waitlisted", "waitlist_position": "4"},
            "Your reply: Forårsmøde på Åbyhøj – 11 March 2027",
            "you are number 4 on the waiting list",
        ),
        (model.WAITLIST_PROMOTION, {}, "You have a seat: Forårsmøde på Åbyhøj – 11 March 2027", "it is now yours"),
        (
            model.PROPOSAL_ACCEPTED,
            {"proposal_id": str(uuid.uuid4()), "agenda_position": "1"},
            "Your proposal is on the agenda: Forårsmøde på Åbyhøj",
            "Item 1: Grøn IT",
        ),
    ],
)
def test_each_kind_in_english_with_text_and_html(kind, payload, subject, words):
    _, message = build(kind, meeting(1), locale="en", **payload)
    assert message["Subject"] == subject
    assert message["Content-Language"] == "en"
    assert words in message.get_body(("plain",)).get_content()
    assert message.get_body(("html",)) is not None
    assert not [p for p in message.walk() if p.get_content_type() == "text/calendar"]


def test_danish_receipt_and_a_language_chosen_for_the_category():
    _, receipt = build(model.RSVP_CONFIRMATION, meeting(1), response="declined", status="noted")
    assert receipt["Subject"] == "Dit svar: Forårsmøde på Åbyhøj – 11. marts 2027"
    assert "Du har svaret: jeg deltager ikke." in receipt.get_body(("plain",)).get_content()
    d, chosen = build(
        model.AGENDA_UPDATE, meeting(1), preference=model.Preference(uuid.uuid4(), "agenda_updates", True, "en")
    )
    assert chosen["Subject"].startswith("Agenda updated:")


def test_what_a_member_may_turn_off_carries_one_click_unsubscribe_for_its_category():
    for kind, category in ((model.INVITATION, "announcements"), (model.AGENDA_UPDATE, "agenda_updates")):
        d, message = build(kind, meeting(1))
        url = message["List-Unsubscribe"]
        assert url.startswith("<https://netvaerk.example.org/unsubscribe/") and url.endswith(">")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert TOKENS.read(url[1:-1].rsplit("/", 1)[1]) == (d.member_id, category)
    for kind in (model.WAITLIST_PROMOTION, model.RSVP_CONFIRMATION):
        _, message = build(kind, meeting(1), response="attending", status="confirmed")
        assert message["List-Unsubscribe"] is None


def test_tokens_are_signed_and_anything_else_reads_as_nothing():
    member_id = uuid.uuid4()
    token = TOKENS.token(member_id, "reminders")
    assert TOKENS.read(token) == (member_id, "reminders")
    other_key = UnsubscribeTokens(b"another-key-0123456789", "https://netvaerk.example.org")
    payload, signature = token.split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    for bad in (
        other_key.token(member_id, "reminders"),  # forged: signed with another key
        f"{payload}.{flipped}",
        payload,
        token[:-3],
        token + "!",
        "é" * 20,
        "\x00",
        "",
        "." * 500,
        f"{TOKENS.token(member_id, 'announcements').split('.')[0]}.{signature}",  # another category, same signature
    ):
        assert TOKENS.read(bad) is None, bad


def test_the_settings_of_unsubscribe_links():
    from pydantic import ValidationError

    from notifications.config import Settings

    assert Settings(public_base_url="https://netvaerk.example.org/").public_base_url == "https://netvaerk.example.org"
    for bad in ({"public_base_url": "ftp://x"}, {"public_base_url": "https://a b"}, {"unsubscribe_secret": "secret"}):
        with pytest.raises(ValidationError):
            Settings(**bad)
    with pytest.raises(ValidationError):
        Settings(environment="production", api_token="a-real-token-0123456789", public_base_url="http://x.example.org")
    assert Settings(unsubscribe_secret="0123456789abcdef-x").unsubscribe_key() == b"0123456789abcdef-x"
    assert Settings(api_token="t").unsubscribe_key() != Settings(api_token="u").unsubscribe_key()


def test_hostile_text_from_events_stays_on_its_line_in_every_new_kind():
    hostile = meeting(2)
    data = {**hostile.data, "title": "Møde\r\nBcc: victim@example.net\r\n\r\nBEGIN:VEVENT", "venue": None}
    hostile = model.Meeting(hostile.meeting_id, hostile.group_id, 2, data, model.CANCELLED)
    for kind, payload in (
        (model.CANCELLATION, {"reason": "Syg\r\n\r\nBcc: victim@example.net\u2028X"}),
        (model.MEETING_UPDATE, {"previous_starts_at": STARTS.isoformat()}),
        (model.RSVP_CONFIRMATION, {"response": "attending\r\nX", "status": "confirmed"}),
    ):
        _, message = build(kind, hostile, **payload)
        assert message["Bcc"] is None and "\n" not in str(message["Subject"])
        text = message.get_body(("plain",)).get_content()
        assert not any(line.startswith(("Bcc:", "BEGIN:VEVENT")) for line in text.splitlines()), text
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                [event] = icalendar.Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")
                assert "BEGIN:VEVENT" in str(event["SUMMARY"])  # kept as text, escaped: no second event
