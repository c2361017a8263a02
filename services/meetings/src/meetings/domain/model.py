"""Meetings of network groups and their agendas. Pure Python: no database, no clock, no framework.

The zone database (stdlib zoneinfo) is reference data, like a table of country codes; looking a name up in it is how
the domain knows the place a meeting is held in exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import Conflict, Invalid
from .events import AgendaUpdated, MeetingCancelled, MeetingRescheduled, MeetingScheduled

DEFAULT_TIMEZONE = "Europe/Copenhagen"
AGENDA_KINDS = ("check_in", "talk", "discussion", "break", "other")
MAX_ITEM_MINUTES = 600
MAX_TITLE = 200
MAX_AGENDA_ITEMS = 50
MAX_TAGS = 10
MAX_MATERIALS = 10
MAX_URL = 2000
MAX_REASON = 500
MAX_MEETING_MINUTES = 20_000  # the minutes (referat) written after the meeting, in characters
STATUSES = ("scheduled", "cancelled", "held")


@dataclass(frozen=True)
class Venue:
    name: str
    address: str | None = None
    host_organisation: str | None = None


@dataclass(frozen=True)
class AgendaItem:
    kind: str
    title: str
    minutes: int
    speaker: str | None = None
    speaker_organisation: str | None = None
    tags: tuple[str, ...] = ()
    materials: tuple[str, ...] = ()  # links (http/https) to slides, papers, recordings
    position: int = 0  # 0 until the meeting places it: 1..n in agenda order


class _Keep:
    """'Leave this as it is' in a change, where None means 'take it away'."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclass
