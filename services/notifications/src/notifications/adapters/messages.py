"""The e-mail a delivery becomes: its words (templates.py, Danish or English), for an invitation its ICS
(calendar.py), put together by the mailer's `build_message`. Building is pure: what fails once fails every time."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from netvaerk_shared import contracts

from ..domain.model import Contact, Delivery, Material
from .calendar import build_invitation_ics
from .mailer import InvalidAddress, build_message
from .templates import agenda_description, render_invitation, render_welcome


class Undeliverable(Exception):
    """This message can never be built: retrying cannot help. `reason` is short and holds no personal data."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def compose(
    delivery: Delivery, material: Material, *, mail_from: str, mail_from_name: str, now: datetime
) -> EmailMessage:
    """The message for `delivery`, its Message-ID the delivery's id. Raises Undeliverable."""
    try:
        return _compose(delivery, material, mail_from, mail_from_name, now)
    except InvalidAddress as exc:
        raise Undeliverable("invalid recipient address", f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise Undeliverable(f"build: {type(exc).__name__}", f"{type(exc).__name__}: {exc}") from exc


def _compose(
    delivery: Delivery, material: Material, mail_from: str, mail_from_name: str, now: datetime
) -> EmailMessage:
    contact, group = material.contact, material.group
    ics = None
    if material.meeting is None:
        subject, body = render_welcome(contact.locale, member_name=contact.name, group_name=group.name if group else "")
    else:
        subject, body, ics = _invitation(
            contact, material.meeting.data, group.name if group else "", mail_from, mail_from_name, now
        )
    return build_message(
        message_id=str(delivery.id),
        from_addr=mail_from,
        from_name=mail_from_name,
        to_addr=contact.email,
        to_name=contact.name,
        subject=subject,
        text_body=body,
        ics=ics,
        locale=contact.locale,
        date=now,
    )


def _invitation(
    contact: Contact, data: dict[str, object], group_name: str, mail_from: str, mail_from_name: str, now: datetime
) -> tuple[str, str, bytes]:
    meeting = contracts.MeetingScheduled.model_validate(data)
    zone = ZoneInfo(meeting.timezone)
    start_local, end_local = meeting.starts_at.astimezone(zone), meeting.ends_at.astimezone(zone)
    location = None
    if meeting.venue is not None:
        location = ", ".join(p for p in (meeting.venue.name, meeting.venue.address) if p)
    agenda = [a.model_dump(mode="json") for a in meeting.agenda]
    subject, body = render_invitation(
        contact.locale,
        member_name=contact.name,
        group_name=group_name,
        title=meeting.title,
        starts_at_local=start_local,
        ends_at_local=end_local,
        location=location,
        online_url=meeting.online_url,
        agenda=agenda,
    )
    ics = build_invitation_ics(
        meeting_id=str(meeting.meeting_id),
        sequence=meeting.sequence,
        title=meeting.title,
        starts_at=meeting.starts_at,
        ends_at=meeting.ends_at,
        timezone=meeting.timezone,
        location=location,
        online_url=meeting.online_url,
        description=agenda_description(contact.locale, agenda, starts_at_local=start_local),
        organizer_email=mail_from,
        organizer_name=mail_from_name,
        attendee_email=contact.email,
        attendee_name=contact.name,
        dtstamp=now,
    )
    return subject, body, ics
