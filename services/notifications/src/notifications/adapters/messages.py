"""The e-mail a delivery becomes: its words (templates.py, from the gettext catalogues, Danish or English, as the
member chose for the message's category or else as their profile says), a text/plain and a text/html alternative of
the same words for every kind (html_mail.py), for a message that changes a calendar entry its ICS (calendar.py: an
invitation or update METHOD:REQUEST, a cancellation METHOD:CANCEL, always the meeting's UID and its sequence), and
for every message a member may turn off the RFC 8058 one-click unsubscribe headers (a transactional one, such as a
sign-in link, has none). Put together by the mailer's `build_message`. Building is pure: what fails once fails every
time. A sign-in mail's link is its delivery's `secret`: no error raised here quotes it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from netvaerk_shared import contracts

from ..domain import model
from ..domain.model import Delivery, Material
from .calendar import build_invitation_ics
from .html_mail import render_html
from .mailer import InvalidAddress, build_message
from .templates import (
    agenda_description,
    render_agenda_update,
    render_cancellation,
    render_invitation,
    render_nudge,
    render_proposal_accepted,
    render_reminder,
    render_rsvp_confirmation,
    render_sign_in,
    render_update,
    render_waitlist_promotion,
    render_welcome,
)

UnsubscribeUrl = Callable[[UUID, str], str]  # (member id, category) -> the one-click URL


class Undeliverable(Exception):
    """This message can never be built: retrying cannot help. `reason` is short and holds no personal data."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def compose(
    delivery: Delivery,
    material: Material,
    *,
    mail_from: str,
    mail_from_name: str,
    now: datetime,
    unsubscribe_url: UnsubscribeUrl | None = None,
) -> EmailMessage:
    """The message for `delivery`, its Message-ID the delivery's id. Raises Undeliverable."""
    try:
        return _compose(delivery, material, mail_from, mail_from_name, now, unsubscribe_url)
    except Undeliverable:
        raise
    except InvalidAddress as exc:
        raise Undeliverable("invalid recipient address", _quoting_no_secret(delivery, exc)) from exc
    except Exception as exc:
        raise Undeliverable(f"build: {type(exc).__name__}", _quoting_no_secret(delivery, exc)) from exc


def _quoting_no_secret(delivery: Delivery, exc: Exception) -> str:
    detail = f"{type(exc).__name__}: {exc}"
    return detail.replace(delivery.secret, "[link]") if delivery.secret else detail


def _compose(
    delivery: Delivery,
    material: Material,
    mail_from: str,
    mail_from_name: str,
    now: datetime,
    unsubscribe_url: UnsubscribeUrl | None,
) -> EmailMessage:
    contact, group = material.contact, material.group
    locale = material.locale
    group_name = group.name if group else ""
    ics, method, filename = None, "REQUEST", "invitation.ics"
    links: tuple[str, ...] = ()
    if delivery.kind == model.SIGN_IN:
        if not delivery.secret:  # blanked when the delivery ended once (sent, then refused; an operator's retry)
            raise Undeliverable("sign-in link gone", "the sign-in link is no longer kept: the gateway must ask anew")
        subject, body = render_sign_in(
            locale, member_name=contact.name, link=delivery.secret, minutes=model.SIGN_IN_LINK_MINUTES
        )
        links = (delivery.secret,)
    elif material.meeting is None:
        subject, body = render_welcome(locale, member_name=contact.name, group_name=group_name)
    elif delivery.kind == model.INVITATION:
        subject, body, ics = _invitation(material, material.meeting.data, group_name, mail_from, mail_from_name, now)
    else:
        subject, body, ics, method = _about_meeting(delivery, material, group_name, mail_from, mail_from_name, now)
        filename = "cancellation.ics" if method == "CANCEL" else "update.ics"
    html = render_html(locale, body, title=subject, links=links)
    headers = {}
    category = model.category_of(delivery.kind)
    if category is not None and unsubscribe_url is not None:
        headers = {
            "List-Unsubscribe": f"<{unsubscribe_url(delivery.member_id, category)}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    return build_message(
        message_id=str(delivery.id),
        from_addr=mail_from,
        from_name=mail_from_name,
        to_addr=contact.email,
        to_name=contact.name,
        subject=subject,
        text_body=body,
        html_body=html,
        ics=ics,
        ics_method=method,
        ics_filename=filename,
        headers=headers,
        locale=locale,
        date=now,
    )


def _scheduled(data: dict[str, Any]) -> contracts.MeetingScheduled:
    fields = contracts.MeetingScheduled.model_fields
    return contracts.MeetingScheduled.model_validate({k: v for k, v in data.items() if k in fields})


def _location(meeting: contracts.MeetingScheduled) -> str | None:
    if meeting.venue is None:
        return None
    return ", ".join(p for p in (meeting.venue.name, meeting.venue.address) if p)


