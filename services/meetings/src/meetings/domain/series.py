"""The year's plan: a series of meetings planned in one step from a rule ("second Tuesday of March, June, September
and December, 13:00-16:00"). Each occurrence is an ordinary Meeting that carries the series' id, so it can be moved
or cancelled on its own. Pure Python: the clock is passed in; wall-clock times become UTC instants through the zone
database, so every occurrence keeps its 13:00 on either side of a daylight-saving change.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from .errors import Invalid
from .model import DEFAULT_TIMEZONE, AgendaItem, Meeting, Venue, _title, _zone

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_OCCURRENCES = 24
MAX_YEARS_AHEAD = 5  # a rule that finds no day within this (say, 5th Monday of one month) is refused, not looped on


@dataclass(frozen=True)
class Recurrence:
    """Which days: the `week`-th (1-5, or -1 for the last) `weekday` of each of `months`; from `starts` to `ends`
    wall-clock time in the series' zone."""

    months: tuple[int, ...]
    weekday: str
    week: int
    starts: time
    ends: time


@dataclass
class Series:
    id: UUID
    group_id: UUID
    title: str
    timezone: str
    rule: Recurrence
    first_day: date
    count: int
    planned_at: datetime
    events: list[object] = field(default_factory=list, repr=False, compare=False)  # none: each meeting has its own

    @classmethod
    def plan(
        cls,
        *,
        group_id: UUID,
        title: str,
        rule: Recurrence,
        first_day: date,
        count: int,
        now: datetime,
        timezone: str = DEFAULT_TIMEZONE,
        venue: Venue | None = None,
        online_url: str | None = None,
        capacity: int | None = None,
        agenda: tuple[AgendaItem, ...] = (),
        rsvp_days_before: int | None = None,
    ) -> tuple[Series, list[Meeting]]:
        """The series and its `count` meetings, the first on or after `first_day`. Every occurrence must be in the
        future and obey the rules of a single meeting; the message names the occurrence that does not."""
        title = _title(title)
        timezone = _zone(timezone)
        if not 1 <= count <= MAX_OCCURRENCES:
            raise Invalid(f"A series holds 1 to {MAX_OCCURRENCES} meetings (count).")
        if rsvp_days_before is not None and not 0 <= rsvp_days_before <= 90:
            raise Invalid("rsvp_days_before must be between 0 and 90.")
        series = cls(
            id=uuid.uuid4(),
            group_id=group_id,
            title=title,
            timezone=timezone,
            rule=_checked(rule),
            first_day=first_day,
            count=count,
            planned_at=now,
        )
        meetings = []
        for n, (starts_at, ends_at) in enumerate(occurrences(rule, timezone, first_day, count), start=1):
            deadline = starts_at - timedelta(days=rsvp_days_before) if rsvp_days_before is not None else None
            try:
                meeting = Meeting.schedule(
                    group_id=group_id,
                    title=title,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    now=now,
                    timezone=timezone,
                    venue=venue,
                    online_url=online_url,
                    capacity=capacity,
                    agenda=agenda,
                    rsvp_deadline=deadline,
                    series_id=series.id,
                )
            except Invalid as exc:
                local = starts_at.astimezone(ZoneInfo(timezone))
                raise Invalid(f"Meeting {n} of the series ({local:%Y-%m-%d %H:%M}): {exc.detail}") from None
            meetings.append(meeting)
        return series, meetings


def _checked(rule: Recurrence) -> Recurrence:
    if not rule.months or len(set(rule.months)) != len(rule.months):
        raise Invalid("Name each month of the series once (months, 1-12).")
    if any(not 1 <= m <= 12 for m in rule.months):
        raise Invalid("Months are numbered 1 (January) to 12 (December).")
    if rule.weekday not in WEEKDAYS:
        raise Invalid(f"weekday must be one of {', '.join(WEEKDAYS)}.")
    if rule.week not in (1, 2, 3, 4, 5, -1):
        raise Invalid("week must be 1 to 5 (the first to fifth such weekday of the month) or -1 (the last).")
    if rule.ends <= rule.starts:
        raise Invalid("The meetings must end after they start, on the same day (ends is not after starts).")
    return Recurrence(tuple(sorted(rule.months)), rule.weekday, rule.week, rule.starts, rule.ends)


def nth_weekday(year: int, month: int, weekday: str, week: int) -> date | None:
    """The `week`-th `weekday` of the month (-1: the last), or None when the month has no such day (a 5th one)."""
    wanted = WEEKDAYS.index(weekday)
    days = [d for d in calendar.Calendar().itermonthdates(year, month) if d.month == month and d.weekday() == wanted]
    if week == -1:
        return days[-1]
    return days[week - 1] if week <= len(days) else None


def occurrences(rule: Recurrence, timezone: str, first_day: date, count: int) -> list[tuple[datetime, datetime]]:
    """The first `count` (start, end) UTC instants of the rule on or after `first_day`. A wall-clock time that does
    not exist on a day (skipped by a daylight-saving change) is refused; a doubled one takes its first occurrence."""
    rule = _checked(rule)
    zone = ZoneInfo(timezone)
    out: list[tuple[datetime, datetime]] = []
    year = first_day.year
    while len(out) < count:
        if year > first_day.year + MAX_YEARS_AHEAD:
            raise Invalid(f"The rule finds fewer than {count} days in the {MAX_YEARS_AHEAD} years from {first_day}.")
        for month in rule.months:
            day = nth_weekday(year, month, rule.weekday, rule.week)
            if day is None or day < first_day or len(out) == count:
                continue
            out.append((_instant(day, rule.starts, zone), _instant(day, rule.ends, zone)))
        year += 1
    return out


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    local = datetime.combine(day, wall, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise Invalid(f"{wall:%H:%M} does not exist on {day} in {zone.key} (the clocks are put forward that night).")
    return instant
