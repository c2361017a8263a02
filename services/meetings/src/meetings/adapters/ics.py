"""Meetings as an iCalendar (RFC 5545) document, written directly: the feeds Outlook, Google and Apple Calendar
subscribe to, and the single meeting's `.ics`.

What keeps a subscribed calendar in sync: one VEVENT per meeting with a UID that never changes, SEQUENCE from the
meeting's sequence (it rises on every change), a cancelled meeting kept as STATUS:CANCELLED (so clients remove it,
rather than keep a copy they never hear about again), and times as local wall-clock time with a TZID whose
VTIMEZONE is in the document, written from the zone database for the years the meetings span: a meeting at 13:00 in
Copenhagen stays at 13:00 across a daylight-saving change. The document depends only on the meetings (DTSTAMP is
when the meeting last changed, not when the feed was asked for), so the same meetings give the same bytes and the
same ETag.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from uuid import UUID
from zoneinfo import ZoneInfo

PRODID = "-//Dansk IT//Netvaerk meetings//DA"
UID_DOMAIN = "netvaerk.danskit.example.org"
KIND_NAMES = {"check_in": "Runde", "talk": "Oplæg", "discussion": "Drøftelse", "break": "Pause", "other": "Andet"}


@dataclass(frozen=True)
class CalendarAgendaItem:
    kind: str
    title: str
    minutes: int
    speaker: str | None = None
    speaker_organisation: str | None = None


@dataclass(frozen=True)
class CalendarMeeting:
    meeting_id: UUID
    title: str
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC
    timezone: str
    sequence: int
    changed_at: datetime  # DTSTAMP: when this version of the meeting came to be
    status: str = "scheduled"  # scheduled / cancelled / held
    group_name: str | None = None
    venue_name: str | None = None
    venue_address: str | None = None
    online_url: str | None = None
    agenda: tuple[CalendarAgendaItem, ...] = ()


def uid(meeting_id: UUID) -> str:
    return f"{meeting_id}@{UID_DOMAIN}"


def calendar(name: str, meetings: Sequence[CalendarMeeting]) -> str:
    """The whole VCALENDAR (CRLF line ends, lines folded at 75 octets), meetings in the order given."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"NAME:{_text(name)}",  # RFC 7986
        f"X-WR-CALNAME:{_text(name)}",  # what Outlook and Apple Calendar show
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
    ]
    spans: dict[str, tuple[int, int]] = {}
    for m in meetings:
        first, last = spans.get(m.timezone, (m.starts_at.year, m.starts_at.year))
        spans[m.timezone] = (min(first, m.starts_at.year), max(last, m.ends_at.year))
    for zone, (first, last) in sorted(spans.items()):
        lines.extend(vtimezone(zone, first, last))
    for m in meetings:
        lines.extend(_vevent(m))
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) for line in lines)


def _vevent(m: CalendarMeeting) -> Iterator[str]:
    zone = ZoneInfo(m.timezone)
    yield "BEGIN:VEVENT"
    yield f"UID:{uid(m.meeting_id)}"
    yield f"DTSTAMP:{_utc(m.changed_at)}"
    yield _moment("DTSTART", m.starts_at, m.timezone, zone)
    yield _moment("DTEND", m.ends_at, m.timezone, zone)
    yield f"SEQUENCE:{m.sequence}"
    yield f"STATUS:{'CANCELLED' if m.status == 'cancelled' else 'CONFIRMED'}"
    summary = f"{m.group_name}: {m.title}" if m.group_name else m.title
    yield f"SUMMARY:{_text(summary)}"
    location = ", ".join(p for p in (m.venue_name, m.venue_address) if p) or m.online_url
    if location:
        yield f"LOCATION:{_text(location)}"
    if m.online_url:
        yield f"URL:{m.online_url}"  # a URI value: the API allows no spaces or control characters in the link
    description = _description(m)
    if description:
        yield f"DESCRIPTION:{_text(description)}"
    yield "TRANSP:OPAQUE"
    yield "END:VEVENT"


def _description(m: CalendarMeeting) -> str:
    lines = []
    if m.status == "cancelled":
        lines.append("Mødet er aflyst.")
    for item in m.agenda:
        who = ", ".join(p for p in (item.speaker, item.speaker_organisation) if p)
        lines.append(
            f"{KIND_NAMES.get(item.kind, item.kind)}: {item.title}"
            + (f" ({who})" if who else "")
            + f", {item.minutes} min."
        )
    if m.online_url:
        lines.append(f"Online: {m.online_url}")
    return "\n".join(lines)


@lru_cache(maxsize=256)
def vtimezone(name: str, first_year: int, last_year: int) -> tuple[str, ...]:
    """The zone's VTIMEZONE for local times from `first_year` to `last_year`: one observance per offset change found
    in the zone database, and the one in force when the span begins."""
    zone = ZoneInfo(name)
    start = datetime(first_year, 1, 1, tzinfo=UTC) - timedelta(days=1)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC) + timedelta(days=1)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{name}"]
    before = start.astimezone(zone)
    lines.extend(_observance(before, before.utcoffset() or timedelta(0), start))
    for moment in _transitions(zone, start, end):
        previous = (moment - timedelta(seconds=1)).astimezone(zone).utcoffset() or timedelta(0)
        lines.extend(_observance(moment.astimezone(zone), previous, moment))
    lines.append("END:VTIMEZONE")
    return tuple(lines)


def _observance(local: datetime, offset_from: timedelta, at: datetime) -> list[str]:
    kind = "DAYLIGHT" if local.dst() else "STANDARD"
    offset_to = local.utcoffset() or timedelta(0)
    # DTSTART of an observance is the onset in the local time that was in force before it (TZOFFSETFROM)
    onset = (at + offset_from).replace(tzinfo=None)
    return [
        f"BEGIN:{kind}",
        f"DTSTART:{onset:%Y%m%dT%H%M%S}",
        f"TZOFFSETFROM:{_offset(offset_from)}",
        f"TZOFFSETTO:{_offset(offset_to)}",
        f"TZNAME:{_text(local.tzname() or _offset(offset_to))}",
        f"END:{kind}",
    ]


def _transitions(zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """The instants in [start, end) where the zone's offset changes, to the second (a day's steps, then bisection:
    no zone changes its offset twice in one day)."""
    day = timedelta(days=1)
    moment, offset = start, start.astimezone(zone).utcoffset()
    while moment < end:
        following = moment + day
        next_offset = following.astimezone(zone).utcoffset()
        if next_offset != offset:
            low, high = moment, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            yield high.replace(microsecond=0)
        moment, offset = following, next_offset


def _offset(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign = "+" if seconds >= 0 else "-"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{secs:02d}" if secs else "")


def _moment(name: str, moment: datetime, zone_name: str, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    if local.fold and local.utcoffset() != local.replace(fold=0).utcoffset():
        # the second of two equal wall-clock times (the hour repeated when summer time ends): a TZID time means the
        # first one (RFC 5545 3.3.5), so this one is given in UTC
        return f"{name}:{_utc(moment)}"
    return f"{name};TZID={zone_name}:{local:%Y%m%dT%H%M%S}"


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and line breaks escaped."""
    return (
        value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\r\n", "\\n").replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """One content line, folded so no physical line is longer than 75 octets, never inside a UTF-8 character."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line + "\r\n"
    parts, limit = [], 75
    while data:
        cut = min(limit, len(data))
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:  # do not split a character
            cut -= 1
        parts.append(data[:cut].decode("utf-8"))
        data, limit = data[cut:], 74  # a continuation line starts with a space
    return "\r\n ".join(parts) + "\r\n"
