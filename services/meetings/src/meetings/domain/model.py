"""Meetings of network groups and their agendas. Pure Python: no database, no clock, no framework.

The zone database (stdlib zoneinfo) is reference data, like a table of country codes; looking a name up in it is how
the domain knows the place a meeting is held in exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import Invalid
from .events import MeetingScheduled

DEFAULT_TIMEZONE = "Europe/Copenhagen"
AGENDA_KINDS = ("check_in", "talk", "discussion", "break", "other")
MAX_ITEM_MINUTES = 600
MAX_TITLE = 200
MAX_AGENDA_ITEMS = 50
MAX_TAGS = 10


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
    position: int = 0  # 0 until the meeting places it: 1..n in agenda order


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
    events: list[MeetingScheduled] = field(default_factory=list, repr=False, compare=False)

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
    ) -> Meeting:
        title = title.strip()
        if not title:
            raise Invalid("A meeting needs a title.")
        if len(title) > MAX_TITLE:
            raise Invalid(f"The title may be at most {MAX_TITLE} characters.")
        starts_at = _utc(starts_at, "starts_at")
        ends_at = _utc(ends_at, "ends_at")
        if ends_at <= starts_at:
            raise Invalid("The meeting must end after it starts (ends_at is not after starts_at).")
        if starts_at <= now:
            raise Invalid("A meeting cannot be scheduled to start in the past.")
        timezone = _zone(timezone)
        if venue is not None and not venue.name.strip():
            raise Invalid("A venue needs a name.")
        if online_url is not None:
            online_url = online_url.strip() or None
        if online_url is not None and not online_url.startswith(("https://", "http://")):
            raise Invalid("The online link must be an http(s) address.")
        if capacity is not None and capacity < 1:
            raise Invalid("Capacity must be at least 1.")
        agenda = _placed(agenda)
        _fits(agenda, starts_at, ends_at)
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
        )
        meeting.events.append(MeetingScheduled(meeting.id))
        return meeting


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise Invalid(f"{name} needs a UTC offset (for example 2026-03-12T16:00:00+01:00); a local time is ambiguous.")
    return moment.astimezone(UTC)


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
        placed.append(
            replace(
                item,
                position=position,
                title=item.title.strip(),
                speaker=_blank_to_none(item.speaker),
                speaker_organisation=_blank_to_none(item.speaker_organisation),
                tags=tuple(t.strip() for t in item.tags if t.strip()),
            )
        )
    return tuple(placed)


def _blank_to_none(text: str | None) -> str | None:
    return (text.strip() or None) if text is not None else None
