"""Every kind of mail has a text/plain and a text/html alternative with the same words; the HTML reads on a narrow
screen and without images, fetches nothing, and keeps whatever a member or organiser typed as escaped text; an
invitation keeps its calendar parts where Outlook and Gmail look for them."""

from __future__ import annotations

import email
import email.policy
import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from aiosmtplib.email import flatten_message

from notifications.adapters.html_mail import render_html
from notifications.adapters.messages import compose
from notifications.adapters.unsubscribe import UnsubscribeTokens
from notifications.domain import model

NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
STARTS = datetime(2027, 3, 11, 16, 0, tzinfo=UTC)
TOKENS = UnsubscribeTokens(b"test-key-0123456789", "https://netvaerk.example.org")
HOSTILE_NAME = "Ærø <script>alert('x')</script> \"Søs\" & Co 🎉"
HOSTILE_TITLE = 'Møde </p><img src="https://evil.example.org/t.gif" onerror="alert(1)"> «å» 🚀'
HOSTILE_GROUP = "Øst <b>fed</b> & 'gruppe'"

KINDS = [
    (model.WELCOME, {}),
    (model.INVITATION, {}),
    (model.MEETING_UPDATE, {"previous_starts_at": (STARTS - timedelta(days=7)).isoformat()}),
    (model.CANCELLATION, {"reason": "<script>x</script> syg"}),
    (model.AGENDA_UPDATE, {}),
    (model.RSVP_CONFIRMATION, {"response": "attending", "status": "waitlisted", "waitlist_position": "2"}),
    (model.WAITLIST_PROMOTION, {}),
    (model.PROPOSAL_ACCEPTED, {"proposal_id": str(uuid.uuid4()), "agenda_position": "1"}),
    (model.REMINDER, {"days_before": "1", "response": "attending", "status": "confirmed"}),
    (model.NUDGE, {"days_before": "3"}),
]


def meeting() -> model.Meeting:
    meeting_id, group_id = uuid.uuid4(), uuid.uuid4()
    data = {
        "meeting_id": str(meeting_id),
        "group_id": str(group_id),
        "title": HOSTILE_TITLE,
        "starts_at": STARTS.isoformat(),
        "ends_at": (STARTS + timedelta(hours=2)).isoformat(),
        "timezone": "Europe/Copenhagen",
        "venue": {"name": "Huset <i>", "address": "Æblevej 1 & 2"},
        "online_url": 'https://moede.example.org/a?b=1&c="2"',
        "agenda": [{"position": 1, "kind": "talk", "title": "<svg onload=x>", "speaker": 'Søren "S"', "minutes": 30}],
        "sequence": 1,
    }
    return model.Meeting(meeting_id, group_id, 1, data, model.SCHEDULED)


def build(kind: str, payload: dict, locale: str) -> email.message.EmailMessage:
    the_meeting = meeting()
    d = model.Delivery(uuid.uuid4(), "k", uuid.uuid4(), kind, uuid.uuid4(), NOW, NOW, payload={**payload})
    if kind != model.WELCOME:
        d.payload["meeting_id"] = str(the_meeting.meeting_id)
    contact = model.Contact(d.member_id, HOSTILE_NAME, "mette@example.org", locale)
    group = model.Group(the_meeting.group_id, HOSTILE_GROUP)
    material = model.Material(contact, group, None if kind == model.WELCOME else the_meeting)
    message = compose(
        d, material, mail_from="netvaerk@example.org", mail_from_name="Dansk IT", now=NOW, unsubscribe_url=TOKENS.url
    )
    wire = flatten_message(message, cte_type="7bit")
    assert wire.isascii()
    return email.message_from_bytes(wire, policy=email.policy.default)  # type: ignore[return-value]


class _Page(HTMLParser):
    """What a reader sees (the text), and every tag and attribute the HTML holds."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._skip = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._skip = tag == "title"
        if tag in ("br", "p"):
            self.text.append("\n")

    def handle_endtag(self, tag):
        self._skip = False

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def page(markup: str) -> _Page:
    parsed = _Page()
    parsed.feed(markup)
    parsed.close()
    return parsed


def words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("locale", ["da", "en"])
@pytest.mark.parametrize(("kind", "payload"), KINDS, ids=[k for k, _ in KINDS])
def test_every_kind_has_text_and_html_with_the_same_words_and_hostile_text_escaped(kind, payload, locale):
    message = build(kind, payload, locale)
    plain = message.get_body(("plain",)).get_content()
    markup = message.get_body(("html",)).get_content()
    assert message.get_body(("html",)).get_content_charset() == "utf-8"
    seen = page(markup)
    # the same words, in the same order: nothing added, nothing lost
    assert words("".join(seen.text)) == words(plain)
    # whatever was typed is text: no tag or attribute of its own, the dangerous characters escaped
    allowed = {"html", "head", "meta", "title", "body", "div", "p", "br"}
    assert {tag for tag, _ in seen.tags} <= allowed
    assert all(set(attrs) <= {"lang", "style", "charset", "name", "content"} for _, attrs in seen.tags)
    for raw in ("<script", "<img", "<svg", "<b>", "<i>"):
        assert raw not in markup, raw
    assert html.escape(HOSTILE_NAME) in markup and "🎉" in markup
    if kind != model.WELCOME:
        assert html.escape(HOSTILE_TITLE) in markup
    assert "Ærø" in plain and "🎉" in plain
    # readable anywhere: one column with a max-width, 16 px text, inline styles, nothing fetched, no images
    assert f'<html lang="{locale}">' in markup
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in markup
    assert "max-width:600px" in markup and "font-size:16px" in markup
    sizes = [int(px) for px in re.findall(r"font-size:\s*(\d+)px", markup)]
    assert sizes and min(sizes) >= 16
    assert "<style" not in markup and "<link" not in markup and "url(" not in markup
    assert not any("://" in (value or "") for _, attrs in seen.tags for value in attrs.values())


def test_the_invitation_is_mixed_alternative_text_html_calendar_plus_the_attachment():
    message = build(model.INVITATION, {}, "da")
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    plain, markup, calendar = alternative.get_payload()
    assert [plain.get_content_type(), markup.get_content_type()] == ["text/plain", "text/html"]
    assert calendar.get_content_type() == "text/calendar" and calendar.get_param("method") == "REQUEST"
    assert calendar.get_content_disposition() is None
    assert attachment.get_content_type() == "text/calendar" and attachment.get_param("method") == "REQUEST"
    assert attachment.get_content_disposition() == "attachment" and attachment.get_filename() == "invitation.ics"
    assert calendar.get_payload(decode=True) == attachment.get_payload(decode=True)
    assert message["Subject"].startswith("Invitation: Møde </p><img")  # the subject is a header: text, not HTML
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_welcome_is_text_and_html_alternatives_with_no_calendar():
    message = build(model.WELCOME, {}, "en")
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.get_payload()] == ["text/plain", "text/html"]
    assert message["Subject"] == f"Welcome to {HOSTILE_GROUP}"
    assert message["Content-Language"] == "en"
    assert message["List-Unsubscribe"] is None


def test_the_title_is_escaped_and_a_locale_we_lack_gets_danish():
    markup = render_html("de-DE", "Hej <b>\n\nFarvel", title="</title><script>x</script>")
    assert "<title>&lt;/title&gt;&lt;script&gt;x&lt;/script&gt;</title>" in markup
    assert '<html lang="da">' in markup
    assert markup.count("<p ") == 2 and "Hej &lt;b&gt;" in markup