class Meeting:
    id: UUID
    group_id: UUID
    title: str
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC
    timezone: str  # the IANA zone the meeting is held in
    scheduled_at: datetime
    venue: Venue | None = None
    online_url: str | None = None
    capacity: int | None = None
    agenda: tuple[AgendaItem, ...] = ()
    sequence: int = 0  # bumped by every later change, so calendar clients take the newest (RFC 5545 SEQUENCE)
    status: str = "scheduled"  # scheduled / cancelled / held
    rsvp_deadline: datetime | None = None  # UTC; answers after it are refused
    series_id: UUID | None = None  # the year's plan it was planned in, if any
    cancel_reason: str | None = None
    minutes: str | None = None  # the minutes (referat), written once the meeting has begun
    events: list[object] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def schedule(
        cls,
        *,
        group_id: UUID,
        title: str,
        starts_at: datetime,
        ends_at: datetime,
        now: datetime,
        timezone: str = DEFAULT_TIMEZONE,
        venue: Venue | None = None,
        online_url: str | None = None,
        capacity: int | None = None,
        agenda: tuple[AgendaItem, ...] | list[AgendaItem] = (),
        rsvp_deadline: datetime | None = None,
        series_id: UUID | None = None,
    ) -> Meeting:
        title = _title(title)
        starts_at = _utc(starts_at, "starts_at")
        ends_at = _utc(ends_at, "ends_at")
        if ends_at <= starts_at:
            raise Invalid("The meeting must end after it starts (ends_at is not after starts_at).")
        if starts_at <= now:
            raise Invalid("A meeting cannot be scheduled to start in the past.")
        timezone = _zone(timezone)
        if venue is not None and not venue.name.strip():
            raise Invalid("A venue needs a name.")
        online_url = _link(online_url)
        _capacity(capacity)
        agenda = _placed(agenda)
        _fits(agenda, starts_at, ends_at)
        if rsvp_deadline is not None:
            rsvp_deadline = _deadline(rsvp_deadline, starts_at, now)
        meeting = cls(
            id=uuid.uuid4(),
            group_id=group_id,
            title=title,
            starts_at=starts_at,
            ends_at=ends_at,
            timezone=timezone,
            scheduled_at=now,
            venue=_clean_venue(venue),
            online_url=online_url,
            capacity=capacity,
            agenda=agenda,
            rsvp_deadline=rsvp_deadline,
            series_id=series_id,
        )
        meeting.events.append(MeetingScheduled(meeting.id))
        return meeting

    # -- the meeting's life -------------------------------------------------------------------------------------
    def reschedule(
        self,
        *,
        now: datetime,
        title: str | None = None,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        venue: Any = KEEP,
        online_url: Any = KEEP,
        capacity: Any = KEEP,
        rsvp_deadline: Any = KEEP,
    ) -> bool:
        """Move the meeting or change where it is held, its seats or its RSVP deadline. Records MeetingRescheduled
        with a higher sequence when anything changed; returns whether it did (the same change twice is one)."""
        self._still_to_come(now, "changed")
        new_title = self.title if title is None else _title(title)
        new_starts = self.starts_at if starts_at is None else _utc(starts_at, "starts_at")
        new_ends = self.ends_at if ends_at is None else _utc(ends_at, "ends_at")
        if new_ends <= new_starts:
            raise Invalid("The meeting must end after it starts (ends_at is not after starts_at).")
        if new_starts != self.starts_at and new_starts <= now:
            raise Invalid("A meeting cannot be moved to a time in the past.")
        new_venue = self.venue if venue is KEEP else _clean_venue(_named(venue))
        new_url = self.online_url if online_url is KEEP else _link(online_url)
        new_capacity = self.capacity if capacity is KEEP else _capacity(capacity)
        if rsvp_deadline is KEEP:
            new_deadline = self.rsvp_deadline
            if new_deadline is not None and new_deadline > new_starts:
                raise Invalid(
                    "The RSVP deadline would fall after the new start: move the deadline too (rsvp_deadline)."
                )
        elif rsvp_deadline is None:
            new_deadline = None
        else:
            new_deadline = _deadline(rsvp_deadline, new_starts, now)
        _fits(self.agenda, new_starts, new_ends)
        changed = (new_title, new_starts, new_ends, new_venue, new_url, new_capacity, new_deadline) != (
            self.title,
            self.starts_at,
            self.ends_at,
            self.venue,
            self.online_url,
            self.capacity,
            self.rsvp_deadline,
        )
        if not changed:
            return False
        previous_starts_at = self.starts_at
        self.title, self.starts_at, self.ends_at = new_title, new_starts, new_ends
        self.venue, self.online_url, self.capacity, self.rsvp_deadline = new_venue, new_url, new_capacity, new_deadline
        self.sequence += 1
        self.events.append(MeetingRescheduled(self.id, previous_starts_at))
        return True

    def cancel(self, *, reason: str, now: datetime) -> None:
        """Call the meeting off, saying why. It stays in the plan (and in calendars, as cancelled)."""
        reason = reason.strip()
        if not reason:
            raise Invalid("Say why the meeting is cancelled (reason).")
        if len(reason) > MAX_REASON:
            raise Invalid(f"The reason may be at most {MAX_REASON} characters.")
        self._still_to_come(now, "cancelled")
        self.status = "cancelled"
        self.cancel_reason = reason
        self.sequence += 1
        self.events.append(MeetingCancelled(self.id))

    def replace_agenda(self, agenda: tuple[AgendaItem, ...] | list[AgendaItem], *, now: datetime) -> bool:
        """The whole agenda anew, in order; it must fit in the meeting. Returns whether anything changed."""
        self._still_to_come(now, "given a new agenda")
        placed = _placed(agenda)
        _fits(placed, self.starts_at, self.ends_at)
        if placed == self.agenda:
            return False
        self.agenda = placed
        self.sequence += 1
        self.events.append(AgendaUpdated(self.id))
        return True

    def add_agenda_item(self, item: AgendaItem, *, now: datetime) -> AgendaItem:
        """One item at the end of the agenda (an accepted proposal, say); returns it as placed."""
        self.replace_agenda((*self.agenda, item), now=now)
        return self.agenda[-1]

    def record_minutes(self, minutes: str, *, now: datetime) -> None:
        """The minutes (referat), once the meeting has begun; the meeting counts as held from then on."""
        minutes = minutes.strip()
        if not minutes:
            raise Invalid("The minutes must not be empty.")
        if len(minutes) > MAX_MEETING_MINUTES:
            raise Invalid(f"The minutes may be at most {MAX_MEETING_MINUTES} characters.")
        if self.status == "cancelled":
            raise Conflict("The meeting was cancelled: there are no minutes to write.")
        if now < self.starts_at:
            raise Conflict("Minutes can be written once the meeting has begun.")
        if minutes == self.minutes and self.status == "held":
            return
        self.minutes = minutes
        self.status = "held"
        self.sequence += 1
        self.events.append(AgendaUpdated(self.id))

    def _still_to_come(self, now: datetime, what: str) -> None:
        if self.status == "cancelled":
            raise Conflict(f"The meeting was cancelled; it cannot be {what}.")
        if self.status == "held" or self.starts_at <= now:
            raise Conflict(f"The meeting has already begun; it cannot be {what}.")


