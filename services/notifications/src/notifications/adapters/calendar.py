"""Builds the iCalendar (RFC 5545) invitation that goes with a meeting e-mail.

One VCALENDAR with METHOD:REQUEST per attendee; the UID is derived from the meeting alone, so every attendee's
calendar sees the same event and a later invitation with a higher SEQUENCE updates it instead of adding a copy.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress
from icalendar.enums import STATUS

from .mailer import make_address
from .safe_text import ics_text, one_line, uri_text

PRODID = "-//Dansk IT//Netvaerk//DA"
UID_DOMAIN = "netvaerk.danskit.example.org"


def meeting_uid(meeting_id: str) -> str:
    """The VEVENT UID of a meeting: stable across attendees and re-sends."""
    return f"meeting-{meeting_id}@{UID_DOMAIN}"


def _require_aware(name: str, value: datetime) -> None:
    # A naive datetime would silently be read as the server's local time: refuse it.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


def build_invitation_ics(
    *,
    meeting_id: str,
    sequence: int,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    timezone: str,
    location: str | None,
    online_url: str | None,
    description: str,
    organizer_email: str,
    organizer_name: str,
    attendee_email: str,
    attendee_name: str,
    dtstamp: datetime,
    method: str = "REQUEST",
) -> bytes:
    """Return the invitation as iCalendar bytes (UTF-8, CRLF line endings).

    `method` REQUEST (an invitation, or with a higher `sequence` an update that moves the entry: the UID is the
    meeting's) or CANCEL (the entry is cancelled: STATUS:CANCELLED, no RSVP asked).

    `starts_at`, `ends_at` and `dtstamp` are aware instants (normally UTC); DTSTART/DTEND are written as wall time in
    `timezone` with a TZID and a matching VTIMEZONE, so clients show the meeting at the local time it is held.
    LOCATION is `location`, or the online link when the meeting is online only.

    Text may come from anyone (meeting title, venue, agenda, names): TEXT values (SUMMARY, LOCATION, DESCRIPTION)
    go through `ics_text` and are then escaped by the icalendar package as RFC 5545 3.3.11 asks (backslash,
    semicolon, comma, line break as '\\n'); CN parameters, which have no escapes in RFC 5545, go through
    `one_line`; the online link through `uri_text`. So no value can add a line or a property, and none makes
    building fail. The two e-mail addresses must each be one valid address (`InvalidAddress` otherwise).
    """
    for name, value in (("starts_at", starts_at), ("ends_at", ends_at), ("dtstamp", dtstamp)):
        _require_aware(name, value)
    if ends_at <= starts_at:
        raise ValueError("ends_at must be after starts_at")
    if sequence < 0:
        raise ValueError("sequence must be >= 0")
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"method must be REQUEST or CANCEL, not {method!r}")
    cancel = method == "CANCEL"
    zone = ZoneInfo(timezone)  # raises ZoneInfoNotFoundError for an unknown zone
    local_start = starts_at.astimezone(zone)
    local_end = ends_at.astimezone(zone)
    title, description = ics_text(title), ics_text(description)
    online_url = uri_text(online_url)
    location = ics_text(location) or online_url

    # make_address refuses anything but one addr-spec, so a mailto: URI cannot carry more than the address
    organizer = vCalAddress.new(make_address(organizer_email).addr_spec, cn=one_line(organizer_name) or None)
    attendee = vCalAddress.new(
        make_address(attendee_email).addr_spec,
        cn=one_line(attendee_name) or None,
        cutype="INDIVIDUAL",
        role="REQ-PARTICIPANT",
        partstat="NEEDS-ACTION",
        rsvp=not cancel,
    )
    event = Event.new(
        uid=meeting_uid(meeting_id),
        sequence=sequence,
        stamp=dtstamp.astimezone(UTC),
        start=local_start,
        end=local_end,
        summary=title,
        description=description or None,
        location=location or None,
        url=online_url or None,
        organizer=organizer,
        attendees=[attendee],
        status=STATUS.CANCELLED if cancel else STATUS.CONFIRMED,
    )

    # Built by hand rather than with Calendar.new(), which would add a random calendar UID and make the output
    # differ between otherwise identical invitations.
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    calendar.add_component(event)
    # A VTIMEZONE covering a few years around the meeting: the whole 1970–2038 default adds ~2 kB of RDATEs.
    calendar.add_missing_timezones(
        first_date=date(local_start.year - 1, 1, 1),
        last_date=date(local_end.year + 2, 1, 1),
    )
    missing = calendar.get_missing_tzids()
    if missing:
        raise ValueError(f"no VTIMEZONE could be generated for {sorted(missing)}")
    return calendar.to_ical()