def _ics(
    meeting: contracts.MeetingScheduled,
    material: Material,
    mail_from: str,
    mail_from_name: str,
    now: datetime,
    method: str = "REQUEST",
) -> bytes:
    zone = ZoneInfo(meeting.timezone)
    agenda = [a.model_dump(mode="json") for a in meeting.agenda]
    return build_invitation_ics(
        meeting_id=str(meeting.meeting_id),
        sequence=meeting.sequence,
        title=meeting.title,
        starts_at=meeting.starts_at,
        ends_at=meeting.ends_at,
        timezone=meeting.timezone,
        location=_location(meeting),
        online_url=meeting.online_url,
        description=agenda_description(material.locale, agenda, starts_at_local=meeting.starts_at.astimezone(zone)),
        organizer_email=mail_from,
        organizer_name=mail_from_name,
        attendee_email=material.contact.email,
        attendee_name=material.contact.name,
        dtstamp=now,
        method=method,
    )


def _invitation(
    material: Material, data: dict[str, Any], group_name: str, mail_from: str, mail_from_name: str, now: datetime
) -> tuple[str, str, bytes]:
    meeting = _scheduled(data)
    zone = ZoneInfo(meeting.timezone)
    start_local, end_local = meeting.starts_at.astimezone(zone), meeting.ends_at.astimezone(zone)
    agenda = [a.model_dump(mode="json") for a in meeting.agenda]
    subject, body = render_invitation(
        material.locale,
        member_name=material.contact.name,
        group_name=group_name,
        title=meeting.title,
        starts_at_local=start_local,
        ends_at_local=end_local,
        location=_location(meeting),
        online_url=meeting.online_url,
        agenda=agenda,
    )
    return subject, body, _ics(meeting, material, mail_from, mail_from_name, now)


def _about_meeting(
    delivery: Delivery, material: Material, group_name: str, mail_from: str, mail_from_name: str, now: datetime
) -> tuple[str, str, bytes | None, str]:
    """(subject, body, ICS or None, ICS method) of every kind about a meeting but the invitation."""
    assert material.meeting is not None
    meeting = _scheduled(material.meeting.data)
    zone = ZoneInfo(meeting.timezone)
    payload = delivery.payload
    locale = material.locale
    common: dict[str, Any] = {
        "member_name": material.contact.name,
        "group_name": group_name,
        "title": meeting.title,
        "starts_at_local": meeting.starts_at.astimezone(zone),
        "ends_at_local": meeting.ends_at.astimezone(zone),
        "location": _location(meeting),
        "online_url": meeting.online_url,
    }
    kind = delivery.kind
    if kind == model.MEETING_UPDATE:
        previous = payload.get("previous_starts_at")
        previous_local = datetime.fromisoformat(previous).astimezone(zone) if previous else None
        subject, body = render_update(locale, previous_starts_at_local=previous_local, **common)
        return subject, body, _ics(meeting, material, mail_from, mail_from_name, now), "REQUEST"
    if kind == model.CANCELLATION:
        subject, body = render_cancellation(locale, reason=payload.get("reason"), **common)
        return subject, body, _ics(meeting, material, mail_from, mail_from_name, now, "CANCEL"), "CANCEL"
    if kind == model.AGENDA_UPDATE:
        agenda = [a.model_dump(mode="json") for a in meeting.agenda]
        subject, body = render_agenda_update(locale, agenda=agenda, **common)
        return subject, body, None, "REQUEST"
    if kind == model.RSVP_CONFIRMATION:
        position = payload.get("waitlist_position")
        subject, body = render_rsvp_confirmation(
            locale,
            response=payload.get("response", ""),
            status=payload.get("status", ""),
            waitlist_position=int(position) if position else None,
            on_behalf=bool(payload.get("on_behalf_of")),
            **common,
        )
        return subject, body, None, "REQUEST"
    if kind == model.WAITLIST_PROMOTION:
        subject, body = render_waitlist_promotion(locale, **common)
        return subject, body, None, "REQUEST"
    if kind == model.PROPOSAL_ACCEPTED:
        number = int(payload["agenda_position"])
        item = next((a for a in meeting.agenda if a.position == number), None)
        subject, body = render_proposal_accepted(
            locale, position=number, item_title=item.title if item else None, **common
        )
        return subject, body, None, "REQUEST"
    if kind == model.REMINDER:
        position = payload.get("waitlist_position")
        subject, body = render_reminder(
            locale,
            days_before=int(payload.get("days_before", 0)),
            response=payload.get("response", ""),
            status=payload.get("status", ""),
            waitlist_position=int(position) if position else None,
            agenda=[a.model_dump(mode="json") for a in meeting.agenda],
            **common,
        )
        return subject, body, None, "REQUEST"
    if kind == model.NUDGE:
        subject, body = render_nudge(locale, days_before=int(payload.get("days_before", 0)), **common)
        return subject, body, None, "REQUEST"
    raise ValueError(f"no message for kind {kind!r}")