def _title(title: str) -> str:
    title = title.strip()
    if not title:
        raise Invalid("A meeting needs a title.")
    if len(title) > MAX_TITLE:
        raise Invalid(f"The title may be at most {MAX_TITLE} characters.")
    return title


def _named(venue: Venue | None) -> Venue | None:
    if venue is not None and not venue.name.strip():
        raise Invalid("A venue needs a name.")
    return venue


def _link(url: str | None, what: str = "The online link") -> str | None:
    if url is None:
        return None
    url = url.strip() or None
    if url is not None and not url.startswith(("https://", "http://")):
        raise Invalid(f"{what} must be an http(s) address.")
    if url is not None and len(url) > MAX_URL:
        raise Invalid(f"{what} may be at most {MAX_URL} characters.")
    return url


def _capacity(capacity: int | None) -> int | None:
    if capacity is not None and capacity < 1:
        raise Invalid("Capacity must be at least 1.")
    return capacity


def _deadline(deadline: datetime, starts_at: datetime, now: datetime) -> datetime:
    deadline = _utc(deadline, "rsvp_deadline")
    if deadline > starts_at:
        raise Invalid("The RSVP deadline must be no later than the meeting's start.")
    if deadline <= now:
        raise Invalid("The RSVP deadline must be in the future.")
    return deadline


MIN_YEAR, MAX_YEAR = 1970, 2200


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise Invalid(f"{name} needs a UTC offset (for example 2026-03-12T16:00:00+01:00); a local time is ambiguous.")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        utc = None
    # a meeting's times are compared, moved and counted back from (reminders, deadlines): keep them far from the
    # ends of what a datetime can hold
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise Invalid(f"{name} must be between the years {MIN_YEAR} and {MAX_YEAR}.")
    return utc


def _zone(name: str) -> str:
    name = name.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"{name!r} is not a known IANA time zone (for example Europe/Copenhagen).") from None
    return name


def _clean_venue(venue: Venue | None) -> Venue | None:
    if venue is None:
        return None
    return Venue(
        name=venue.name.strip(),
        address=_blank_to_none(venue.address),
        host_organisation=_blank_to_none(venue.host_organisation),
    )


def _fits(agenda: tuple[AgendaItem, ...], starts_at: datetime, ends_at: datetime) -> None:
    planned = sum(item.minutes for item in agenda)
    available = (ends_at - starts_at).total_seconds() / 60
    if planned > available:
        raise Invalid(
            f"The agenda takes {planned} minutes, but the meeting lasts only {available:g} minutes: "
            "shorten the items or let the meeting end later."
        )


def _placed(agenda: tuple[AgendaItem, ...] | list[AgendaItem]) -> tuple[AgendaItem, ...]:
    if len(agenda) > MAX_AGENDA_ITEMS:
        raise Invalid(f"An agenda may hold at most {MAX_AGENDA_ITEMS} items.")
    placed = []
    for position, item in enumerate(agenda, start=1):
        if item.kind not in AGENDA_KINDS:
            raise Invalid(f"Agenda item {position}: kind must be one of {', '.join(AGENDA_KINDS)}.")
        if not item.title.strip():
            raise Invalid(f"Agenda item {position} needs a title.")
        if not 0 <= item.minutes <= MAX_ITEM_MINUTES:
            raise Invalid(f"Agenda item {position}: minutes must be between 0 and {MAX_ITEM_MINUTES}.")
        if len(item.tags) > MAX_TAGS:
            raise Invalid(f"Agenda item {position}: at most {MAX_TAGS} tags.")
        if len(item.materials) > MAX_MATERIALS:
            raise Invalid(f"Agenda item {position}: at most {MAX_MATERIALS} links to materials.")
        materials = tuple(_link(m, f"Agenda item {position}: a link to materials") for m in item.materials)
        placed.append(
            replace(
                item,
                position=position,
                title=item.title.strip(),
                speaker=_blank_to_none(item.speaker),
                speaker_organisation=_blank_to_none(item.speaker_organisation),
                tags=tuple(t.strip() for t in item.tags if t.strip()),
                materials=tuple(m for m in materials if m),
            )
        )
    return tuple(placed)


def _blank_to_none(text: str | None) -> str | None:
    return (text.strip() or None) if text is not None else None
